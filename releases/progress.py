"""Where a release stands in the fleet: its due instant and, per instance, its upgrade."""

from datetime import datetime
from typing import Any

from provisioning import runs
from releases.models import Release, WaveItem
from requests_app.models import Event, Kind, Request, State
from requests_app.sla import timers


def due_at(release: Release) -> datetime:
    """When the upgrades to `release` are due: the upgrade policy's resolution target (7
    calendar days by default) from publication, by the same engine as the requests' timers."""
    probe = Request(
        kind=Kind.UPGRADE,
        created_at=release.published_at,
        release_published_at=release.published_at,
    )
    timers.on_filed(probe)
    return probe.resolution_breach_at or probe.resolution_due_at or release.published_at


def upgrades(release: Release) -> list[Request]:
    """The latest upgrade request to `release` of each instance, by slug."""
    found: dict[int | None, Request] = {}
    for request in (
        Request.objects.filter(kind=Kind.UPGRADE, target_version=release.version)
        .select_related("instance", "assignee")
        .order_by("instance_slug", "-created_at", "-id")
    ):
        found.setdefault(request.instance_id, request)
    return list(found.values())


def rows(release: Release) -> list[dict[str, Any]]:
    requests = upgrades(release)
    ids = [r.pk for r in requests]
    run_lists = runs.runs_for_many(ids)
    from_versions = {
        e.request_id: e.data.get("from_version", "")
        for e in Event.objects.filter(request_id__in=ids, action="submit").only(
            "request_id", "data"
        )
    }
    waves = dict(
        WaveItem.objects.filter(request_id__in=ids)
        .order_by("wave__number")
        .values_list("request_id", "wave__number")
    )
    out = []
    for request in requests:
        run_list = run_lists.get(request.pk) or []
        latest = run_list[-1] if run_list else None
        instance = request.instance
        from_version = from_versions.get(request.pk) or (
            instance.version if instance and request.state != State.DONE else ""
        )
        out.append(
            {
                "slug": request.instance_slug,
                "from_version": from_version,
                "request": request.pk,
                "state": request.state,
                "run_state": latest.state if latest else None,
                "wave": waves.get(request.pk),
                "customer": request.customer,
                "assignee": request.assignee.get_username() if request.assignee else None,
                "request_obj": request,
                "run_obj": latest,
            }
        )
    return out
