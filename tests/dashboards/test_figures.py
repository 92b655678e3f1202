"""The SLA figures (dashboards/figures.py): worked by hand on a few requests, and the SQL
held to the Python formulation, which uses the SLA engine's own calendar arithmetic."""

import csv
import io
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from dashboards import figures as dashboards
from dashboards.figures import Period, PeriodForm
from requests_app.models import Closure, Request
from requests_app.sla import calendar as sla_calendar
from requests_app.sla import policies, status, timers
from tests.dashboards.factories import act, file, queued, random_rows, timed_request

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")
HOUR, DAY = 3600, 86400


def la(*args):
    return datetime(*args, tzinfo=LA)


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()
    yield
    policies.invalidate_cache()


def period(since, until, **filters):
    return Period(since, until, **filters)


# -- a worked example ----------------------------------------------------------------------------


@pytest.fixture
def march(users):
    """Five create requests queued in March 2026 (Monday the 2nd onwards), seen on the 31st."""
    ce, lead, devops = users["ce"], users["lead"], users["devops"]
    made = {}
    # Picked up after 2 h, done after exactly 5 working days: both timers met.
    made["quick"] = queued(users, at=la(2026, 3, 2, 9))
    act(devops, made["quick"], "pick_up", la(2026, 3, 2, 11, 1))
    act(devops, made["quick"], "complete", la(2026, 3, 9, 9, 1))
    # Queued at 09:01 (approved a minute after filing). Picked up after 30 h (response
    # breached); waited on the customer for 2 working days; done 16 working days after the
    # start, 14 without the pause: resolution met.
    made["paused"] = queued(users, at=la(2026, 3, 3, 9))
    act(devops, made["paused"], "pick_up", la(2026, 3, 4, 15, 1))
    act(devops, made["paused"], "wait_on_customer", la(2026, 3, 5, 9, 1))
    act(devops, made["paused"], "resume_work", la(2026, 3, 9, 9, 1))
    act(devops, made["paused"], "complete", la(2026, 3, 25, 9, 1))
    # Queued on the 26th at 09:00 and never picked up: response breached, resolution running.
    made["ignored"] = queued(users, at=la(2026, 3, 26, 9))
    # Picked up at once, still in progress after 12 of 15 working days: at risk.
    made["risky"] = queued(users, at=la(2026, 3, 12, 9))
    act(devops, made["risky"], "pick_up", la(2026, 3, 12, 10))
    # Cancelled before anyone picked it up: no decided timer, still counted.
    made["cancelled"] = queued(users, at=la(2026, 3, 20, 9))
    act(ce, made["cancelled"], "cancel", la(2026, 3, 20, 12))
    # Queued in February: outside the period.
    old = queued(users, at=la(2026, 2, 20, 9))
    act(devops, old, "pick_up", la(2026, 2, 20, 10))
    # Still pending approval: no clock, not counted.
    file(ce, at=la(2026, 3, 10, 9))
    del lead
    return made


MARCH = (la(2026, 3, 1), la(2026, 4, 1))
SEEN_AT = la(2026, 3, 31, 12)


@pytest.mark.parametrize("engine", ["sql", "python"])
def test_figures_of_a_worked_example(users, march, engine):
    figures = dashboards.compute(period(*MARCH), now=SEEN_AT, engine=engine)
    create = figures.kinds["create"]
    assert create.count == 5
    # Responses: quick met; paused and ignored breached; risky met; cancelled undecided.
    assert (create.response_met, create.response_breached) == (2, 2)
    assert create.response_met_pct == 50.0
    # Resolutions: quick and paused met; the others undecided (running or cancelled).
    assert (create.resolution_met, create.resolution_breached) == (2, 0)
    assert create.resolution_met_pct == 100.0
    # Response times of the three stopped: 2 h, 30 h, 59 min (quick, paused, risky).
    responses = sorted([2 * HOUR, 30 * HOUR, 59 * 60])
    assert create.median_response_seconds == pytest.approx(responses[1])
    assert create.p90_response_seconds == pytest.approx(
        responses[1] + 0.8 * (responses[2] - responses[1])
    )
    # Resolution: 5 working days (quick) and 14 (paused: 16 minus the 2-day pause).
    assert create.median_resolution_working_days == pytest.approx(9.5)
    assert create.p90_resolution_working_days == pytest.approx(5 + 0.9 * 9)
    # Open now: ignored is breached (its response), risky is at risk (13 of 15 working days).
    assert (create.at_risk, create.breached) == (1, 1)
    assert figures.kinds["upgrade"].count == 0
    assert figures.kinds["upgrade"].response_met_pct is None
    assert figures.total.count == 5
    # Weeks starting Monday Feb 23 (March 1 is a Sunday) to Monday March 30.
    assert [monday.isoformat() for monday, _ in figures.weeks] == [
        "2026-02-23",
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
        "2026-03-30",
    ]
    by_week = {monday.isoformat(): tally for monday, tally in figures.weeks}
    assert by_week["2026-03-02"].count == 2 and by_week["2026-03-02"].response_met_pct == 50.0
    assert by_week["2026-02-23"].count == 0 and by_week["2026-02-23"].response_met_pct is None
    load = dict(figures.engineers)
    assert set(load) == {"devops", "devops2"}
    assert (load["devops"].open, load["devops"].done) == (1, 2)
    assert (load["devops2"].open, load["devops2"].done) == (0, 0)


