"""SLA timers (CONTRACTS.md section 4): policies, the clocks kept on the request row, their JSON.

The workflow calls `on_event` inside each transition's transaction; it starts, stops and pauses
the clocks and stores each open timer's due and 75% instants, which the sweep finds with one
indexed query. The arithmetic lives in `sla_calendar`, which knows nothing of Django.
"""

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from portal import roles
from requests_app import sla_calendar
from requests_app.models import Closure, Kind, Request, SlaPolicy, State
from requests_app.sla_calendar import CALENDAR, WORKING

AT_RISK_FRACTION = 0.75
TARGET_DATE = SlaPolicy.Mode.TARGET_DATE
RESPONSE, RESOLUTION = "response", "resolution"
TIMERS = (RESPONSE, RESOLUTION)

# The table of section 4: (response target, mode), (resolution target, mode).
DEFAULT_POLICIES = {
    Kind.CREATE: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.SUSPEND: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.RESUME: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.TEARDOWN: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.ENABLE_EXECUTORS: ((timedelta(hours=24), CALENDAR), (timedelta(days=15), WORKING)),
    Kind.UPGRADE: ((None, CALENDAR), (timedelta(days=7), CALENDAR)),
    Kind.FEATURE: ((timedelta(hours=24), CALENDAR), (None, TARGET_DATE)),
}


@dataclass(frozen=True)
class Target:
    seconds: float | None  # None: no target (a feature before set_target)
    mode: str  # calendar or working


# -- configuration, cached per process ---------------------------------------------------------

_cache = {"at": 0.0, "calendar": None, "policies": None}
_lock = threading.Lock()
CACHE_SECONDS = 30


def invalidate_cache():
    with _lock:
        _cache["at"] = 0.0


def _load():
    with _lock:
        if _cache["calendar"] is not None and time.monotonic() - _cache["at"] < CACHE_SECONDS:
            return _cache["calendar"], _cache["policies"]
    calendar = sla_calendar.WorkingCalendar(
        settings.SLA_TIMEZONE,
        settings.SLA_HOLIDAYS,
        closures=list(Closure.objects.values_list("date", flat=True)),
    )
    policies = {p.kind: p for p in SlaPolicy.objects.all()}
    with _lock:
        _cache.update(at=time.monotonic(), calendar=calendar, policies=policies)
    return calendar, policies


def get_calendar():
    return _load()[0]


def target_for(request, which, policies=None):
    """The timer's target for this request, or None when the kind has no such timer."""
    policies = policies if policies is not None else _load()[1]
    started = _epoch(request.resolution_started_at)
    found = _target_seconds(request.kind, which, started, _epoch(request.target_due_at), policies)
    if found is None:
        # A feature before set_target still has a (running) resolution timer, without target.
        policy = policies.get(request.kind)
        mode = policy.resolution_mode if policy else DEFAULT_POLICIES[request.kind][1][1]
        if which == RESOLUTION and mode == TARGET_DATE:
            return Target(None, CALENDAR)
        return None
    return Target(*found)


# -- the clocks on the row ---------------------------------------------------------------------


def pauses_of(request):
    return [
        (datetime.fromisoformat(begin), datetime.fromisoformat(end) if end else None)
        for begin, end in request.resolution_pauses
    ]


def on_filed(request):
    """An upgrade's resolution clock runs from the release, not from approval."""
    if request.kind == Kind.UPGRADE:
        request.resolution_started_at = request.release_published_at or request.created_at
    return recompute(request)


def on_event(request, event, user=None):
    """Move the clocks for one history event; returns the changed fields (already set)."""
    at = event.at
    changed = set()
    if event.to_state == State.QUEUED and event.from_state != State.QUEUED:
        if target_for(request, RESPONSE) is not None and request.response_started_at is None:
            request.response_started_at = at
            changed.add("response_started_at")
        if request.resolution_started_at is None:
            request.resolution_started_at = at
            changed.add("resolution_started_at")
    stops_response = event.action == "pick_up" or (
        event.action == "comment" and user is not None and roles.DEVOPS in roles.roles_of(user)
    )
    if (
        stops_response
        and request.response_started_at is not None
        and request.response_stopped_at is None
        and at >= request.response_started_at
    ):
        request.response_stopped_at = at
        changed.add("response_stopped_at")
    if event.action == "wait_on_customer" and request.resolution_paused_at is None:
        request.resolution_pauses = [*request.resolution_pauses, [at.isoformat(), None]]
        request.resolution_paused_at = at
        changed |= {"resolution_pauses", "resolution_paused_at"}
    if event.action == "resume_work" and request.resolution_paused_at is not None:
        pauses = [list(p) for p in request.resolution_pauses]
        pauses[-1][1] = at.isoformat()
        request.resolution_pauses = pauses
        request.resolution_paused_at = None
        changed |= {"resolution_pauses", "resolution_paused_at"}
    if event.to_state in (State.DONE, State.REJECTED, State.CANCELLED) and not request.ended_at:
        request.ended_at = at
        changed.add("ended_at")
        if event.to_state == State.DONE and request.resolution_started_at:
            request.resolution_stopped_at = at
            changed.add("resolution_stopped_at")
    return changed | recompute(request)


