"""The clocks kept on the request row: started, stopped, paused, and each open timer's due and
75% instants, which the sweep finds with one indexed query.

The workflow calls `on_event` inside each transition's transaction. The arithmetic lives in
`calendar`, which knows nothing of Django; the targets come from `policies`.
"""

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from portal import roles
from requests_app import signals
from requests_app.models import Event, Kind, Request, State
from requests_app.sla import calendar as sla_calendar
from requests_app.sla.policies import (
    AT_RISK_FRACTION,
    RESOLUTION,
    RESPONSE,
    TIMERS,
    Policies,
    invalidate_cache,
    load,
    target_for,
    target_seconds,
)

if TYPE_CHECKING:
    from portal.roles import AnyUser

# -- the clocks on the row ---------------------------------------------------------------------


def pauses_of(request: Request) -> list[tuple[datetime, datetime | None]]:
    return [
        (datetime.fromisoformat(begin), datetime.fromisoformat(end) if end else None)
        for begin, end in request.resolution_pauses
    ]


def on_filed(request: Request) -> set[str]:
    """An upgrade's resolution clock runs from the release, not from approval."""
    if request.kind == Kind.UPGRADE:
        request.resolution_started_at = request.release_published_at or request.created_at
    return recompute(request)


def on_event(request: Request, event: Event, user: "AnyUser | None" = None) -> set[str]:
    """Move the clocks for one history event; returns the changed fields (already set)."""
    at = event.at
    changed: set[str] = set()
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


def closed_pauses_of(request: Request) -> list[tuple[datetime, datetime]]:
    return [(begin, end) for begin, end in pauses_of(request) if end is not None]


def instants(
    kind: str,
    which: str,
    started: float | None,
    target_due_at: float | None,
    closed_pauses: Sequence[sla_calendar.Pause],
    calendar: sla_calendar.WorkingCalendar,
    policies: Policies,
) -> tuple[float | None, float | None, float | None]:
    """(due, warn, breach) in epoch seconds for one timer, counting closed pauses only: when
    the target is used up, when 75% of it is, and the instant after which the timer is breached
    (the clock runs again after `due`). All None when it has not started or has no target.
    Used for one request and in bulk alike."""
    if started is None:
        return None, None, None
    found = target_seconds(kind, which, started, target_due_at, policies)
    if found is None:
        return None, None, None
    return deadlines(*found, started, closed_pauses, calendar)


def deadlines(
    seconds: float,
    mode: str,
    started: float,
    closed_pauses: Sequence[sla_calendar.Pause],
    calendar: sla_calendar.WorkingCalendar,
) -> tuple[float | None, float | None, float | None]:
    """(due, warn, breach) in epoch seconds of a clock started at `started` with a target of
    `seconds` in `mode` (calendar or working time): any timer's, a request's or another's."""
    due = sla_calendar.due_epoch(mode, started, seconds, calendar, closed_pauses)
    warn = sla_calendar.due_epoch(
        mode, started, seconds * AT_RISK_FRACTION, calendar, closed_pauses
    )
    breach = None if due is None else sla_calendar.breach_epoch(mode, due, calendar, closed_pauses)
    return due, warn, breach


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def recompute(
    request: Request,
    calendar: sla_calendar.WorkingCalendar | None = None,
    policies: Policies | None = None,
) -> set[str]:
    """Store each timer's due and 75% instants, counting closed pauses only: while a pause is
    open the stored instants are those the timer had when it was paused (the sweep skips
    paused timers, and a timer paused after its due instant stays breached)."""
    if calendar is None or policies is None:
        calendar, policies = load()
    changed: set[str] = set()
    target_due = _epoch(request.target_due_at)
    for which in TIMERS:
        pauses = (
            [(b.timestamp(), e.timestamp()) for b, e in closed_pauses_of(request)]
            if which == RESOLUTION
            else []
        )
        started = _epoch(getattr(request, f"{which}_started_at"))
        due, warn, breach = instants(
            request.kind, which, started, target_due, pauses, calendar, policies
        )
        for field, epoch in (
            (f"{which}_due_at", due),
            (f"{which}_warn_at", warn),
            (f"{which}_breach_at", breach),
        ):
            value = from_epoch(epoch)
            if getattr(request, field) != value:
                setattr(request, field, value)
                changed.add(field)
    return changed


TIMER_FIELDS = [
    f"{which}_{name}"
    for which in TIMERS
    for name in ("started_at", "stopped_at", "due_at", "warn_at", "breach_at")
] + ["resolution_pauses", "resolution_paused_at", "ended_at"]


BULK_COLUMNS = [f"{which}_{moment}_at" for which in TIMERS for moment in ("due", "warn", "breach")]


def recompute_open(batch_size: int = 5000) -> int:
    """Recompute every unfinished timer after a policy or closure change. Elapsed and paused
    time are kept because they follow from the start, the pauses and the calendar."""
    invalidate_cache()
    calendar, policies = load()
    if connection.vendor == "postgresql":
        changed = _recompute_open_postgresql(calendar, policies, batch_size)
    else:
        changed = _recompute_open_python(calendar, policies, batch_size)
    signals.sla_calendar_changed.send(sender=Request)
    return changed


def _recompute_open_python(
    calendar: sla_calendar.WorkingCalendar, policies: Policies, batch_size: int
) -> int:
    changed = 0
    batch: list[Request] = []
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