def test_summary_json_rounds_the_figures(users, march):
    body = dashboards.summary_json(dashboards.compute(period(*MARCH), now=SEEN_AT))
    assert body["since"] == "2026-03-01T00:00:00-08:00"
    assert body["until"] == "2026-04-01T00:00:00-07:00"
    assert set(body["kinds"]) == {
        "create",
        "suspend",
        "resume",
        "teardown",
        "upgrade",
        "enable_executors",
        "feature",
        "access",
    }
    assert body["kinds"]["create"] == {
        "count": 5,
        "response_met_pct": 50.0,
        "resolution_met_pct": 100.0,
        "median_response_seconds": 2 * HOUR,
        "median_resolution_working_days": 9.5,
        "p90_response_seconds": round(2 * HOUR + 0.8 * (28 * HOUR)),
        "p90_resolution_working_days": 13.1,
        "at_risk": 1,
        "breached": 1,
    }


def test_filters_by_kind_and_customer(users):
    devops = users["devops"]
    start = la(2026, 3, 2, 9)
    timed_request(users["ce"], "create", queued=start, customer="Globex")
    timed_request(users["ce"], "create", queued=start, customer="globex")
    timed_request(users["ce"], "suspend", queued=start, customer="Globex", assignee=devops)
    timed_request(users["ce"], "create", queued=start, customer="Initech")
    for engine in ("sql", "python"):
        only = dashboards.compute(
            period(*MARCH, kind="create", customer="GLOBEX"), now=SEEN_AT, engine=engine
        )
        assert list(only.kinds) == ["create"]
        assert only.kinds["create"].count == 2 == only.total.count


def test_the_period_includes_since_and_excludes_until(users):
    for at in (MARCH[0], MARCH[1] - timedelta(microseconds=1), MARCH[1], MARCH[0] - timedelta(1)):
        timed_request(users["ce"], queued=at)
    for engine in ("sql", "python"):
        assert dashboards.compute(period(*MARCH), now=SEEN_AT, engine=engine).total.count == 2


# -- statuses agree with the SLA engine's JSON ------------------------------------------------


def test_row_statuses_agree_with_the_timer_json(users):
    """Each request's computed statuses are those of its timers' JSON (status.sla_json)."""
    devops = users["devops"]
    base = la(2026, 3, 2, 9)
    rows = []
    for offset, (kind, steps) in enumerate(
        [
            ("create", []),
            ("create", [("pick_up", 2)]),
            ("create", [("pick_up", 30)]),
            ("create", [("pick_up", 1), ("wait_on_customer", 5)]),
            ("create", [("pick_up", 1), ("wait_on_customer", 400)]),
            ("create", [("pick_up", 1), ("complete", 100)]),
            ("create", [("pick_up", 1), ("complete", 700)]),
            ("upgrade", [("pick_up", 3)]),
            ("upgrade", [("pick_up", 3), ("complete", 24 * 8)]),
            ("feature", [("pick_up", 3)]),
            ("feature", [("pick_up", 3), ("set_target", 4)]),
            ("create", [("cancel", 3)]),
        ]
    ):
        start = base + timedelta(hours=offset)
        request = queued(users, kind, at=start)
        for action, hours in steps:
            who = users["ce"] if action == "cancel" else devops
            extra = {"due_at": start + timedelta(days=10)} if action == "set_target" else {}
            act(who, request, action, start + timedelta(hours=hours), **extra)
        rows.append(request.pk)
    seen = la(2026, 3, 24, 12)
    calendar = policies.get_calendar()
    for row in Request.objects.filter(pk__in=rows).values(*dashboards.ROW_FIELDS, "target_due_at"):
        facts = dashboards.row_facts(row, seen, calendar)
        request = Request.objects.get(pk=row["id"])
        with time_machine.travel(seen, tick=False):
            timers = status.sla_json(request)
        for which in policies.TIMERS:
            timer = timers[which]
            expected = None
            if timer is not None:
                expected = "at_risk" if timer["at_risk"] else timer["status"]
            assert facts[f"{which}_status"] == expected, (request.kind, which, timer)


# -- SQL against Python -------------------------------------------------------------------------

PERIODS = [
    # Thanksgiving, Christmas, New Year and the November DST change.
    (la(2025, 10, 15), la(2026, 1, 15)),
    # The March DST change; Presidents' Day.
    (la(2026, 2, 1), la(2026, 3, 20)),
    # Everything.
    (la(2025, 1, 1), la(2026, 4, 1)),
]


@pytest.fixture
def many(users):
    engineers = [users["devops"], users["devops2"]]
    Closure.objects.create(date=la(2026, 2, 4).date(), reason="offsite")
    policies.invalidate_cache()
    return random_rows(users["ce"], engineers, la(2026, 3, 25, 15), 400, seed=3, days=160)


