"""The SLA figures: one computation behind the managers' dashboard, `GET /api/v1/sla/summary/`
and the CSV export, so the three cannot disagree.

Definitions (the dashboard prints them too):

- Period. A request belongs to the period [since, until) when its SLA clock started within it:
  `resolution_started_at`, the moment it entered `queued` (for an upgrade: the release, see
  docs/sla.md). Requests that never reached the queue have no clock and no place here.
- Met and breached. A timer's status is the one rule of requests_app/sla/status.py, read from
  the instants stored on the row: *met* when it stopped no later than its breach instant;
  *breached* when it stopped later, runs past it, or was paused after it (so the API's JSON and
  its `breached=true` filter say the same). Running, paused and cancelled timers are undecided.
  `met %` = met / (met + breached) over the period's timers; null while none is decided.
- Response time: `response_stopped_at - response_started_at` in real seconds, over the period's
  stopped response timers.
- Resolution time: the working time (SLA calendar, pauses cut out) from the resolution clock's
  start to `done`, in working days of 24 h, for every kind (upgrades and features too, whose
  targets are calendar time, so that one column compares alike).
- Median and 90th percentile interpolate linearly, like PostgreSQL's `percentile_cont`.
- `at_risk` / `breached`: the period's requests that are open now with a timer at risk /
  breached now (one with a timer at risk and the other breached counts in both).
- Load per engineer: the period's requests assigned to each DevOps engineer, open and done.

On PostgreSQL everything is one SQL statement: the calendar travels as three arrays indexed by
local day (start instant, working seconds before it, 1 if it is a working day), so working time
W(t) is an array lookup and an elapsed working time is W(stop) - W(start) minus the pauses. On
SQLite (`make run`'s default) the same rules run in Python over the period's rows; the tests
hold the two to the same answers.
"""

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from portal import roles
from provisioning.models import Category
from requests_app import counting
from requests_app.models import Kind, Request, RequestQuerySet
from requests_app.sla import calendar as sla_calendar
from requests_app.sla import status
from requests_app.sla.calendar import WorkingCalendar
from requests_app.sla.policies import TIMERS, get_calendar
from requests_app.sla.status import AT_RISK, BREACHED, MET

DAY_SECONDS = 86400
DEFAULT_DAYS = 90
FIRST_DAY = date(sla_calendar.FIRST_YEAR, 1, 2)
LAST_DAY = date(sla_calendar.LAST_YEAR, 12, 1)


def sla_zone() -> ZoneInfo:
    return ZoneInfo(settings.SLA_TIMEZONE)


# -- the period and its filters ----------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime  # exclusive
    kind: str = ""
    customer: str = ""
    category: str = ""

    @property
    def first_day(self) -> date:
        return self.since.astimezone(sla_zone()).date()

    @property
    def last_day(self) -> date:
        """The last day the period touches (`until` is exclusive)."""
        return (self.until - timedelta(microseconds=1)).astimezone(sla_zone()).date()


def default_period(now: datetime | None = None) -> Period:
    """The last 90 days, today included, in the SLA timezone."""
    today = timezone.localtime(now or timezone.now(), sla_zone()).date()
    return Period(_day_start(today - timedelta(days=DEFAULT_DAYS - 1)), _day_start(today, 1))


def _day_start(day: date, plus_days: int = 0) -> datetime:
    return datetime.combine(day + timedelta(days=plus_days), time(0), tzinfo=sla_zone())


