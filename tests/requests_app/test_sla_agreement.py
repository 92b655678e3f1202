"""One SLA truth on every surface: for hundreds of request histories around weekends, holidays
and the DST changes, the per-request JSON, the `breached=true` / `at_risk=true` filters, the
summary counts (both engines), the CSV and the sweep's alerts call the same timers breached,
met and at risk.

The histories are stored the way the SLA engine stores them (tests/dashboards/factories.py:
timed_request runs timers.recompute), with clocks that start at midnight boundaries so that due
instants land on the ends of working days (Saturday 00:00, the eve of a holiday) and stops just
before and after them."""

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from dashboards import figures
from requests_app.models import Notification, Request
from requests_app.sla import calendar as sla_calendar
from requests_app.sla import policies, status, sweep, timers
from tests.dashboards.factories import timed_request

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")

# Instants at which the surfaces are compared: a weekend, the Monday a weekend ends, a US holiday,
# the days after the spring-forward and fall-back nights, and New Year.
ANCHORS = [
    datetime(2026, 3, 7, 10, 0, tzinfo=LA),  # Saturday
    datetime(2026, 3, 9, 0, 30, tzinfo=LA),  # Monday just after midnight (spring forward Sunday)
    datetime(2026, 7, 3, 12, 0, tzinfo=LA),  # Independence Day observed (Friday)
    datetime(2026, 11, 2, 9, 0, tzinfo=LA),  # Monday after fall back
    datetime(2026, 11, 26, 15, 0, tzinfo=LA),  # Thanksgiving
    datetime(2027, 1, 1, 0, 0, 30, tzinfo=LA),  # New Year's Day, just after midnight
]
HISTORIES_PER_ANCHOR = 70
KINDS = ["create", "suspend", "teardown", "resume", "enable_executors", "upgrade", "feature"]


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()
    yield
    policies.invalidate_cache()


def histories(requester, engineer, now, rng, count):
    """Histories whose due instants cluster around the weekends and holidays before `now`."""
    made = []
    for _ in range(count):
        kind = rng.choice(KINDS)
        day = (now - timedelta(days=rng.randint(1, 30))).astimezone(LA).date()
        queued = datetime(day.year, day.month, day.day, tzinfo=LA)  # midnight: boundary dues
        queued += timedelta(minutes=rng.choice([0, 0, 0, 1, 17, 9 * 60]))
        if queued >= now:
            continue
        picked = queued + timedelta(hours=rng.choice([1, 23, 24, 25, 70, 80]))
        if picked > now:
            picked = None
        pauses, done, cancelled = [], None, None
        if picked is not None:
            if rng.random() < 0.3:
                begin = picked + timedelta(hours=rng.uniform(1, 120))
                end = begin + timedelta(hours=rng.uniform(1, 96))
                if begin < now:
                    pauses.append((begin, end if end < now else None))
            # Done around the target: 15 working days is 21 calendar days give or take.
            finish = queued + timedelta(days=rng.choice([6, 7, 8, 20, 21, 22, 23, 24]))
            finish += timedelta(hours=rng.choice([0, 0, 1, 10, -1]))
            if finish < now and (not pauses or pauses[-1][1] is not None) and finish > picked:
                done = finish
        if done is None and rng.random() < 0.06:
            cancelled = min(now, queued + timedelta(days=rng.uniform(0, 5)))
            pauses = [(b, e) for b, e in pauses if e is not None and e < cancelled]
        made.append(
            timed_request(
                requester,
                kind,
                queued=queued,
                picked=picked,
                pauses=pauses,
                done=done,
                cancelled=cancelled,
                assignee=engineer if picked else None,
                target_days=rng.choice([None, 3, 10]) if kind == "feature" else None,
            )
        )
    return made


def api_ids(client, flag):
    page = client.get("/api/v1/requests/", {flag: "true"}).json()
    ids = {row["id"] for row in page["results"]}
    while page["next"]:
        page = client.get(page["next"]).json()
        ids |= {row["id"] for row in page["results"]}
    return ids


