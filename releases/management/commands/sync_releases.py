from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releases import sync


class Command(BaseCommand):
    help = "Read RELEASES_FEED_URL (or --url) now: record new releases, open their upgrades."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", help="Read this feed instead of RELEASES_FEED_URL.")

    def handle(self, *args: Any, url: str | None = None, **options: Any) -> None:
        outcome = sync.sync(url=url)
        if not outcome.ok:
            raise CommandError(f"The releases feed failed: {outcome.message}")
        self.stdout.write(outcome.message)
        for version in outcome.recorded:
            self.stdout.write(f"  recorded {version}")
        for request in outcome.opened:
            self.stdout.write(f"  opened #{request.pk} upgrade of {request.instance_slug}")
