"""The SLA sweep (every minute, from portal/cron.py): find the timers that passed 75% of their
target or their breach instant (sla/status.py: elapsed > target, so a working-day target used
up at Saturday 00:00 breaches at Monday 00:00) with indexed queries, and claim each alert with a
conditional UPDATE so that two sweepers running at once never send twice. At-risk warnings of
working-day timers wait for working hours; breach alerts go at once."""

import logging
from datetime import datetime

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from requests_app import notifications
from requests_app.models import Request
from requests_app.sla.policies import RESOLUTION, TIMERS, get_calendar, working_kinds

log = logging.getLogger(__name__)
BATCH = 1000


def _due(
    which: str, moment: str, claim: str, now: datetime, strictly: bool = False
) -> QuerySet[Request]:
    conditions: dict[str, object] = {
        f"{which}_{moment}_at__{'lt' if strictly else 'lte'}": now,
        f"{which}_{claim}__isnull": True,
        f"{which}_stopped_at__isnull": True,
        "ended_at__isnull": True,
    }
    if which == RESOLUTION:
        conditions["resolution_paused_at__isnull"] = True
    return Request.objects.filter(**conditions).order_by()


def _claim(ids: list[int], column: str, now: datetime) -> list[int]:
    """Set `column` on those of `ids` where it is still empty; return the ids this call set.
    The conditional UPDATE is the claim: of two sweepers, each row goes to exactly one."""
    if not ids:
        return []
    table = connection.ops.quote_name(Request._meta.db_table)
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column} = %s "  # noqa: S608 - names are ours, values bound
            f"WHERE id IN ({placeholders}) AND {column} IS NULL RETURNING id",
            [now, *ids],
        )
        return [row[0] for row in cursor.fetchall()]


def _alert(ids: list[int], which: str, what: str, now: datetime) -> int:
    requests = list(Request.objects.filter(pk__in=ids).select_related("assignee"))
    notifications.on_sla_alerts(requests, which, what, now)
    return len(requests)


def run(now: datetime | None = None) -> dict[str, int]:
    """One sweep. Returns how many alerts it claimed, by topic."""
    now = now or timezone.now()
    calendar = get_calendar()
    sent: dict[str, int] = {}
    for which in TIMERS:
        # Breaches first: a timer found past due is not warned about being at risk any more.
        # Strictly after the breach instant: elapsed > target (sla/status.py's rule).
        breached = _due(which, "breach", "breach_alerted_at", now, strictly=True)
        while ids := list(breached.values_list("pk", flat=True)[:BATCH]):
            with transaction.atomic():
                claimed = _claim(ids, f"{which}_breach_alerted_at", now)
                _claim(claimed, f"{which}_warned_at", now)
                if claimed:
                    topic = f"{which}_breached"
                    sent[topic] = sent.get(topic, 0) + _alert(claimed, which, "breached", now)
        warnings = _due(which, "warn", "warned_at", now).filter(**{f"{which}_breach_at__gte": now})
        if not calendar.is_working_time(now):
            warnings = warnings.exclude(kind__in=working_kinds(which))
        while ids := list(warnings.values_list("pk", flat=True)[:BATCH]):
            with transaction.atomic():
                claimed = _claim(ids, f"{which}_warned_at", now)
                if claimed:
                    topic = f"{which}_at_risk"
                    sent[topic] = sent.get(topic, 0) + _alert(claimed, which, "at_risk", now)
    if sent:
        log.info("SLA sweep at %s: %s", now.isoformat(), sent)
    return sent
