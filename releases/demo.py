"""The releases the demo fleet was built from, for `seed_demo` (idempotent): the history up to
6.0.0, so that recording 6.2.0 on the Releases page opens the fleet's upgrades."""

from datetime import timedelta

from django.utils import timezone

from releases import opening
from releases.models import Release

HISTORY = [("5.8.2", 80), ("5.9.0", 58), ("6.0.0", 27)]  # (version, days ago)


def seed() -> str:
    now = timezone.now()
    made = 0
    for version, days in HISTORY:
        _, created = opening.record(
            version,
            now - timedelta(days=days),
            notes_url=f"https://example.com/releases/{version}",
            now=now,
            open_requests=False,  # the demo requests already show the upgrades of these
        )
        made += created
    return f"{Release.objects.count()} releases ({made} new)"
