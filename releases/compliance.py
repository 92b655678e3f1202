"""Maintenance compliance: how much of the fleet runs the newest release, and per release how
many upgrades were done within their 7 days (the upgrade timer's own verdict)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Q
from django.utils import timezone

from provisioning.models import Instance, InstanceStatus
from releases import progress
from releases.feed import parse_version
from releases.models import Release
from requests_app.models import Kind, Request, State

RELEASES_SHOWN = 12


def maintenance(now: datetime | None = None) -> dict[str, Any]:
    """The `maintenance` part of `GET /api/v1/sla/summary/`. Per release, `total` counts its
    upgrade requests that were not cancelled or rejected (one superseded by a newer release
    counts for the newer one), `upgraded` those done, `within_sla_pct` the share of `total`
    done before the resolution timer breached."""
    now = now or timezone.now()
    newest = Release.objects.newest()
    versions = list(
        Instance.objects.filter(status=InstanceStatus.ACTIVE).values_list("version", flat=True)
    )
    on_latest = 0
    if newest is not None:
        on_latest = sum(
            1 for v in versions if (key := parse_version(v)) is not None and key >= newest.key
        )
    releases = list(Release.objects.newest_first()[:RELEASES_SHOWN])
    tallies = {
        row["target_version"]: row
        for row in Request.objects.filter(
            kind=Kind.UPGRADE, target_version__in=[r.version for r in releases]
        )
        .exclude(state__in=[State.CANCELLED, State.REJECTED])
        .order_by()
        .values("target_version")
        .annotate(
            total=Count("id"),
            upgraded=Count("id", filter=Q(state=State.DONE)),
            within=Count(
                "id",
                filter=Q(state=State.DONE, resolution_stopped_at__isnull=False)
                & (
                    Q(resolution_breach_at__isnull=True)
                    | Q(resolution_stopped_at__lte=F("resolution_breach_at"))
                ),
            ),
        )
    }
    rows = []
    for release in releases:
        tally: Mapping[str, Any] = tallies.get(release.version) or {}
        total = tally.get("total", 0)
        rows.append(
            {
                "version": release.version,
                "kind": release.kind,
                "published_at": timezone.localtime(release.published_at).isoformat(),
                "due_at": timezone.localtime(progress.due_at(release)).isoformat(),
                "upgraded": tally.get("upgraded", 0),
                "total": total,
                "within_sla_pct": round(100 * tally.get("within", 0) / total, 1) if total else None,
            }
        )
    return {
        "latest_version": newest.version if newest else None,
        "active_instances": len(versions),
        "on_latest": on_latest,
        "releases": rows,
    }