@pytest.mark.parametrize("now", ANCHORS, ids=lambda d: d.strftime("%Y-%m-%d-%H%M"))
def test_every_surface_agrees_with_the_timer_json(users, now):
    rng = random.Random(now.toordinal())
    rows = histories(users["ce"], users["devops"], now, rng, HISTORIES_PER_ANCHOR)
    assert len(rows) > 50
    client = APIClient()
    client.force_authenticate(users["manager"])
    period = figures.Period(since=now - timedelta(days=60), until=now + timedelta(days=1))
    calendar = policies.get_calendar()

    with time_machine.travel(now, tick=False):
        # The JSON of every timer, the truth the others are held to.
        json = {r.pk: status.sla_json(Request.objects.get(pk=r.pk), now) for r in rows}
        statuses = {
            (pk, which): timer
            for pk, timers in json.items()
            for which, timer in timers.items()
            if timer is not None and timer["status"] != "pending"
        }
        # ...and the JSON itself follows the contract: breached exactly when elapsed > target,
        # counted by the calendar arithmetic (independently of the stored breach instants).
        for (pk, which), timer in statuses.items():
            if timer["status"] == "cancelled":
                continue
            request = Request.objects.get(pk=pk)
            target = policies.target_for(request, which)
            if target is None or target.seconds is None:
                assert timer["status"] != "breached"
                continue
            started = getattr(request, f"{which}_started_at")
            until = (
                getattr(request, f"{which}_stopped_at")
                or (request.resolution_paused_at if which == "resolution" else None)
                or now
            )
            pauses = timers.closed_pauses_of(request) if which == "resolution" else []
            elapsed = sla_calendar.elapsed_seconds(
                target.mode, started, max(until, started), calendar, pauses
            )
            over = elapsed > target.seconds + 1e-6
            assert (timer["status"] == "breached") == over, (pk, which, timer, elapsed)
        breached = {pk for (pk, _), t in statuses.items() if t["status"] == "breached"}
        at_risk = {pk for (pk, _), t in statuses.items() if t["at_risk"]}

        # The filters, through the API.
        assert api_ids(client, "breached") == breached
        assert api_ids(client, "at_risk") == at_risk

        # The summary counts and the CSV, with both engines.
        open_ids = {r.pk for r in rows if r.ended_at is None}
        for engine in ("sql", "python"):
            result = figures.compute(period, now, engine=engine)
            assert result.total.breached == len(breached & open_ids), engine
            assert result.total.at_risk == len(at_risk & open_ids), engine
            for which in ("response", "resolution"):
                mine = {key: t for key, t in statuses.items() if key[1] == which}
                met = sum(t["status"] == "met" for t in mine.values())
                late = sum(t["status"] == "breached" for t in mine.values())
                assert getattr(result.total, f"{which}_met") == met, (engine, which)
                assert getattr(result.total, f"{which}_breached") == late, (engine, which)
            columns = figures.CSV_COLUMNS
            for line in figures.csv_rows(period, now, engine=engine):
                row = dict(zip(columns, line, strict=True))
                for which in ("response", "resolution"):
                    timer = json[int(row["id"])][which]
                    shown = row[f"{which}_status"]
                    if timer is None or timer["status"] == "pending":
                        assert shown == "", (engine, row["id"], which)
                    else:
                        expected = "at_risk" if timer["at_risk"] else timer["status"]
                        assert shown == expected, (engine, row["id"], which, timer)

        # The sweep: breach alerts exactly for the running
        # timers the JSON calls breached, warnings for those at risk (working-day ones only in
        # working time).
        sent = sweep.run(now)
        alerted = set(
            Notification.objects.filter(channel="email", topic__endswith="_breached").values_list(
                "request_id", "topic"
            )
        )
        expected_alerts = {
            (pk, f"{which}_breached")
            for (pk, which), t in statuses.items()
            if t["status"] == "breached" and t["stopped_at"] is None and not t["paused"]
        }
        assert alerted == expected_alerts
        warned = set(
            Notification.objects.filter(channel="email", topic__endswith="_at_risk").values_list(
                "request_id", "topic"
            )
        )
        working_now = calendar.is_working_time(now)
        expected_warnings = {
            (pk, f"{which}_at_risk")
            for (pk, which), t in statuses.items()
            if t["at_risk"]
            and (working_now or not policies.is_working(Request.objects.get(pk=pk), which))
        }
        assert warned == expected_warnings
        assert sum(sent.values()) == len(expected_alerts) + len(expected_warnings)


def test_the_example_of_the_rules_done_on_the_saturday_is_met_and_breach_waits_for_monday(users):
    """Clock started Saturday, due Saturday 00:00 three weeks later: done that Saturday 10:00
    is met everywhere; still running, it is breached from Monday 00:00, when the alert goes."""
    started = datetime(2026, 4, 4, 9, 0, tzinfo=LA)  # Saturday
    due = datetime(2026, 4, 25, 0, 0, tzinfo=LA)  # Saturday three weeks later
    monday = datetime(2026, 4, 27, 0, 0, tzinfo=LA)
    done = timed_request(
        users["ce"], "create", queued=started, picked=started, done=due + timedelta(hours=10)
    )
    running = timed_request(users["ce"], "create", queued=started, picked=started)
    assert (done.resolution_due_at, done.resolution_breach_at) == (due, monday)
    with time_machine.travel(monday + timedelta(days=1), tick=False):
        assert status.sla_json(done)["resolution"]["status"] == "met"
        assert not Request.objects.filter(pk=done.pk).filter(status.breached_q(monday)).exists()
    for at, expected in (
        (due + timedelta(hours=10), "running"),
        (monday, "running"),
        (monday + timedelta(seconds=1), "breached"),
    ):
        with time_machine.travel(at, tick=False):
            assert status.sla_json(running)["resolution"]["status"] == expected, at
    assert sweep.run(due + timedelta(hours=10)) == {}
    assert sweep.run(monday) == {"resolution_at_risk": 1}  # elapsed == target: not yet
    assert sweep.run(monday + timedelta(minutes=1)) == {"resolution_breached": 1}