def closed_pauses_of(request):
    return [(begin, end) for begin, end in pauses_of(request) if end is not None]


def _target_seconds(kind, which, started, target_due_at, policies):
    """(seconds, mode) of a timer, or None: `started` and `target_due_at` in epoch seconds."""
    policy = policies.get(kind)
    if policy is not None:
        target, mode = (
            (policy.response_target, policy.response_mode)
            if which == RESPONSE
            else (policy.resolution_target, policy.resolution_mode)
        )
    else:
        target, mode = DEFAULT_POLICIES[kind][0 if which == RESPONSE else 1]
    if mode == TARGET_DATE:
        if target_due_at is None or started is None:
            return None
        return target_due_at - started, CALENDAR
    if target is None:
        return None
    return target.total_seconds(), mode


def instants(kind, which, started, target_due_at, closed_pauses, calendar, policies):
    """(due, warn) in epoch seconds for one timer, counting closed pauses only; (None, None)
    when it has not started or has no target. Used for one request and in bulk alike."""
    if started is None:
        return None, None
    found = _target_seconds(kind, which, started, target_due_at, policies)
    if found is None:
        return None, None
    seconds, mode = found
    due = sla_calendar.due_epoch(mode, started, seconds, calendar, closed_pauses)
    warn = sla_calendar.due_epoch(
        mode, started, seconds * AT_RISK_FRACTION, calendar, closed_pauses
    )
    return due, warn


def _epoch(value):
    return None if value is None else value.timestamp()


def _from_epoch(value):
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def recompute(request, calendar=None, policies=None):
    """Store each timer's due and 75% instants, counting closed pauses only: while a pause is
    open the stored instants are those the timer had when it was paused (the sweep skips
    paused timers, and a timer paused after its due instant stays breached)."""
    if calendar is None or policies is None:
        calendar, policies = _load()
    changed = set()
    target_due = _epoch(request.target_due_at)
    for which in TIMERS:
        pauses = (
            [(b.timestamp(), e.timestamp()) for b, e in closed_pauses_of(request)]
            if which == RESOLUTION
            else []
        )
        started = _epoch(getattr(request, f"{which}_started_at"))
        due, warn = instants(request.kind, which, started, target_due, pauses, calendar, policies)
        for field, value in ((f"{which}_due_at", due), (f"{which}_warn_at", warn)):
            value = _from_epoch(value)
            if getattr(request, field) != value:
                setattr(request, field, value)
                changed.add(field)
    return changed


TIMER_FIELDS = [
    f"{which}_{name}"
    for which in TIMERS
    for name in ("started_at", "stopped_at", "due_at", "warn_at")
] + ["resolution_pauses", "resolution_paused_at", "ended_at"]


# -- the JSON of section 4 ---------------------------------------------------------------------


def _iso(value):
    return timezone.localtime(value).isoformat() if value else None