def close(a, b, tolerance=1e-6):
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


@pytest.mark.parametrize("bounds", PERIODS)
def test_sql_and_python_agree(many, bounds):
    now = la(2026, 3, 25, 15)
    for filters in ({}, {"kind": "create"}, {"customer": "globex"}):
        by_sql = dashboards.compute(Period(*bounds, **filters), now=now, engine="sql")
        by_python = dashboards.compute(Period(*bounds, **filters), now=now, engine="python")
        pairs = [(by_sql.total, by_python.total)]
        pairs += [(by_sql.kinds[k], by_python.kinds[k]) for k in by_sql.kinds]
        pairs += [(a[1], b[1]) for a, b in zip(by_sql.weeks, by_python.weeks, strict=True)]
        pairs += [(a[1], b[1]) for a, b in zip(by_sql.engineers, by_python.engineers, strict=True)]
        assert by_sql.total.count > 10
        if not filters and bounds == PERIODS[2]:
            # The data holds every case: met, breached, at risk, open breached, done.
            total = by_sql.total
            assert min(total.response_met, total.response_breached, total.resolution_met) > 0
            assert min(total.resolution_breached, total.at_risk, total.breached, total.done) > 0
        for a, b in pairs:
            for name, value in vars(a).items():
                other = getattr(b, name)
                if isinstance(value, float) or isinstance(other, float):
                    assert close(value, other), (filters, name, value, other)
                else:
                    assert value == other, (filters, name, value, other)


def test_working_days_in_sql_equal_the_calendar_arithmetic(many):
    """Row by row: the SQL's working time (array lookups) is sla_calendar's elapsed time."""
    now = la(2026, 3, 25, 15)
    whole = Period(*PERIODS[2])
    calendar = policies.get_calendar()
    by_id = {r.pk: r for r in Request.objects.all()}
    checked = paused = 0
    for row in dashboards._csv_rows_sql(whole, now, calendar):
        request = by_id[row["id"]]
        if request.resolution_stopped_at is None:
            assert row["resolution_working_days"] is None
            continue
        expected = sla_calendar.elapsed_seconds(
            sla_calendar.WORKING,
            request.resolution_started_at,
            request.resolution_stopped_at,
            calendar,
            timers.closed_pauses_of(request),
        )
        assert row["resolution_working_days"] == pytest.approx(expected / DAY, abs=1e-9)
        checked += 1
        paused += bool(request.resolution_pauses)
    assert checked > 100 and paused > 10


def test_the_csv_rows_hold_the_same_facts_in_both_engines(many):
    now = la(2026, 3, 25, 15)
    whole = Period(*PERIODS[2])
    by_sql = list(dashboards.csv_rows(whole, now, engine="sql"))
    by_python = list(dashboards.csv_rows(whole, now, engine="python"))
    # The download: PostgreSQL's COPY of the same rows, header first.
    copied = b"".join(dashboards.csv_copy(whole, now)).decode()
    by_copy = list(csv.reader(io.StringIO(copied)))
    assert by_copy.pop(0) == dashboards.CSV_COLUMNS
    assert by_copy == by_sql
    assert len(by_sql) == len(by_python) == 400
    for a, b in zip(by_sql, by_python, strict=True):
        for column, x, y in zip(dashboards.CSV_COLUMNS, a, b, strict=True):
            if column in ("response_seconds", "resolution_working_days") and x:
                assert float(x) == pytest.approx(float(y), abs=1e-5), column
            else:
                assert x == y, (column, a, b)


# -- the period form ----------------------------------------------------------------------------


def test_the_default_period_is_the_last_90_days_today_included():
    now = la(2026, 3, 31, 15)
    form = PeriodForm({}, now=now)
    assert form.is_valid(), form.errors
    chosen = form.period()
    assert chosen.since == la(2026, 1, 1)
    assert chosen.until == la(2026, 4, 1)
    assert (chosen.last_day - chosen.first_day).days + 1 == 90


def test_a_date_until_includes_that_day_and_datetimes_are_exact():
    form = PeriodForm({"since": "2026-03-01", "until": "2026-03-31"})
    assert form.is_valid(), form.errors
    assert (form.period().since, form.period().until) == (la(2026, 3, 1), la(2026, 4, 1))
    form = PeriodForm({"since": "2026-03-01T10:00:00+00:00", "until": "2026-03-02T10:00:00"})
    assert form.is_valid(), form.errors
    assert form.period().since == datetime(2026, 3, 1, 10, tzinfo=ZoneInfo("UTC"))
    assert form.period().until == la(2026, 3, 2, 10)
    # An unencoded `+` arrives as a space.
    form = PeriodForm({"since": "2026-03-01T10:00:00 02:00"})
    assert form.is_valid(), form.errors
    assert form.period().since.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-03-10", "until": "2026-03-01"}, "until"),
        ({"since": "1900-01-01"}, "since"),
        ({"kind": "rocket"}, "kind"),
    ],
)
def test_bad_periods_name_the_field(data, field):
    form = PeriodForm(data)
    assert not form.is_valid()
    assert field in form.error_json()