# The UPDATEs of a large recompute keep a PostgreSQL backend busy (each changed row adds an entry
# to every index of the request table): from PARALLEL_FROM open requests on, WRITERS connections
# share them, each with the rows of its own ids.
WRITERS = 2
PARALLEL_FROM = 20_000


def _recompute_open_postgresql(
    calendar: sla_calendar.WorkingCalendar, policies: Policies, batch_size: int
) -> int:
    """The same on PostgreSQL, for 100,000 open requests in seconds:

    - the open rows are read once, instants as epoch seconds (no datetime objects), each with
      its row version (`xmin`);
    - each batch of changed instants goes back as arrays in one UPDATE ... FROM unnest(...),
      sent in pipeline mode: the server writes a batch while Python computes the next;
    - an UPDATE writes a row only if it is still the version read. A row that a transition
      moved meanwhile is read again under a row lock and computed once more, so a pause that
      ended meanwhile is never overwritten with instants computed without it;
    - from PARALLEL_FROM rows on, and when no transaction is open around the call, WRITERS
      connections write at once, each in its own transaction. Each row is written whole, and
      a recompute that fails part way is finished by running it again.
    """
    rows = _open_rows()
    if len(rows) >= PARALLEL_FROM and not connection.in_atomic_block:
        # Contiguous runs of the table (rows come in its physical order): two writers
        # interleaved row by row would fight over the same heap pages' locks.
        n = len(rows)
        slices = [rows[i * n // WRITERS : (i + 1) * n // WRITERS] for i in range(WRITERS)]
        with ThreadPoolExecutor(WRITERS, thread_name_prefix="sla-recompute") as pool:
            done = list(
                pool.map(lambda part: _write_apart(part, calendar, policies, batch_size), slices)
            )
        written, stale = sum(n for n, _ in done), [pk for _, ids in done for pk in ids]
    else:
        with transaction.atomic():
            written, stale = _write_instants(_changed(rows, calendar, policies), batch_size)
    if stale:
        with transaction.atomic():
            more, left = _write_instants(
                _changed(_open_rows(stale), calendar, policies), batch_size
            )
        assert not left, f"rows locked for the recompute changed under it: {left}"
        written += more
    return written


def _write_apart(
    rows: list[tuple[Any, ...]],
    calendar: sla_calendar.WorkingCalendar,
    policies: Policies,
    batch_size: int,
) -> tuple[int, list[int]]:
    """One writer of a parallel recompute: its rows, on this thread's own connection."""
    try:
        with transaction.atomic():
            return _write_instants(_changed(rows, calendar, policies), batch_size)
    finally:
        connection.close()


_EPOCH_COLUMNS = ["response_started_at", "resolution_started_at", "target_due_at", *BULK_COLUMNS]


def _open_rows(ids: list[int] | None = None) -> list[tuple[Any, ...]]:
    """(id, xmin, kind, pauses, the starts, target and stored instants in epoch seconds) of
    every open request, or of `ids` locked FOR UPDATE."""
    table = connection.ops.quote_name(Request._meta.db_table)
    epochs = ", ".join(f"EXTRACT(EPOCH FROM {c})::float8" for c in _EPOCH_COLUMNS)
    statement = f"SELECT id, xmin::text, kind, resolution_pauses, {epochs} FROM {table} "  # noqa: S608
    with connection.cursor() as cursor:
        if ids is None:
            cursor.execute(statement + "WHERE ended_at IS NULL")
        else:
            cursor.execute(
                statement + "WHERE ended_at IS NULL AND id = ANY(%s) ORDER BY id FOR UPDATE",
                [ids],
            )
        return cursor.fetchall()


def _changed(
    rows: list[tuple[Any, ...]], calendar: sla_calendar.WorkingCalendar, policies: Policies
) -> Iterator[tuple[Any, ...]]:
    """(id, xmin, the six new instants) of each row whose instants move."""
    for pk, version, kind, pauses, r_start, s_start, target_due, *old in rows:
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
            yield (pk, version, *new)


def _differs(new: float | None, old: float | None) -> bool:
    if new is None or old is None:
        return new is not old
    return abs(new - old) > 1e-6


def _write_instants(updates: Iterator[tuple[Any, ...]], batch_size: int) -> tuple[int, list[int]]:
    """Write `updates` in batches, pipelined: (rows written, ids of rows that had changed
    since they were read, left as they are)."""
    table = connection.ops.quote_name(Request._meta.db_table)
    arrays = ", ".join(["%s::bigint[]", "%s::text[]"] + ["%s::float8[]"] * len(BULK_COLUMNS))
    statement = (
        f"UPDATE {table} AS r SET "  # noqa: S608
        + ", ".join(f"{c} = to_timestamp(v.{c})" for c in BULK_COLUMNS)
        + f" FROM unnest({arrays}) AS v(id, version, {', '.join(BULK_COLUMNS)})"
        " WHERE r.id = v.id AND r.xmin = v.version::xid RETURNING r.id"
    )
    connection.ensure_connection()
    raw = connection.connection
    sent: list[int] = []
    cursors = []
    with raw.pipeline():
        while batch := list(islice(updates, batch_size)):
            columns = [list(column) for column in zip(*batch, strict=True)]
            sent += columns[0]
            cursor = raw.cursor()
            cursor.execute(statement, columns)
            cursors.append(cursor)
    written = {pk for cursor in cursors for (pk,) in cursor.fetchall()}
    for cursor in cursors:
        cursor.close()
    return len(written), [pk for pk in sent if pk not in written]
