import json
import textwrap
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from provisioning.adoption import importer

# The instance fields a created row shows, in this order.
CREATED = (
    "status",
    "customer",
    "gcp_project",
    "zone",
    "machine_type",
    "version",
    "access",
    "allowed_ip_ranges",
    "executors_enabled",
    "category",
)
WIDTH = 100


class Command(BaseCommand):
    help = (
        "Adopt the instances that exist before the portal: DIR holds one folder per instance "
        "with the Terraform that calls the gcp module (a module block and/or terraform.tfvars). "
        "Creates or updates one instance per folder; a folder that cannot be read is named with "
        "the reason and skipped, and the command then exits non-zero (docs/fleet-import.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="a folder holding one folder per instance")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would change (a table) and write nothing",
        )

    def handle(self, *args: Any, directory: str, dry_run: bool = False, **options: Any) -> None:
        path = Path(directory)
        if not path.is_dir():
            raise CommandError(f"{directory} is not a folder")
        result = importer.import_fleet(path, timezone.now(), dry_run=dry_run)
        if not result.outcomes:
            raise CommandError(f"{directory} holds no folder: nothing to adopt")
        self.stdout.write(table(result.outcomes))
        self.stdout.write(summary(result))
        if result.skipped:
            names = ", ".join(outcome.folder for outcome in result.skipped)
            raise CommandError(
                f"{len(result.skipped)} folder(s) skipped: {names}. Fix them and import again "
                "(what loaded stays as it is)."
            )


def table(outcomes: list[importer.Outcome]) -> str:
    folder_width = max(len("folder"), *(len(o.folder) for o in outcomes))
    slug_width = max(len("slug"), *(len(o.slug or "-") for o in outcomes))
    indent = folder_width + slug_width + len("unchanged") + 6
    lines = [f"{'folder':<{folder_width}}  {'slug':<{slug_width}}  {'action':<9}  changes"]
    for outcome in outcomes:
        details = _details(outcome)
        head = f"{outcome.folder:<{folder_width}}  {outcome.slug or '-':<{slug_width}}  "
        head += f"{outcome.action:<9}  "
        wrapped = [
            line
            for detail in details or ["-"]
            for line in textwrap.wrap(
                detail, max(40, WIDTH - indent), subsequent_indent="  ", break_on_hyphens=False
            )
        ]
        lines.append(head + wrapped[0])
        lines += [" " * indent + line for line in wrapped[1:]]
    return "\n".join(lines)


def _details(outcome: importer.Outcome) -> list[str]:
    if outcome.action == "skipped":
        return [outcome.reason]
    details = []
    if outcome.action == "create":
        shown = {name: new for name, _, new in outcome.changes}
        details.append(
            ", ".join(
                f"{name} {value_text(shown[name])}"
                for name in CREATED
                if shown.get(name) not in (None, "", [])
            )
        )
    elif outcome.action == "update":
        details += [
            f"{name}: {value_text(old)} -> {value_text(new)}" for name, old, new in outcome.changes
        ]
    details += [f"note: {note}" for note in outcome.notes]
    return details


def value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def summary(result: importer.Result) -> str:
    counts = {
        action: result.count(action) for action in ("create", "update", "unchanged", "skipped")
    }
    if result.dry_run:
        return (
            f"Dry run, nothing written: {counts['create']} to create, {counts['update']} to "
            f"update, {counts['unchanged']} unchanged, {counts['skipped']} skipped."
        )
    text = (
        f"{counts['create']} created, {counts['update']} updated, {counts['unchanged']} "
        f"unchanged, {counts['skipped']} skipped."
    )
    if not result.changed:
        text += " Nothing changed."
    return text