def _parse_moment(text: str, end_of_day: bool) -> datetime:
    """An ISO date (a whole day in the SLA timezone) or date-time (naive: SLA timezone)."""
    text = text.strip()
    try:
        day = parse_date(text)
        if day is not None:
            return _day_start(day, 1 if end_of_day else 0)
        # A `+` of an offset arrives as a space when the query string was not encoded.
        moment = parse_datetime(text) or parse_datetime(text[:19] + text[19:].replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None:
        raise forms.ValidationError(
            "Give an ISO 8601 date (2026-03-31) or date-time (2026-03-31T09:00:00-07:00)."
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=sla_zone())
    return moment


class PeriodForm(forms.Form):
    """The dashboard's, the CSV's and the API's parameters. A date `until` includes that day."""

    since = forms.CharField(required=False, help_text="ISO date or date-time; inclusive.")
    until = forms.CharField(
        required=False, help_text="ISO date (that day included) or date-time (exclusive)."
    )
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Kind.choices], required=False)
    customer = forms.CharField(max_length=200, required=False, strip=True)
    category = forms.ChoiceField(choices=[("", "Any category"), *Category.choices], required=False)

    def __init__(self, data: Mapping[str, Any] | None = None, now: datetime | None = None) -> None:
        super().__init__(data if data is not None else {})
        self.now = now or timezone.now()

    def clean_since(self) -> datetime | None:
        text = self.cleaned_data["since"]
        return _parse_moment(text, end_of_day=False) if text else None

    def clean_until(self) -> datetime | None:
        text = self.cleaned_data["until"]
        return _parse_moment(text, end_of_day=True) if text else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        if self.errors:
            return cleaned
        # Without `since`: the 90 days up to `until`; without `until`: up to the end of today.
        until = cleaned.get("until") or default_period(self.now).until
        since = cleaned.get("since") or until - timedelta(days=DEFAULT_DAYS)
        for name, value in (("since", since), ("until", until)):
            if not FIRST_DAY <= value.astimezone(sla_zone()).date() <= LAST_DAY:
                self.add_error(name, f"Choose a moment between {FIRST_DAY} and {LAST_DAY}.")
        if since >= until:
            self.add_error("until", "The period must end after it starts.")
        cleaned["since"], cleaned["until"] = since, until
        return cleaned

    def period(self) -> Period:
        data = self.cleaned_data
        return Period(
            data["since"],
            data["until"],
            data.get("kind") or "",
            data["customer"],
            data.get("category") or "",
        )

    def error_json(self) -> dict[str, list[str]]:
        return {
            field: [e["message"] for e in errs]
            for field, errs in self.errors.get_json_data().items()
        }


# -- one row's facts, in Python (SQLite, and the tests' yardstick for the SQL) -------------------


def response_status(row: Mapping[str, Any], now: datetime) -> str | None:
    return status.decide(
        row["response_started_at"],
        row["response_stopped_at"],
        None,
        row["response_breach_at"],
        row["response_warn_at"],
        row["ended_at"],
        now,
    )


def resolution_status(row: Mapping[str, Any], now: datetime) -> str | None:
    return status.decide(
        row["resolution_started_at"],
        row["resolution_stopped_at"],
        row["resolution_paused_at"],
        row["resolution_breach_at"],
        row["resolution_warn_at"],
        row["ended_at"],
        now,
    )


def resolution_working_days(row: Mapping[str, Any], calendar: WorkingCalendar) -> float | None:
    started, stopped = row["resolution_started_at"], row["resolution_stopped_at"]
    if started is None or stopped is None:
        return None
    pauses = [
        (datetime.fromisoformat(begin), datetime.fromisoformat(end))
        for begin, end in row["resolution_pauses"] or []
        if end
    ]
    working = sla_calendar.elapsed_seconds(sla_calendar.WORKING, started, stopped, calendar, pauses)
    return working / DAY_SECONDS


def row_facts(row: Mapping[str, Any], now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """The computed columns of one request row: what the SQL computes, the same way."""
    response, resolution = response_status(row, now), resolution_status(row, now)
    is_open = row["ended_at"] is None
    r_start, r_stop = row["response_started_at"], row["response_stopped_at"]
    return {
        "response_status": response,
        "resolution_status": resolution,
        "response_seconds": (r_stop - r_start).total_seconds() if r_start and r_stop else None,
        "resolution_working_days": resolution_working_days(row, calendar),
        "is_open": is_open,
        "at_risk": is_open and AT_RISK in (response, resolution),
        "breached": is_open and BREACHED in (response, resolution),
    }


# -- the figures -----------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts and durations of one group of rows (a kind, a week, all of them)."""

    count: int = 0
    response_met: int = 0
    response_breached: int = 0
    resolution_met: int = 0
    resolution_breached: int = 0
    median_response_seconds: float | None = None
    p90_response_seconds: float | None = None
    median_resolution_working_days: float | None = None
    p90_resolution_working_days: float | None = None
    at_risk: int = 0
    breached: int = 0
    attention: int = 0  # at risk or breached
    open: int = 0
    done: int = 0

    @property
    def response_met_pct(self) -> float | None:
        return _pct(self.response_met, self.response_breached)

    @property
    def resolution_met_pct(self) -> float | None:
        return _pct(self.resolution_met, self.resolution_breached)

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "response_met_pct": self.response_met_pct,
            "resolution_met_pct": self.resolution_met_pct,
            "median_response_seconds": _round(self.median_response_seconds, 0),
            "median_resolution_working_days": _round(self.median_resolution_working_days, 2),
            "p90_response_seconds": _round(self.p90_response_seconds, 0),
            "p90_resolution_working_days": _round(self.p90_resolution_working_days, 2),
            "at_risk": self.at_risk,
            "breached": self.breached,
        }


