"""The SLA sweep: one at-risk warning and one breach alert per timer, never two, even with two
sweepers at once; working-day warnings wait for working hours; indexed lookups."""

import re
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Notification, Request, SlaPolicy
from requests_app.sla import policies, sweep, timers

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")


def la(*args):
    return datetime(*args, tzinfo=LA)


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()


def queued_request(users, slug, filed, approved):
    form = FORMS["create"](data={"instance": slug, "customer": slug.title()})
    assert form.is_valid(), form.errors
    request = workflow.file_request(
        users["ce"], "create", form.cleaned_data, now=filed, notify=False
    )
    workflow.perform(users["lead"], request.pk, "approve", now=approved, notify=False)
    return request


def alerts(request=None):
    found = Notification.objects.filter(event__isnull=True)
    if request is not None:
        found = found.filter(request=request)
    return sorted(found.values_list("topic", "channel"))


def test_at_risk_then_breached_once_each(users):
    request = queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    assert sweep.run(la(2026, 4, 7, 3)) == {}  # 17 h: 71%
    assert sweep.run(la(2026, 4, 7, 5)) == {"response_at_risk": 1}
    assert sweep.run(la(2026, 4, 7, 6)) == {}
    assert sweep.run(la(2026, 4, 7, 10, 1)) == {"response_breached": 1}
    assert sweep.run(la(2026, 4, 7, 11)) == {}
    assert alerts(request) == [("response_at_risk", "email"), ("response_breached", "email")]
    mail = Notification.objects.get(topic="response_breached")
    # Nobody picked it up: DevOps and Managers hear of it.
    assert set(mail.recipients) == {
        "devops@example.com",
        "devops2@example.com",
        "manager@example.com",
    }


def test_the_assignee_hears_instead_of_all_devops(users):
    request = queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    workflow.perform(users["devops"], request.pk, "pick_up", now=la(2026, 4, 6, 11), notify=False)
    sweep.run(la(2026, 4, 23, 12))  # resolution past 75% (Thursday of week three)
    mail = Notification.objects.get(topic="resolution_at_risk")
    assert set(mail.recipients) == {"devops@example.com", "manager@example.com"}


def test_a_timer_found_already_breached_is_not_warned_about_too(users):
    request = queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    assert sweep.run(la(2026, 4, 8, 10)) == {"response_breached": 1}
    assert sweep.run(la(2026, 4, 8, 11)) == {}
    assert alerts(request) == [("response_breached", "email")]


def test_a_breach_alert_claims_the_warning_too(users):
    """A timer alerted as breached is never warned about afterwards, even when a longer target
    moves its breach instant back into the future while its 75% instant has passed."""
    request = queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    assert sweep.run(la(2026, 4, 8, 10)) == {"response_breached": 1}
    # 72 h instead of 24 h: due Thursday 10:00 again, 75% (54 h) passed on Wednesday 16:00.
    SlaPolicy.objects.filter(kind="create").update(response_target=timedelta(hours=72))
    timers.recompute_open()
    row = Request.objects.get(pk=request.pk)
    assert row.response_warn_at < la(2026, 4, 8, 17) < row.response_breach_at
    assert sweep.run(la(2026, 4, 8, 17)) == {}
    assert alerts(request) == [("response_breached", "email")]


def test_working_day_warnings_wait_for_working_hours_breaches_do_not(users):
    # Filed and approved on Monday 2026-04-06 10:00: resolution due Monday 04-27 10:00, 75% at
    # Thursday 04-23 06:00 working time... check on a Saturday after the 75% instant instead.
    request = queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    workflow.perform(users["devops"], request.pk, "pick_up", now=la(2026, 4, 6, 11), notify=False)
    request.refresh_from_db()
    assert request.resolution_warn_at < la(2026, 4, 25)
    saturday = la(2026, 4, 25, 12)
    assert sweep.run(saturday) == {}
    assert sweep.run(la(2026, 4, 27, 0, 5)) == {"resolution_at_risk": 1}  # Monday
    # The 24 h response clock is calendar time: its breach goes out on a Sunday too.
    other = queued_request(users, "other", la(2026, 4, 10, 9), la(2026, 4, 11, 10))
    assert sweep.run(la(2026, 4, 12, 11)) == {"response_breached": 1}
    assert alerts(other) == [("response_breached", "email")]


def test_paused_and_stopped_timers_are_left_alone(users):
    request = queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    workflow.perform(users["devops"], request.pk, "pick_up", now=la(2026, 4, 6, 11), notify=False)
    workflow.perform(
        users["devops"], request.pk, "wait_on_customer", now=la(2026, 4, 6, 12), notify=False
    )
    assert sweep.run(la(2026, 6, 1, 12)) == {}


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_send_each_alert_once():
    from tests.factories import make_user

    users = {
        "ce": make_user("ce", "CE"),
        "lead": make_user("lead", "CE Leadership"),
        "devops": make_user("devops", "DevOps"),
    }
    for i in range(20):
        queued_request(users, f"inst{i}", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    barrier = threading.Barrier(4)
    results = []

    def sweeper():
        try:
            barrier.wait()
            results.append(sweep.run(la(2026, 4, 8, 12)))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.get("response_breached", 0) for r in results) == 20
    assert Notification.objects.filter(topic="response_breached").count() == 20


def test_the_sweep_lookups_use_the_partial_indexes(users):
    queued_request(users, "hooli", la(2026, 4, 6, 9), la(2026, 4, 6, 10))
    with connection.cursor() as cursor:
        # The only other index whose condition (an open request) the lookups imply: on a table
        # of one row the planner may read either. Dropped inside the test's transaction.
        cursor.execute("DROP INDEX open_resolution_due")
    for which in ("response", "resolution"):
        queryset = sweep.due(sweep.REQUEST_TIMERS, which, la(2026, 4, 8))
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            plan = queryset.explain()
        assert re.search(rf"(using|on) sweep_{which}\b", plan), plan
    assert Request.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("index", "statistics"),
    [
        ("sweep_response", "sweep_response_stats"),
        ("sweep_resolution", "sweep_resolution_stats"),
        ("incident_sweep_ack", "incident_sweep_ack_stats"),
        ("incident_sweep_res", "incident_sweep_res_stats"),
    ],
)
def test_each_sweep_index_expression_has_statistics_of_the_same_expression(index, statistics):
    """PostgreSQL keeps no statistics of a partial index's expression: without these (migration
    0017) it guessed, at 100,000 open requests, that a third had an alert due, and the sweep
    read the whole table every minute (bench/sla.py: 172 ms instead of 8 ms)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [index])
        (definition,) = cursor.fetchone()
        cursor.execute(
            "SELECT pg_get_statisticsobjdef_expressions(oid) FROM pg_statistic_ext"
            " WHERE stxname = %s",
            [statistics],
        )
        (expressions,) = cursor.fetchone()
    assert len(expressions) == 1
    assert f"({expressions[0]})" in definition, (expressions, definition)
