"""The SLA sweep (every minute, from portal/cron.py): find the timers that passed 75% of their
target or their breach instant (sla/status.py: elapsed > target, so a working-day target used
up at Saturday 00:00 breaches at Monday 00:00) with indexed queries, and claim each alert with a
conditional UPDATE so that two sweepers running at once never send twice. At-risk warnings of
working-day timers wait for working hours; breach alerts go at once.

`sweep` does this for any model that keeps its timers as a request does (`<timer>_warn_at`,
`_breach_at`, `_stopped_at`, and the claim columns `_warned_at`, `_breach_alerted_at`), described
by a `TimerTable`; `run` is the requests' sweep."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from requests_app import notifications
from requests_app.models import Request
from requests_app.sla import next_alert
from requests_app.sla.calendar import WorkingCalendar
from requests_app.sla.policies import RESOLUTION, TIMERS, get_calendar, working_kinds

log = logging.getLogger(__name__)
BATCH = 1000

# Sends the alerts of the rows `ids` for one timer (`what`: at_risk or breached); how many rows.
Alert = Callable[[list[int], str, str, datetime], int]


@dataclass(frozen=True)
class TimerTable:
    """Where a model keeps its timers, for the sweep. The conditions must be those of the
    model's partial indexes, so that each lookup is an index scan."""

    model: type[models.Model]
    timers: tuple[str, ...]
    # Conditions under which a row's timers can still fire (e.g. the request has not ended).
    live: dict[str, object] = field(default_factory=dict)
    # timer -> the column that holds when its open pause began (timers that can pause).
    paused_at: dict[str, str] = field(default_factory=dict)
    # timer -> the rows whose timer counts working time (their warnings wait for working hours).
    working: Callable[[str], Q] = field(default=lambda which: Q(pk__in=[]))


def due(table: TimerTable, which: str, now: datetime) -> QuerySet[Any]:
    """The rows whose timer `which` has an alert due at `now`, a warning or a breach, read from
    the timer's partial index (sla/next_alert.py): those past their next alert's instant."""
    pending = next_alert.pending(which, table.live, table.paused_at.get(which))
    return (
        table.model._default_manager.alias(next_alert_at=next_alert.instant(which))
        .filter(next_alert_at__lte=now, **pending)
        .order_by()
    )


def claim(
    model: type[models.Model], ids: list[int], column: str, now: datetime, also: str = ""
) -> list[int]:
    """Set `column` on those of `ids` where it is still empty; return the ids this call set.
    The conditional UPDATE is the claim: of two sweepers, each row goes to exactly one. `also`
    names a column set in the same UPDATE on the claimed rows where it is empty (a breach
    claims the warning too): one write of each row, not two."""
    if not ids:
        return []
    table = connection.ops.quote_name(model._meta.db_table)
    placeholders = ", ".join(["%s"] * len(ids))
    sets = f"{column} = %s" + (f", {also} = COALESCE({also}, %s)" if also else "")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {sets} "  # noqa: S608 - names are ours, values bound
            f"WHERE id IN ({placeholders}) AND {column} IS NULL RETURNING id",
            [now, *([now] if also else []), *ids],
        )
        return [row[0] for row in cursor.fetchall()]


def sweep(
    table: TimerTable, alert: Alert, now: datetime, calendar: WorkingCalendar
) -> dict[str, int]:
    """One sweep of one table. Returns how many alerts it claimed, by topic
    (`<timer>_at_risk`, `<timer>_breached`). Each claim commits with its alerts."""
    sent: dict[str, int] = {}
    for which in table.timers:
        # Breaches first: a timer found past due is not warned about being at risk any more.
        # Strictly after the breach instant: elapsed > target (sla/status.py's rule).
        breached = due(table, which, now).filter(**{f"{which}_breach_at__lt": now})
        while ids := list(breached.values_list("pk", flat=True)[:BATCH]):
            with transaction.atomic():
                claimed = claim(
                    table.model, ids, f"{which}_breach_alerted_at", now, also=f"{which}_warned_at"
                )
                if claimed:
                    topic = f"{which}_breached"
                    sent[topic] = sent.get(topic, 0) + alert(claimed, which, "breached", now)
        warnings = due(table, which, now).filter(
            **{
                f"{which}_warned_at__isnull": True,
                f"{which}_warn_at__lte": now,
                f"{which}_breach_at__gte": now,
            }
        )
        if not calendar.is_working_time(now):
            warnings = warnings.exclude(table.working(which))
        while ids := list(warnings.values_list("pk", flat=True)[:BATCH]):
            with transaction.atomic():
                claimed = claim(table.model, ids, f"{which}_warned_at", now)
                if claimed:
                    topic = f"{which}_at_risk"
                    sent[topic] = sent.get(topic, 0) + alert(claimed, which, "at_risk", now)
    return sent


# -- the requests' sweep -------------------------------------------------------------------------

REQUEST_TIMERS = TimerTable(
    model=Request,
    timers=TIMERS,
    live={"ended_at__isnull": True},
    paused_at={RESOLUTION: "resolution_paused_at"},
    working=lambda which: Q(kind__in=working_kinds(which)),
)


def _alert(ids: list[int], which: str, what: str, now: datetime) -> int:
    requests = list(Request.objects.filter(pk__in=ids).select_related("assignee"))
    notifications.on_sla_alerts(requests, which, what, now)
    return len(requests)


def run(now: datetime | None = None) -> dict[str, int]:
    """One sweep of the requests' timers. Returns how many alerts it claimed, by topic."""
    now = now or timezone.now()
    sent = sweep(REQUEST_TIMERS, _alert, now, get_calendar())
    if sent:
        log.info("SLA sweep at %s: %s", now.isoformat(), sent)
    return sent