def _pct(met: int, breached: int) -> float | None:
    decided = met + breached
    return round(100 * met / decided, 1) if decided else None


def _round(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    return int(round(value)) if digits == 0 else round(value, digits)


@dataclass
class Figures:
    period: Period
    now: datetime
    kinds: dict[str, Tally] = field(default_factory=dict)  # kind -> Tally, every kind asked for
    total: Tally = field(default_factory=Tally)
    weeks: list[tuple[date, Tally]] = field(
        default_factory=list
    )  # [(monday, Tally)], every week of the period
    engineers: list[tuple[str, Tally]] = field(
        default_factory=list
    )  # [(username, Tally)], DevOps and assignees


def compute(period: Period, now: datetime | None = None, engine: str | None = None) -> Figures:
    """The figures of `period` as of `now`: per kind, in total, per week and per engineer.
    `engine` forces "sql" (PostgreSQL only) or "python"; by default the database decides."""
    now = now or timezone.now()
    engine = engine or ("sql" if connection.vendor == "postgresql" else "python")
    calendar = get_calendar()
    if engine == "sql":
        groups = kept_groups(period, now, calendar)
    else:
        groups = _groups_python(period, now, calendar)
    figures = Figures(period, now)
    kinds = [period.kind] if period.kind else list(Kind.values)
    figures.kinds = {kind: groups["kind"].get(kind, Tally()) for kind in kinds}
    figures.total = groups["all"].get("", Tally())
    monday = period.first_day - timedelta(days=period.first_day.weekday())
    while monday <= period.last_day:
        figures.weeks.append((monday, groups["week"].get(monday.isoformat(), Tally())))
        monday += timedelta(days=7)
    figures.engineers = _engineers(groups["assignee"])
    return figures


def summary_json(figures: Figures) -> dict[str, Any]:
    """The body of `GET /api/v1/sla/summary/`."""
    period, zone = figures.period, sla_zone()
    return {
        "since": period.since.astimezone(zone).isoformat(),
        "until": period.until.astimezone(zone).isoformat(),
        "kind": period.kind or None,
        "customer": period.customer or None,
        "category": period.category or None,
        "kinds": {kind: tally.as_json() for kind, tally in figures.kinds.items()},
        "total": figures.total.as_json(),
    }


def _engineers(by_assignee: dict[str, Tally]) -> list[tuple[str, Tally]]:
    User = get_user_model()
    ids = [int(key) for key in by_assignee]
    people = (
        User.objects.filter(Q(groups__name=roles.DEVOPS, is_active=True) | Q(pk__in=ids))
        .distinct()
        .order_by("username")
        .values_list("pk", "username")
    )
    return [(username, by_assignee.get(str(pk), Tally())) for pk, username in people]


def _period_filter(period: Period) -> Q:
    q = Q(resolution_started_at__gte=period.since, resolution_started_at__lt=period.until)
    if period.kind:
        q &= Q(kind=period.kind)
    if period.customer:
        q &= Q(customer__iexact=period.customer)
    if period.category:
        q &= Q(category=period.category)
    return q


def period_requests(period: Period) -> RequestQuerySet:
    """The period's requests as a queryset (for lists of rows; the figures use `compute`)."""
    return Request.objects.filter(_period_filter(period))


# -- Python ------------------------------------------------------------------------------------

ROW_FIELDS = [
    "id",
    "kind",
    "state",
    "customer",
    "category",
    "instance_slug",
    "assignee_id",
    "created_at",
    *[
        f"{which}_{name}"
        for which in TIMERS
        for name in ("started_at", "due_at", "warn_at", "breach_at")
    ],
    "response_stopped_at",
    "resolution_stopped_at",
    "resolution_pauses",
    "resolution_paused_at",
    "ended_at",
]


def _period_rows(period: Period) -> QuerySet[Request, dict[str, Any]]:
    return (
        Request.objects.filter(_period_filter(period))
        .order_by("resolution_started_at", "id")
        .values(*ROW_FIELDS)
    )


def _groups_python(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> dict[str, dict[str, Tally]]:
    zone = sla_zone()
    buckets: dict[str, dict[str, list[dict[str, Any]]]] = {
        "kind": {},
        "all": {"": []},
        "week": {},
        "assignee": {},
    }
    for row in _period_rows(period):
        facts = {**row, **row_facts(row, now, calendar)}
        local = row["resolution_started_at"].astimezone(zone).date()
        week = (local - timedelta(days=local.weekday())).isoformat()
        buckets["kind"].setdefault(row["kind"], []).append(facts)
        buckets["all"][""].append(facts)
        buckets["week"].setdefault(week, []).append(facts)
        if row["assignee_id"] is not None:
            buckets["assignee"].setdefault(str(row["assignee_id"]), []).append(facts)
    return {
        dim: {
            key: _tally(rows, with_durations=dim in ("kind", "all")) for key, rows in groups.items()
        }
        for dim, groups in buckets.items()
    }


def _tally(rows: list[dict[str, Any]], with_durations: bool) -> Tally:
    tally = Tally(count=len(rows))
    for row in rows:
        tally.response_met += row["response_status"] == MET
        tally.response_breached += row["response_status"] == BREACHED
        tally.resolution_met += row["resolution_status"] == MET
        tally.resolution_breached += row["resolution_status"] == BREACHED
        tally.at_risk += row["at_risk"]
        tally.breached += row["breached"]
        tally.attention += row["at_risk"] or row["breached"]
        tally.open += row["is_open"]
        tally.done += row["resolution_stopped_at"] is not None
    if with_durations:
        response = [r["response_seconds"] for r in rows if r["response_seconds"] is not None]
        resolution = [
            r["resolution_working_days"] for r in rows if r["resolution_working_days"] is not None
        ]
        tally.median_response_seconds = percentile(response, 0.5)
        tally.p90_response_seconds = percentile(response, 0.9)
        tally.median_resolution_working_days = percentile(resolution, 0.5)
        tally.p90_resolution_working_days = percentile(resolution, 0.9)
    return tally


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    values = sorted(values)
    position = fraction * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


# -- SQL (PostgreSQL) --------------------------------------------------------------------------


def day_table(
    calendar: WorkingCalendar, first: date, last: date
) -> tuple[list[float], list[float], list[float]]:
    """Per local day from `first` to `last`: its start (epoch seconds), the working seconds of
    the days before it (from `first`), and 1.0 when it is a working day, else 0.0. With them,
    W(t) = cum[d] + working[d] * (t - start[d]) for t on local day d: the working seconds
    from `first` to t, whose differences are sla_calendar's elapsed working time."""
    zone = calendar.tz
    starts: list[float] = []
    before: list[float] = []
    working: list[float] = []
    total, day = 0.0, first
    while day <= last:
        start = datetime.combine(day, time(0), tzinfo=zone).timestamp()
        starts.append(start)
        before.append(total)
        if calendar.is_working_day(day):
            working.append(1.0)
            total += datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).timestamp()
            total -= start
        else:
            working.append(0.0)
        day += timedelta(days=1)
    return starts, before, working


def _w(instant: str, day: str) -> str:
    """SQL for W(instant), `day` being the instant's index in the `cal` arrays (day_table)."""
    return f"(cal.cum[{day}] + cal.wk[{day}] * (EXTRACT(EPOCH FROM {instant}) - cal.ds[{day}]))"


def _day(instant: str) -> str:
    """SQL for the index of the local day of `instant` in the `cal` arrays (1-based)."""
    return f"(({instant} AT TIME ZONE cal.tz)::date - cal.d0 + 1)"


# The columns the summary needs; the CSV wants every column of CSV_ROW_COLUMNS.
SUMMARY_COLUMNS = [
    "kind",
    "assignee_id",
    "is_open",
    "response_status",
    "resolution_status",
    "response_seconds",
    "resolution_working_days",
    "resolution_stopped_at",
]
CSV_ROW_COLUMNS = [
    "id",
    "kind",
    "state",
    "customer",
    "category",
    "instance_slug",
    "assignee_id",
    "created_at",
    "response_started_at",
    "response_due_at",
    "response_stopped_at",
    "response_status",
    "response_seconds",
    "resolution_started_at",
    "resolution_due_at",
    "resolution_stopped_at",
    "resolution_paused_at",
    "resolution_status",
    "resolution_working_days",
    "is_open",
]


def _rows_cte(
    period: Period,
    now: datetime,
    calendar: WorkingCalendar,
    columns: Sequence[str] = SUMMARY_COLUMNS,
) -> tuple[str, dict[str, Any]]:
    """`WITH cal AS (...), ..., f AS (...)`: the period's rows with their computed columns.

    `OFFSET 0` keeps PostgreSQL from folding the subqueries into their callers, which would
    compute the time zone conversions and the statuses once per use instead of once per row."""
    table = connection.ops.quote_name(Request._meta.db_table)
    first = max(period.first_day - timedelta(days=1), FIRST_DAY)
    # Clocks stop in the past: the arrays run from the period's start to a week after now (an
    # instant beyond them, which only future-dated data could hold, would read as NULL).
    last_needed = max(timezone.localtime(now, calendar.tz).date(), period.last_day)
    last = min(last_needed + timedelta(days=7), LAST_DAY + timedelta(days=30))
    starts, before, working = day_table(calendar, first, last)
    params = {
        "tz": calendar.tz.key,
        "d0": first,
        "ds": starts,
        "cum": before,
        "wk": working,
        "now": now,
        "since": period.since,
        "until": period.until,
        "kind": period.kind,
        "customer": period.customer,
        "category": period.category,
    }
    where = ["q.resolution_started_at >= %(since)s", "q.resolution_started_at < %(until)s"]
    if period.kind:
        where.append("q.kind = %(kind)s")
    if period.customer:
        where.append("UPPER(q.customer::text) = UPPER(%(customer)s)")
    if period.category:
        where.append("q.category = %(category)s")
    start, stop = "q.resolution_started_at", "q.resolution_stopped_at"
    paused = f"""COALESCE((
                SELECT SUM({_w("p.e", "p.de")} - {_w("p.b", "p.db")})
                FROM (
                    SELECT p.b, p.e, {_day("p.b")} AS db, {_day("p.e")} AS de
                    FROM (
                        SELECT GREATEST((x.value->>0)::timestamptz, {start}) AS b,
                               LEAST((x.value->>1)::timestamptz, {stop}) AS e
                        FROM jsonb_array_elements(q.resolution_pauses) AS x
                        WHERE x.value->>1 IS NOT NULL
                    ) AS p
                    WHERE p.e > p.b
                ) AS p
            ), 0)"""
    sql = f"""
    WITH cal AS MATERIALIZED (
        SELECT %(tz)s::text AS tz, %(d0)s::date AS d0, %(ds)s::float8[] AS ds,
               %(cum)s::float8[] AS cum, %(wk)s::float8[] AS wk
    ),
    q AS (
        SELECT q.id, q.kind, q.state, q.customer, q.category, q.instance_slug, q.assignee_id,
            q.created_at,
            q.response_started_at, q.response_due_at, q.response_warn_at, q.response_stopped_at,
            q.response_breach_at, q.resolution_breach_at,
            q.resolution_started_at, q.resolution_due_at, q.resolution_warn_at,
            q.resolution_stopped_at, q.resolution_paused_at, q.resolution_pauses, q.ended_at,
            {_day(start)} AS start_day, {_day(stop)} AS stop_day
        FROM {table} AS q CROSS JOIN cal
        WHERE {" AND ".join(where)}
        OFFSET 0
    ),
    r AS (
        SELECT q.*,
            q.ended_at IS NULL AS is_open,
            CASE
                WHEN q.response_started_at IS NULL THEN NULL
                WHEN q.response_stopped_at IS NOT NULL THEN
                    CASE WHEN q.response_breach_at IS NULL
                           OR q.response_stopped_at <= q.response_breach_at
                         THEN 'met' ELSE 'breached' END
                WHEN q.ended_at IS NOT NULL THEN 'cancelled'
                WHEN q.response_breach_at < %(now)s THEN 'breached'
                WHEN q.response_warn_at <= %(now)s THEN 'at_risk'
                ELSE 'running'
            END AS response_status,
            CASE
                WHEN q.resolution_started_at IS NULL THEN NULL
                WHEN q.resolution_stopped_at IS NOT NULL THEN
                    CASE WHEN q.resolution_breach_at IS NULL
                           OR q.resolution_stopped_at <= q.resolution_breach_at
                         THEN 'met' ELSE 'breached' END
                WHEN q.ended_at IS NOT NULL THEN 'cancelled'
                WHEN q.resolution_paused_at IS NOT NULL THEN
                    CASE WHEN q.resolution_breach_at < q.resolution_paused_at
                         THEN 'breached' ELSE 'paused' END
                WHEN q.resolution_breach_at < %(now)s THEN 'breached'
                WHEN q.resolution_warn_at <= %(now)s THEN 'at_risk'
                ELSE 'running'
            END AS resolution_status,
            EXTRACT(EPOCH FROM q.response_stopped_at - q.response_started_at)::float8
                AS response_seconds,
            CASE WHEN {stop} IS NOT NULL THEN
                ({_w(stop, "q.stop_day")} - {_w(start, "q.start_day")}
                 - CASE WHEN q.resolution_pauses::text = '[]' THEN 0 ELSE {paused} END
                ) / {DAY_SECONDS}
            END AS resolution_working_days
        FROM q CROSS JOIN cal
        OFFSET 0
    ),
    f AS MATERIALIZED (
        SELECT {", ".join(f"r.{c}" for c in columns)},
            r.is_open AND COALESCE('at_risk' IN (r.response_status, r.resolution_status), false)
                AS at_risk,
            r.is_open AND COALESCE('breached' IN (r.response_status, r.resolution_status), false)
                AS breached,
            date_trunc('week', r.resolution_started_at AT TIME ZONE %(tz)s)::date AS week,
            -- The next instant at which a status above would read differently (a running
            -- timer reaching its warning or passing its due instant): until then, only a change
            -- of the data changes the figures (see kept_groups).
            CASE WHEN r.is_open THEN LEAST(
                CASE WHEN r.response_status IN ('running', 'at_risk') THEN LEAST(
                    CASE WHEN r.response_warn_at > %(now)s THEN r.response_warn_at END,
                    CASE WHEN r.response_breach_at >= %(now)s THEN r.response_breach_at END)
                END,
                CASE WHEN r.resolution_status IN ('running', 'at_risk') THEN LEAST(
                    CASE WHEN r.resolution_warn_at > %(now)s THEN r.resolution_warn_at END,
                    CASE WHEN r.resolution_breach_at >= %(now)s THEN r.resolution_breach_at END)
                END)
            END AS next_change
        FROM r
    )
    """
    return sql, params


_COUNTS = """
    count(*),
    count(*) FILTER (WHERE response_status = 'met'),
    count(*) FILTER (WHERE response_status = 'breached'),
    count(*) FILTER (WHERE resolution_status = 'met'),
    count(*) FILTER (WHERE resolution_status = 'breached'),
    {durations},
    count(*) FILTER (WHERE at_risk),
    count(*) FILTER (WHERE breached),
    count(*) FILTER (WHERE at_risk OR breached),
    count(*) FILTER (WHERE is_open),
    count(*) FILTER (WHERE resolution_stopped_at IS NOT NULL),
    min(next_change)
"""
_DURATIONS = ", ".join(
    f"percentile_cont({p}) WITHIN GROUP (ORDER BY {column})"
    for column in ("response_seconds", "resolution_working_days")
    for p in ("0.5", "0.9")
)
_NO_DURATIONS = "NULL::float8, NULL::float8, NULL::float8, NULL::float8"


def summary_sql(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> tuple[str, dict[str, Any]]:
    """One statement: (dimension, key, the Tally's columns, the next instant a status changes)
    per kind, in all, per week and per assignee, over the period's rows computed once."""
    cte, params = _rows_cte(period, now, calendar)
    with_durations = _COUNTS.format(durations=_DURATIONS)
    counts_only = _COUNTS.format(durations=_NO_DURATIONS)
    sql = f"""{cte}
    SELECT 'kind', kind::text, {with_durations} FROM f GROUP BY kind
    UNION ALL SELECT 'all', '', {with_durations} FROM f
    UNION ALL SELECT 'week', week::text, {counts_only} FROM f GROUP BY week
    UNION ALL SELECT 'assignee', assignee_id::text, {counts_only}
        FROM f WHERE assignee_id IS NOT NULL GROUP BY assignee_id
    """
    return sql, params


Groups = dict[str, dict[str, Tally]]


def _groups_sql(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> tuple[Groups, datetime | None]:
    """(the Tallies per dimension and key, the next instant a status changes, if any)."""
    sql, params = summary_sql(period, now, calendar)
    groups: Groups = {"kind": {}, "all": {}, "week": {}, "assignee": {}}
    changes_at: datetime | None = None
    with transaction.atomic(), connection.cursor() as cursor:
        # The planner's cost estimate of the per-row arithmetic invites JIT compilation, which
        # takes longer (about 50 ms) than it saves on a period's tens of thousands of rows.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        for dim, key, *values, next_change in cursor.fetchall():
            groups[dim][key] = Tally(*values)
            if dim == "all":
                changes_at = next_change
    return groups, changes_at


# -- the figures kept between visits ------------------------------------------------------------
#
# The figures of a period are a function of the request rows, the working calendar and which
# timer thresholds `now` has passed. So they are kept (Django's cache, per process) under the
# period and the calendar, with the version of the request data they were computed from
# (requests_app/counting.changes: every statement that changes requests adds one) and the next
# instant a status would change (`next_change`). A visit reuses them while the version is the
# same and that instant has not come: exactly what computing them again would give. The version
# is read before computing, so a change committed meanwhile makes the kept figures look older
# than they are (computed again at the next visit), never newer.

KEPT_SECONDS = 15 * 60  # an upper bound only: the version and next_change decide


@dataclass
class KeptGroups:
    version: int
    computed_at: datetime
    valid_until: datetime | None
    groups: Groups


def _calendar_key(calendar: WorkingCalendar) -> str:
    days = sorted(calendar.holidays | calendar.closures)
    return hashlib.sha256(f"{calendar.tz.key}|{days}".encode()).hexdigest()[:16]


def _kept_key(period: Period, calendar: WorkingCalendar) -> str:
    parts = [period.since.isoformat(), period.until.isoformat(), period.kind, period.customer]
    parts += [period.category.upper() if period.category else "", _calendar_key(calendar)]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
    return f"sla-figures:{digest}"


def kept_groups(period: Period, now: datetime, calendar: WorkingCalendar) -> Groups:
    """_groups_sql's Tallies, computed again only when the request data changed or a timer
    crossed a threshold since they were computed (see above)."""
    version = counting.changes()
    if version is None:
        return _groups_sql(period, now, calendar)[0]
    key = _kept_key(period, calendar)
    found = cache.get(key)
    if (
        isinstance(found, KeptGroups)
        and found.version == version
        and found.computed_at <= now
        and (found.valid_until is None or now < found.valid_until)
    ):
        return found.groups
    groups, changes_at = _groups_sql(period, now, calendar)
    cache.set(key, KeptGroups(version, now, changes_at, groups), KEPT_SECONDS)
    return groups


# -- the CSV -----------------------------------------------------------------------------------

CSV_COLUMNS = [
    "id",
    "kind",
    "state",
    "customer",
    "category",
    "instance",
    "assignee",
    "created_at",
    "response_started_at",
    "response_due_at",
    "response_stopped_at",
    "response_status",
    "response_seconds",
    "resolution_started_at",
    "resolution_due_at",
    "resolution_stopped_at",
    "resolution_paused_at",
    "resolution_status",
    "resolution_working_days",
    "open",
    "at_risk",
    "breached",
]


# The columns of text that people type (the customer, the instance slug, usernames). A
# spreadsheet runs a cell that starts with one of FORMULA_PREFIXES as a formula ("CSV injection",
# OWASP): such a value gets a leading single quote, which makes it plain text. The other columns
# are numbers, instants, booleans or values of fixed choices (kind, state, timer status), which
# never start with those characters, so a negative number stays a number. Only these columns are
# looked at: the export streams millions of values.
CSV_TEXT_COLUMNS = ("customer", "instance", "assignee")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_rows(
    period: Period, now: datetime | None = None, engine: str | None = None
) -> Iterator[list[str]]:
    """The period's requests with their timers and computed columns, as lists of strings in
    the order of CSV_COLUMNS; the same facts as `compute` counts. Text that a spreadsheet would
    take for a formula is neutralised (CSV_TEXT_COLUMNS)."""
    now = now or timezone.now()
    engine = engine or ("sql" if connection.vendor == "postgresql" else "python")
    calendar = get_calendar()
    if engine == "sql":
        yield from _csv_text_rows_sql(period, now, calendar)
        return
    text_indexes = [CSV_COLUMNS.index(column) for column in CSV_TEXT_COLUMNS]
    rows = _csv_rows_python(period, now, calendar)
    for row in rows:
        values = [_csv_value(row[column]) for column in CSV_COLUMNS]
        for index in text_indexes:
            if values[index].startswith(FORMULA_PREFIXES):
                values[index] = "'" + values[index]
        yield values


def _csv_instant_sql(column: str) -> str:
    """SQL giving `column` (an instant) as the text _csv_value gives it: Python's isoformat of
    the UTC time, fractions only when there are microseconds, '' for none."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"""COALESCE(to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN """
        f"date_part('microseconds', {column})::bigint %% 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00', '')"
    )


def _csv_bool_sql(column: str) -> str:
    return f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' ELSE '' END"


def _csv_number_sql(column: str) -> str:
    """SQL giving `column` (seconds or working days, float8) as _csv_value gives a float: six
    decimals at most, trailing zeros and point dropped."""
    return f"trim_scale(round({column}::numeric, 6))::text"


def _csv_formula_safe_sql(text: str) -> str:
    """SQL giving `text` with a leading single quote when a spreadsheet would run it as a
    formula (FORMULA_PREFIXES, the `formula` parameter)."""
    return f"CASE WHEN left({text}, 1) = ANY(%(formula)s) THEN chr(39) || {text} ELSE {text} END"


def _csv_select(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> tuple[str, dict[str, Any]]:
    """The CSV's rows as the text the file holds, every value formatted by PostgreSQL: one
    column per CSV_COLUMNS entry, named after it, NULL where the cell is empty. The `sql`
    engine reads it through a cursor; the download streams it through COPY (csv_copy)."""
    cte, params = _rows_cte(period, now, calendar, CSV_ROW_COLUMNS)
    params["formula"] = list(FORMULA_PREFIXES)
    user_table = get_user_model()._meta.db_table
    texts = {"instance": "f.instance_slug::text", "assignee": "u.username::text"}
    select = []
    for column in CSV_COLUMNS:
        if column.endswith("_at"):
            value = _csv_instant_sql(f"f.{column}")
        elif column in ("open", "at_risk", "breached"):
            value = _csv_bool_sql("f.is_open" if column == "open" else f"f.{column}")
        elif column in ("response_seconds", "resolution_working_days"):
            value = _csv_number_sql(f"f.{column}")
        elif column in CSV_TEXT_COLUMNS:
            value = _csv_formula_safe_sql(texts.get(column, f"f.{column}::text"))
        else:
            value = f"f.{column}::text"
        # Empty is NULL: COPY writes NULL as an empty cell and '' as "" (csv.writer: empty).
        select.append(f"NULLIF({value}, '') AS \"{column}\"")
    sql = f"""{cte}
    SELECT {", ".join(select)}
    FROM f LEFT JOIN {user_table} AS u ON u.id = f.assignee_id
    ORDER BY f.resolution_started_at, f.id
    """
    return sql, params


def _csv_text_rows_sql(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> Iterator[list[str]]:
    """The CSV's rows as PostgreSQL formats them (_csv_select), as lists of strings."""
    sql, params = _csv_select(period, now, calendar)
    # A server-side cursor: the export streams however many rows the period holds.
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(2000):
            for found in chunk:
                yield ["" if value is None else value for value in found]


# Bytes of CSV sent as one chunk of the streamed download (constant memory).
CSV_COPY_CHUNK = 256 * 1024


def csv_copy(period: Period, now: datetime | None = None) -> Iterator[bytes]:
    """The CSV file, header first, as PostgreSQL's COPY writes it from _csv_select: no Python
    per row or per value, memory bounded by CSV_COPY_CHUNK. Lines end with LF. PostgreSQL only
    (csv_rows serves SQLite)."""
    import psycopg

    now = now or timezone.now()
    sql, params = _csv_select(period, now, get_calendar())
    statement = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The per-row arithmetic invites JIT compilation, which costs more than it saves.
            cursor.execute("SET LOCAL jit = off")
        # COPY takes no server-side parameters: a client-side binding cursor inlines them.
        with psycopg.ClientCursor(connection.connection) as cursor:
            with cursor.copy(statement, params) as copy:
                chunk = bytearray()
                for block in copy:
                    chunk += block
                    if len(chunk) >= CSV_COPY_CHUNK:
                        yield bytes(chunk)
                        chunk.clear()
                if chunk:
                    yield bytes(chunk)


def _csv_rows_sql(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> Iterator[dict[str, Any]]:
    """The export's rows as values (the tests compare its working days to the calendar's)."""
    cte, params = _rows_cte(period, now, calendar, CSV_ROW_COLUMNS)
    user_table = get_user_model()._meta.db_table
    sql = f"""{cte}
    SELECT f.id, f.kind, f.state, f.customer, f.category, f.instance_slug AS instance,
        u.username AS assignee,
        f.created_at, f.response_started_at, f.response_due_at, f.response_stopped_at,
        f.response_status, f.response_seconds, f.resolution_started_at, f.resolution_due_at,
        f.resolution_stopped_at, f.resolution_paused_at, f.resolution_status,
        f.resolution_working_days, f.is_open AS open, f.at_risk, f.breached
    FROM f LEFT JOIN {user_table} AS u ON u.id = f.assignee_id
    ORDER BY f.resolution_started_at, f.id
    """
    # A server-side cursor: the export streams however many rows the period holds.
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        while chunk := cursor.fetchmany(2000):
            for values in chunk:
                yield dict(zip(names, values, strict=True))


def _csv_rows_python(
    period: Period, now: datetime, calendar: WorkingCalendar
) -> Iterator[dict[str, Any]]:
    usernames = dict(get_user_model().objects.values_list("pk", "username"))
    for row in _period_rows(period).iterator(chunk_size=2000):
        facts = row_facts(row, now, calendar)
        yield {
            **row,
            **facts,
            "instance": row["instance_slug"],
            "assignee": usernames.get(row["assignee_id"]),
            "open": facts["is_open"],
        }


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)
