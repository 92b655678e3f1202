"""The fleet: every instance with how far its version is behind and what it costs a month.

Costs are provisioning.models.monthly_cost, the figure the instance pages show too: GCP list
prices for a running instance, the snapshot's storage for a suspended one (see there).
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, Field, Max, QuerySet, Value, When
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from dashboards.templatetags.dashboard_tags import usd
from incidents.models import UNRESOLVED_STATES, Incident
from portal.markup import display, escape
from provisioning.models import MACHINE_TYPES, Instance, InstanceStatus, Run, RunState
from provisioning.models import NETWORK_USD as NETWORK_USD
from provisioning.models import SNAPSHOT_USD as SNAPSHOT_USD
from provisioning.models import STORAGE_USD as STORAGE_USD
from provisioning.models import monthly_cost as monthly_cost
from releases.models import Release
from requests_app.loading import CompiledOnce, bare
from requests_app.models import Kind, Request, State, open_requests_of_instance
from requests_app.rows import url_maker
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


# Instances per page of the fleet: the page renders a page, the totals count the whole fleet.
FLEET_ROWS = 100
# The columns of an instance the rows read (_row, monthly_cost, the suspended days).
FLEET_COLUMNS = [
    "slug",
    "customer",
    "category",
    "status",
    "drift",
    "version",
    "machine_type",
    "executors_enabled",
]


class KnownCountPaginator(Paginator):
    """A Paginator told how many objects there are, by a query the page runs anyway."""

    def __init__(self, object_list: Any, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.__dict__["count"] = count  # Paginator.count is a cached_property


# The versions requests name and the releases: the same queries on every visit, built once.
TARGET_VERSIONS = CompiledOnce(
    lambda: (
        Request.objects.exclude(target_version="")
        .exclude(state__in=[State.REJECTED, State.CANCELLED])
        .order_by()
        .values_list("target_version")
        .distinct()
    )
)
RELEASES = CompiledOnce(
    lambda: Release.objects.values_list("major", "minor", "patch", "published_at")
)
INSTANCE_VERSIONS = CompiledOnce(
    lambda: Instance.objects.order_by().values_list("version").distinct()
)


def _instances(category: str) -> QuerySet[Instance]:
    found = Instance.objects.all()
    return found.filter(category=category) if category else found


# The rest varies with the category, the page or the instances on it; each is built and
# compiled once per connection for each of those (loading.CompiledOnce): building and compiling
# them took a fifth of the page's time, more than PostgreSQL took to answer them.
GROUPS = CompiledOnce(
    lambda category: (
        _instances(category)
        .order_by()
        .values_list("status", "machine_type", "version")
        .annotate(count=Count("pk"))
    )
)
_RANK = Case(
    *(When(status=status, then=Value(i)) for i, status in enumerate(STATUS_ORDER)),
    default=Value(len(STATUS_ORDER)),
)
# Only what the rows show (not the outputs, the settings and the run's marks).
_PAGE_COLUMNS = ["id", *FLEET_COLUMNS]
PAGE = CompiledOnce(
    lambda category, bottom, top: (
        _instances(category)
        .annotate(status_rank=_RANK, open_requests=open_requests_of_instance())
        .order_by("status_rank", "slug")
        .values_list(*_PAGE_COLUMNS, "open_requests")[bottom:top]
    )
)
_PAGE_ATTNAMES = [
    column.attname
    for name in _PAGE_COLUMNS
    if isinstance(column := Instance._meta.get_field(name), Field)
]
assert len(_PAGE_ATTNAMES) == len(_PAGE_COLUMNS)  # every one a column
# How many unresolved incidents touch an instance of the category: one row, its count.
UNRESOLVED_INCIDENTS = CompiledOnce(
    lambda category: (
        Incident.objects.filter(
            state__in=UNRESOLVED_STATES,
            pk__in=Incident.instances.through.objects.filter(
                instance__in=_instances(category)
            ).values("incident_id"),
        )
        .order_by()
        .values(everything=Value(1))
        .annotate(n=Count("*"))
        .values_list("n")
    )
)


def fleet(
    category: str = "", page_number: str | int | None = None
) -> tuple[list[FleetRow], str | None, dict[str, Any], Page]:
    """(rows of the page, latest version text, totals, the page) of the fleet, or of its
    `category`: a fixed number of queries whatever the size of the fleet, and rows built only
    for the page shown (FLEET_ROWS, in status order then by slug). The totals come from one
    grouped query over every instance. The latest version and how far behind it an instance is
    count every instance and request, whatever the category."""
    db = Instance.objects.db
    groups = GROUPS.rows(category, using=db)
    # The groups count every instance of the category: the pages need no COUNT of their own.
    paginator = KnownCountPaginator([], FLEET_ROWS, count=sum(n for *_, n in groups))
    page = paginator.get_page(page_number)
    bottom = (page.number - 1) * FLEET_ROWS
    instances = []
    for *values, open_requests in PAGE.rows(category, bottom, bottom + FLEET_ROWS, using=db):
        instance = bare(Instance, db, dict(zip(_PAGE_ATTNAMES, values, strict=True)))
        instance.open_requests = open_requests  # type: ignore[attr-defined]
        instances.append(instance)
    page.object_list = instances
    targets = [version for (version,) in TARGET_VERSIONS.rows(using=Request.objects.db)]
    released = {
        (major, minor, patch): at
        for major, minor, patch, at in RELEASES.rows(using=Release.objects.db)
    }
    versions = [version for _, _, version, _ in groups]
    if category:  # the versions of the rest of the fleet count too
        versions += [version for (version,) in INSTANCE_VERSIONS.rows(using=db)]
    known = {
        parsed for text in [*versions, *targets] if (parsed := parse_version(text)) is not None
    } | set(released)
    # The newest recorded release is the latest; without releases, the highest version seen.
    latest = max(released) if released else (max(known) if known else None)
    now = timezone.now()
    suspensions = _suspended_since(
        [i.pk for i in instances if i.status == InstanceStatus.SUSPENDED]
    )
    incidents = open_incidents_by_instance([i.pk for i in instances])
    rows: list[FleetRow] = []
    for instance in instances:
        label, count = _behind_of(instance.status, instance.version, latest, known)
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
    by_status = {status: 0 for status in STATUS_ORDER}
    monthly = behind_count = 0
    for status, machine_type, version, number in groups:
        by_status[status] = by_status.get(status, 0) + number
        monthly += number * monthly_cost(Instance(status=status, machine_type=machine_type))
        behind_count += number * bool(_behind_of(status, version, latest, known)[1])
    totals = {
        "instances": page.paginator.count,
        "live": page.paginator.count - by_status[InstanceStatus.TORN_DOWN],
        "monthly_usd": monthly,
        "behind": behind_count,
        "incidents": UNRESOLVED_INCIDENTS.rows(category, using=Incident.objects.db)[0][0],
        "by_status": [
            (InstanceStatus(status).label, count)
            for status in STATUS_ORDER
            if (count := by_status[status])
        ],
    }
    latest_text = ".".join(str(part) for part in latest) if latest else None
    return rows, latest_text, totals, page


def _behind_of(
    status: str, version: str, latest: tuple[int, ...] | None, known: Collection[tuple[int, ...]]
) -> tuple[str, int | None]:
    """`behind` of an instance in `status`: a torn-down instance is behind nothing."""
    if status == InstanceStatus.TORN_DOWN:
        return "—", None
    return behind(version, latest, known)


# The unresolved incidents of the instances of a page, most severe first, and when its
# suspended instances were suspended: compiled once for each page's instances.
OPEN_INCIDENTS = CompiledOnce(
    lambda instance_ids: (
        Incident.instances.through.objects.filter(
            incident__state__in=UNRESOLVED_STATES, instance_id__in=instance_ids
        )
        .order_by("incident__severity", "-incident__created_at", "incident_id")
        .values_list(
            "instance_id", "incident_id", "incident__title", "incident__severity", "incident__state"
        )
    )
)
SUSPEND_REQUESTS_DONE = CompiledOnce(
    lambda instance_ids: (
        Request.objects.filter(instance_id__in=instance_ids, kind=Kind.SUSPEND, state=State.DONE)
        .order_by()
        .values_list("instance_id")
        .annotate(at=Max("ended_at"))
    )
)
SUSPEND_RUNS_APPLIED = CompiledOnce(
    lambda instance_ids: (
        Run.objects.filter(instance_id__in=instance_ids, kind=Kind.SUSPEND, state=RunState.APPLIED)
        .order_by()
        .values_list("instance_id")
        .annotate(at=Max("finished_at"))
    )
)


def open_incidents_by_instance(instance_ids: Collection[int]) -> dict[int, list[Incident]]:
    """The unresolved incidents of each instance of `instance_ids`, most severe first: one
    query."""
    if not instance_ids:
        return {}
    db = Incident.objects.db
    found: dict[int, list[Incident]] = {}
    for instance_id, pk, title, severity, state in OPEN_INCIDENTS.rows(
        tuple(instance_ids), using=db
    ):
        incident = bare(
            Incident, db, {"id": pk, "title": title, "severity": severity, "state": state}
        )
        found.setdefault(instance_id, []).append(incident)
    return found


def _suspended_since(instance_ids: list[int]) -> dict[int, datetime]:
    """When each suspended instance was suspended: its last suspend request done or suspend run
    applied (the demo seed suspends by a run of its own). Two queries."""
    if not instance_ids:
        return {}
    key = tuple(instance_ids)
    found: dict[int, datetime] = {}
    for pk, at in [
        *SUSPEND_REQUESTS_DONE.rows(key, using=Request.objects.db),
        *SUSPEND_RUNS_APPLIED.rows(key, using=Run.objects.db),
    ]:
        if pk is not None and at is not None and (pk not in found or at > found[pk]):
            found[pk] = at
    return found


# -- the table's rows ---------------------------------------------------------------------------


def rows_html(rows: list[FleetRow]) -> SafeString:
    """The fleet table's rows, drawn in Python (as requests_app/rows.py draws the request
    tables): a page shows 100 instances, and the template engine took most of its time. Every
    value is escaped where it enters the markup."""
    instance_url = url_maker("instance_detail", 1)
    incident_url = url_maker("incident_detail", 1)
    return mark_safe("\n".join(_row(row, instance_url, incident_url) for row in rows))


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"


def _row(row: FleetRow, instance_url: Callable[..., str], incident_url: Callable[..., str]) -> str:
    i = row.instance
    status = escape(i.status)
    label = escape(display(Instance, "status", i.status))
    state = f'<span class="badge status-{status}">{label}</span>'
    if row.suspended_days is not None:
        state += (
            f' <span class="muted small" data-testid="suspended-days">'
            f"{_days(row.suspended_days)}</span>"
        )
    if i.drift:
        problems = escape(" ".join(str(p) for p in (i.drift or {}).get("problems", [])))
        state += (
            ' <span class="badge status-failed" data-testid="drift" '
            f'title="{problems}">drift</span>'
        )
    incidents = (
        "".join(
            f'<a class="badge sev sev-{escape(n.severity)}" href="{escape(incident_url(n.pk))}" '
            f'title="#{n.pk} {escape(n.title)} '
            f'({escape(str(display(Incident, "state", n.state)).lower())})" '
            f'data-testid="incident-badge" data-incident="{n.pk}">'
            f"{escape(str(n.severity).upper())} #{n.pk}</a> "
            for n in row.incidents
        )
        or '<span class="muted">—</span>'
    )
    releases = "" if row.releases_behind is None else str(row.releases_behind)
    if row.releases_behind:
        behind = f'<span class="badge behind">{escape(row.behind)}</span>'
        if row.behind_days is not None:
            behind += (
                f' <span class="muted small" data-testid="behind-days">'
                f"for {_days(row.behind_days)}</span>"
            )
    else:
        behind = f'<span class="muted">{escape(row.behind)}</span>'
    machine: str = escape(i.machine_type)
    if row.vcpus:
        machine += f' <span class="muted small">({row.vcpus} vCPU)</span>'
    slug = escape(i.slug)
    return (
        f'<tr data-slug="{slug}" data-status="{status}">'
        f'<td><a href="{escape(instance_url(i.slug))}">{slug}</a></td>'
        f"<td>{escape(i.customer)}</td>"
        f'<td data-field="category">{escape(display(Instance, "category", i.category))}</td>'
        f"<td>{state}</td>"
        f'<td data-field="incidents">{incidents}</td>'
        f"<td>{escape(i.version or '—')}</td>"
        f'<td data-field="behind" data-releases="{releases}">{behind}</td>'
        f'<td class="nowrap">{machine}</td>'
        f"<td>{'on' if i.executors_enabled else 'off'}</td>"
        f'<td class="num">{i.open_requests}</td>'  # type: ignore[attr-defined]
        f'<td class="num" data-field="cost" data-value="{row.cost}">{usd(row.cost)}</td>'
        "</tr>"
    )
