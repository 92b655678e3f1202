"""The SLA figures kept between visits (dashboards/figures.kept_groups, issue 16): reused only
while the request data has not changed and no timer has crossed 75% or its due instant since
they were computed, so they are always what computing them again gives."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboards import figures
from dashboards.figures import Period
from requests_app.models import Closure, Request
from requests_app.sla import policies
from tests.dashboards.factories import act, random_rows, timed_request
from tests.dashboards.test_figures import la

pytestmark = [
    pytest.mark.clock,
    pytest.mark.clock_once("every instant is passed in; the data is pinned to NOW"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="kept on PostgreSQL only"),
]

NOW = la(2026, 3, 25, 15)
PERIOD = Period(la(2026, 1, 1), la(2026, 3, 26))


@pytest.fixture
def rows(users):
    policies.invalidate_cache()
    engineers = [users["devops"], users["devops2"]]
    return random_rows(users["ce"], engineers, NOW, 150, seed=7, days=80)


def fresh(period, now):
    return figures._groups_sql(period, now, figures.get_calendar())[0]


def kept(period, now):
    return figures.kept_groups(period, now, figures.get_calendar())


def summary_queries(now, period=PERIOD):
    with CaptureQueriesContext(connection) as queries:
        groups = kept(period, now)
    return groups, sum("percentile_cont" in q["sql"] for q in queries.captured_queries)


def test_a_second_visit_reuses_the_figures_and_a_change_recomputes_them(users, rows):
    first, computed = summary_queries(NOW)
    assert computed == 1 and first == fresh(PERIOD, NOW)
    again, computed = summary_queries(NOW + timedelta(seconds=1))
    assert computed == 0 and again == first
    # A workflow action (through the ORM) changes the data: computed again, and right.
    request = next(r for r in rows if r.state == "in_progress")
    act(users["devops"], request, "complete", NOW + timedelta(seconds=2))
    after, computed = summary_queries(NOW + timedelta(seconds=3))
    assert computed == 1 and after == fresh(PERIOD, NOW + timedelta(seconds=3)) != first
    # So does an UPDATE that no signal sees.
    Request.objects.filter(pk=request.pk).update(assignee=users["devops2"])
    assert summary_queries(NOW + timedelta(seconds=4))[1] == 1
    # A closure moves the working calendar: computed again.
    Closure.objects.create(date=la(2026, 2, 10).date(), reason="offsite")
    policies.invalidate_cache()
    assert summary_queries(NOW + timedelta(seconds=5))[1] == 1
    # An earlier instant than the one computed for is computed for itself.
    assert summary_queries(NOW)[1] == 1


def test_the_kept_figures_are_what_computing_again_gives_at_every_instant(users, rows):
    """Over ten days of instants, a minute to hours apart, crossing the warnings and due
    instants of the open timers: the kept figures equal fresh ones every time, and are reused
    between the crossings."""
    rng = random.Random(11)
    timed_request(users["ce"], queued=NOW - timedelta(hours=20))  # due soon after NOW
    now, reused, visits = NOW, 0, 0
    for period in (PERIOD, Period(la(2026, 3, 1), la(2026, 4, 10), kind="create")):
        now = NOW
        while now < NOW + timedelta(days=10):
            groups, computed = summary_queries(now, period)
            assert groups == fresh(period, now), now
            reused += computed == 0
            visits += 1
            now += timedelta(minutes=rng.choice([1, 7, 45, 180, 600]))
    assert 0 < reused < visits
