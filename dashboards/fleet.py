"""The fleet: every instance with how far its version is behind and what it costs a month.

Costs are provisioning.models.monthly_cost, the figure the instance pages show too: GCP list
prices for a running instance, the snapshot's storage for a suspended one (see there).
"""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Max
from django.utils import timezone

from incidents.models import UNRESOLVED_STATES, Incident
from provisioning.models import MACHINE_TYPES, Instance, InstanceStatus, Run, RunState
from provisioning.models import NETWORK_USD as NETWORK_USD
from provisioning.models import SNAPSHOT_USD as SNAPSHOT_USD
from provisioning.models import STORAGE_USD as STORAGE_USD
from provisioning.models import monthly_cost as monthly_cost
from releases.models import Release
from requests_app.models import Kind, Request, State, open_requests_of_instance
from requests_app.validation import parse_version

STATUS_ORDER = [
    InstanceStatus.ACTIVE,
    InstanceStatus.PROVISIONING,
    InstanceStatus.FAILED,
    InstanceStatus.SUSPENDED,
    InstanceStatus.TORN_DOWN,
]


def behind(
    version: str, latest: tuple[int, ...] | None, known: Collection[tuple[int, ...]]
) -> tuple[str, int | None]:
    """(label, releases behind) of `version` against `latest`. `known` holds every version the
    portal has seen (instances and upgrade targets): "releases" counts the known ones newer than
    `version`, and the label says whether the gap to the latest is major, minor or patch."""
    mine = parse_version(version)
    if mine is None or latest is None:
        return "unknown", None
    if mine == latest:
        return "latest", 0
    if mine > latest:  # adopted or upgraded by hand to a version no recorded release names
        return "ahead of the latest release", 0
    newer = sum(1 for other in known if other > mine)
    place = next(i for i in range(3) if latest[i] != mine[i])
    gap = ("major", "minor", "patch")[place]
    return f"{newer} release{'' if newer == 1 else 's'} behind ({gap})", newer


@dataclass
class FleetRow:
    instance: Instance
    cost: int
    behind: str
    releases_behind: int | None
    vcpus: int | None
    behind_days: int | None = None  # since the first release newer than its version came out
    suspended_days: int | None = None
    incidents: list[Incident] = field(default_factory=list)  # unresolved, most severe first


def fleet(category: str = "") -> tuple[list[FleetRow], str | None, dict[str, Any]]:
    """(rows, latest version text, totals) of every instance, or of those of `category`: a
    fixed number of queries whatever the size of the fleet. The latest version and how far
    behind it an instance is count every instance and request, whatever the category."""
    found = Instance.objects.all()
    if category:
        found = found.filter(category=category)
    instances = list(found.annotate(open_requests=open_requests_of_instance()))
    targets = (
        Request.objects.exclude(target_version="")
        .exclude(state__in=[State.REJECTED, State.CANCELLED])
        .order_by()
        .values_list("target_version", flat=True)
        .distinct()
    )
    released = {
        (r.major, r.minor, r.patch): r.published_at
        for r in Release.objects.only("major", "minor", "patch", "published_at")
    }
    versions = [i.version for i in instances]
    if category:  # the versions of the rest of the fleet count too
        versions += Instance.objects.order_by().values_list("version", flat=True).distinct()
    known = {
        parsed for text in [*versions, *targets] if (parsed := parse_version(text)) is not None
    } | set(released)
    # The newest recorded release is the latest; without releases, the highest version seen.
    latest = max(released) if released else (max(known) if known else None)
    now = timezone.now()
    suspensions = _suspended_since(
        [i.pk for i in instances if i.status == InstanceStatus.SUSPENDED]
    )
    incidents = open_incidents_by_instance()
    rows: list[FleetRow] = []
    for instance in instances:
        label, count = behind(instance.version, latest, known)
        if instance.status == InstanceStatus.TORN_DOWN:
            label, count = "—", None
        spec = MACHINE_TYPES.get(instance.machine_type, {})
        row = FleetRow(instance, monthly_cost(instance), label, count, spec.get("vcpus"))
        mine = parse_version(instance.version)
        if count and mine is not None:
            newer = [at for key, at in released.items() if key > mine]
            if newer:
                row.behind_days = (now - min(newer)).days
        if instance.pk in suspensions:
            row.suspended_days = (now - suspensions[instance.pk]).days
        row.incidents = incidents.get(instance.pk, [])
        rows.append(row)
    rows.sort(
        key=lambda r: (STATUS_ORDER.index(InstanceStatus(r.instance.status)), r.instance.slug)
    )
    totals = {
        "instances": len(rows),
        "live": sum(r.instance.status != InstanceStatus.TORN_DOWN for r in rows),
        "monthly_usd": sum(r.cost for r in rows),
        "behind": sum(1 for r in rows if r.releases_behind),
        "incidents": len({i.pk for r in rows for i in r.incidents}),
        "by_status": [
            (status.label, count)
            for status in STATUS_ORDER
            if (count := sum(r.instance.status == status for r in rows))
        ],
    }
    latest_text = ".".join(str(part) for part in latest) if latest else None
    return rows, latest_text, totals


def open_incidents_by_instance() -> dict[int, list[Incident]]:
    """The unresolved incidents of each instance, most severe first: one query."""
    links = (
        Incident.instances.through.objects.filter(incident__state__in=UNRESOLVED_STATES)
        .select_related("incident")
        .only(
            "instance_id",
            "incident__id",
            "incident__title",
            "incident__severity",
            "incident__state",
        )
        .order_by("incident__severity", "-incident__created_at", "incident_id")
    )
    found: dict[int, list[Incident]] = {}
    for link in links:
        found.setdefault(link.instance_id, []).append(link.incident)
    return found


def _suspended_since(instance_ids: list[int]) -> dict[int, datetime]:
    """When each suspended instance was suspended: its last suspend request done or suspend run
    applied (the demo seed suspends by a run of its own). Two queries."""
    if not instance_ids:
        return {}
    found: dict[int, datetime] = {}
    by_request = (
        Request.objects.filter(instance_id__in=instance_ids, kind=Kind.SUSPEND, state=State.DONE)
        .order_by()
        .values_list("instance_id")
        .annotate(at=Max("ended_at"))
    )
    by_run = (
        Run.objects.filter(instance_id__in=instance_ids, kind=Kind.SUSPEND, state=RunState.APPLIED)
        .order_by()
        .values_list("instance_id")
        .annotate(at=Max("finished_at"))
    )
    for pk, at in [*by_request, *by_run]:
        if pk is not None and at is not None and (pk not in found or at > found[pk]):
            found[pk] = at
    return found