def timer_json(request, which, now=None, calendar=None, policies=None):
    if calendar is None or policies is None:
        calendar, policies = _load()
    target = target_for(request, which, policies)
    if target is None:
        return None
    now = now or timezone.now()
    started = getattr(request, f"{which}_started_at")
    stopped = getattr(request, f"{which}_stopped_at")
    pauses = pauses_of(request) if which == RESOLUTION else []
    paused = bool(pauses and pauses[-1][1] is None and stopped is None)
    cancelled = request.state in (State.REJECTED, State.CANCELLED) and stopped is None
    if started is None:
        return {
            "started_at": None,
            "due_at": None,
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 0,
            "remaining_seconds": int(target.seconds) if target.seconds is not None else None,
            "status": "cancelled" if cancelled else "pending",
            "at_risk": False,
        }
    until = stopped or (request.ended_at if cancelled else None) or now
    until = max(until, started)
    elapsed = sla_calendar.elapsed_seconds(target.mode, started, until, calendar, pauses)
    due = None
    remaining = None
    if target.seconds is not None:
        remaining = target.seconds - elapsed
        if not paused:
            due = sla_calendar.due_instant(target.mode, started, target.seconds, calendar, pauses)
    breached = remaining is not None and remaining < 0
    if cancelled:
        status = "cancelled"
    elif stopped is not None:
        status = "breached" if breached else "met"
    elif breached:
        status = "breached"
    elif paused:
        status = "paused"
    else:
        status = "running"
    at_risk = (
        status == "running"
        and target.seconds is not None
        and elapsed >= AT_RISK_FRACTION * target.seconds
    )
    return {
        "started_at": _iso(started),
        "due_at": _iso(due),
        "stopped_at": _iso(stopped),
        "paused": paused,
        "elapsed_seconds": int(elapsed),
        "remaining_seconds": int(remaining) if remaining is not None else None,
        "status": status,
        "at_risk": at_risk,
    }


def sla_json(request, now=None):
    calendar, policies = _load()
    return {which: timer_json(request, which, now, calendar, policies) for which in TIMERS}


BULK_COLUMNS = ["response_due_at", "response_warn_at", "resolution_due_at", "resolution_warn_at"]


def recompute_open(batch_size=5000):
    """Recompute every unfinished timer after a policy or closure change. Elapsed and paused
    time are kept because they follow from the start, the pauses and the calendar."""
    invalidate_cache()
    calendar, policies = _load()
    if connection.vendor == "postgresql":
        return _recompute_open_postgresql(calendar, policies, batch_size)
    changed, batch = 0, []
    queryset = Request.objects.filter(ended_at__isnull=True).only(
        "id", "kind", "target_due_at", *TIMER_FIELDS
    )
    for request in queryset.iterator(chunk_size=batch_size):
        if recompute(request, calendar, policies):
            batch.append(request)
        if len(batch) >= batch_size:
            changed += Request.objects.bulk_update(batch, BULK_COLUMNS)
            batch = []
    if batch:
        changed += Request.objects.bulk_update(batch, BULK_COLUMNS)
    return changed


def _recompute_open_postgresql(calendar, policies, batch_size):
    """The same on PostgreSQL, fast enough for 100,000 open requests: instants travel as epoch
    seconds (no datetime objects), and changed rows go back with one UPDATE ... FROM VALUES per
    batch instead of bulk_update's CASE expressions."""
    table = Request._meta.db_table
    epoch = "EXTRACT(EPOCH FROM {})::float8"
    columns = [
        "response_started_at",
        "resolution_started_at",
        "target_due_at",
        *BULK_COLUMNS,
    ]
    select = ", ".join(["id", "kind", "resolution_pauses"] + [epoch.format(c) for c in columns])
    changed = 0
    with transaction.atomic(), connection.cursor() as reader:
        reader.execute(f"SELECT {select} FROM {table} WHERE ended_at IS NULL")  # noqa: S608
        while rows := reader.fetchmany(batch_size):
            updates = []
            for pk, kind, pauses, r_start, s_start, target_due, *old in rows:
                if isinstance(pauses, str):
                    pauses = json.loads(pauses)
                closed = [
                    (datetime.fromisoformat(b).timestamp(), datetime.fromisoformat(e).timestamp())
                    for b, e in pauses or []
                    if e
                ]
                new = [
                    *instants(kind, RESPONSE, r_start, target_due, [], calendar, policies),
                    *instants(kind, RESOLUTION, s_start, target_due, closed, calendar, policies),
                ]
                if any(_differs(a, b) for a, b in zip(new, old, strict=True)):
                    updates.append((pk, *new))
            if updates:
                _write_instants(table, updates)
                changed += len(updates)
    return changed


def _differs(new, old):
    if new is None or old is None:
        return new is not old
    return abs(new - old) > 1e-6


def _write_instants(table, updates):
    values = ", ".join(
        ["(%s::bigint, to_timestamp(%s), to_timestamp(%s), to_timestamp(%s), to_timestamp(%s))"]
        * len(updates)
    )
    params = [value for row in updates for value in row]
    sets = ", ".join(f"{c} = v.{c}" for c in BULK_COLUMNS)
    with connection.cursor() as writer:
        writer.execute(
            f"UPDATE {table} AS r SET {sets} FROM (VALUES {values}) "  # noqa: S608
            f"AS v(id, {', '.join(BULK_COLUMNS)}) WHERE r.id = v.id",
            params,
        )
