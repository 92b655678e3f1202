from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from requests_app import importer


class _DryRun(Exception):
    pass


class Command(BaseCommand):
    help = (
        "Load requests filed before the portal existed from a JSON list of records (format in "
        "docs/api.md). Each record is replayed through the workflow's rules and loaded whole or "
        "rejected whole; records already imported (same external_id) are skipped. Exits non-zero "
        "when any record is rejected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON file: a list of request records")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Replay every record and report, then roll everything back.",
        )

    def handle(self, *args: Any, file: str, dry_run: bool = False, **options: Any) -> None:
        try:
            records = importer.read_file(file)
        except importer.ImportFileError as exc:
            raise CommandError(str(exc)) from None

        if dry_run:
            result = self.dry_run(records)
        else:
            # Each record commits on its own: an interrupted import keeps what it loaded.
            result = importer.import_records(records)

        for outcome in result.outcomes:
            if outcome.status == "rejected":
                self.stderr.write(outcome.line())
            elif options.get("verbosity", 1) >= 1:
                self.stdout.write(outcome.line())
        prefix = "dry run, nothing saved: " if dry_run else ""
        self.stdout.write(f"{prefix}{result.summary()}")
        if result.rejected:
            rejected = [o.label for o in result.outcomes if o.status == "rejected"]
            raise CommandError(
                f"{result.rejected} record(s) rejected: {', '.join(rejected)}; "
                "fix them and import the file again (loaded records are skipped)."
            )

    def dry_run(self, records: list[Any]) -> importer.ImportResult:
        result: importer.ImportResult | None = None
        try:
            with transaction.atomic():
                result = importer.import_records(records)
                raise _DryRun
        except _DryRun:
            pass
        assert result is not None  # set before the rollback
        return result
