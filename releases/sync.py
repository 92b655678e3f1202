"""Reading the releases feed (RELEASES_FEED_URL) into releases: every RELEASES_POLL_MINUTES from
the cron and by `manage.py sync_releases`. A feed that fails changes nothing but the status row
DevOps read on the Releases page."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releases import feed, opening
from releases.models import FeedStatus, Release
from requests_app.models import Request

log = logging.getLogger(__name__)


@dataclass
class SyncOutcome:
    ok: bool
    message: str
    recorded: list[str] = field(default_factory=list)
    opened: list[Request] = field(default_factory=list)


def status() -> FeedStatus:
    return FeedStatus.objects.get_or_create(pk=1)[0]


def sync(now: datetime | None = None, url: str | None = None) -> SyncOutcome:
    now = now or timezone.now()
    url = url if url is not None else settings.RELEASES_FEED_URL
    if not url:
        return SyncOutcome(True, "No releases feed is set (RELEASES_FEED_URL).")
    result = feed.fetch(url, status().etag)
    if not result.ok:
        FeedStatus.objects.filter(pk=1).update(checked_at=now, error=result.error, error_at=now)
        return SyncOutcome(False, result.error)
    if result.not_modified:
        FeedStatus.objects.filter(pk=1).update(checked_at=now, answered_at=now, error="")
        return SyncOutcome(True, "The feed has nothing new (304).")
    newest_before = Release.objects.newest()
    recorded = []
    # Oldest first: each release's kind is read against the one below it.
    for item in sorted(result.releases, key=lambda r: feed.parse_version(r.version) or (0, 0, 0)):
        release, created = opening.record(
            item.version,
            item.published_at,
            notes_url=item.notes_url,
            source=Release.Source.FEED,
            now=now,
            open_requests=False,
        )
        if created:
            recorded.append(release.version)
    newest = Release.objects.newest()
    opened = opening.open_upgrades(now)
    if newest is not None and newest != newest_before and newest.version in recorded:
        opening.announce(newest, opened, now)
    with transaction.atomic():
        FeedStatus.objects.filter(pk=1).update(
            checked_at=now, answered_at=now, error="", etag=result.etag
        )
    message = (
        f"{len(result.releases)} releases read ({result.skipped} skipped), "
        f"{len(recorded)} new, {len(opened)} upgrades opened."
    )
    log.info("releases feed: %s", message)
    return SyncOutcome(True, message, recorded, opened)
