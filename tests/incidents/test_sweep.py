"""The incidents' SLA sweep: one at-risk warning (75%) and one breach alert per timer, never
two, even with two sweepers at once; none for a stopped timer; working-day warnings wait for
working hours; the lookups use the partial indexes."""

import re
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from incidents import sweep, workflow
from requests_app.models import Notification
from requests_app.sla import policies as sla_policies
from requests_app.sla import sweep as sla_sweep
from tests.incidents.factories import make_instance, open_incident

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")


def la(*args):
    return datetime(*args, tzinfo=LA)


@pytest.fixture(autouse=True)
def fresh_caches():
    sla_policies.invalidate_cache()


@pytest.fixture
def acme(db):
    return make_instance("acme")


def alerts():
    return sorted(
        Notification.objects.filter(topic__startswith="incident_sla").values_list(
            "topic", "channel"
        )
    )


def topics():
    return sorted(
        Notification.objects.exclude(topic="incident_opened").values_list("topic", flat=True)
    )


def test_at_risk_then_breached_once_each(users, acme):
    open_incident(users["ce"], acme, severity="sev1", at=la(2026, 4, 7, 10))
    assert sweep.run(la(2026, 4, 7, 10, 11)) == {}  # 73% of 15 minutes
    assert sweep.run(la(2026, 4, 7, 10, 12)) == {"acknowledge_at_risk": 1}
    assert sweep.run(la(2026, 4, 7, 10, 13)) == {}
    assert sweep.run(la(2026, 4, 7, 10, 15)) == {}  # elapsed = target: not breached yet
    assert sweep.run(la(2026, 4, 7, 10, 16)) == {"acknowledge_breached": 1}
    assert sweep.run(la(2026, 4, 7, 10, 30)) == {}
    assert topics() == ["incident_acknowledge_at_risk", "incident_acknowledge_breached"]
    mail = Notification.objects.get(topic="incident_acknowledge_breached")
    # Nobody commands it yet: DevOps and Managers hear of it.
    assert set(mail.recipients) == {
        "devops@example.com",
        "devops2@example.com",
        "manager@example.com",
    }
    assert "SLA breached: acknowledge of incident" in mail.subject and "/incidents/" in mail.body


def test_the_commander_hears_instead_of_all_devops_and_stopped_timers_are_quiet(users, acme):
    incident = open_incident(users["ce"], acme, severity="sev1", at=la(2026, 4, 7, 10))
    workflow.perform(users["devops2"], incident.pk, "ack", now=la(2026, 4, 7, 10, 5))
    assert sweep.run(la(2026, 4, 7, 13, 1)) == {"resolution_at_risk": 1}  # 3 h of 4
    mail = Notification.objects.get(topic="incident_resolution_at_risk")
    assert set(mail.recipients) == {"devops2@example.com", "manager@example.com"}
    workflow.perform(
        users["devops2"],
        incident.pk,
        "resolve",
        postmortem_url="https://example.com/pm",
        now=la(2026, 4, 7, 13, 30),
    )
    assert sweep.run(la(2026, 4, 8)) == {}
    assert topics() == ["incident_resolution_at_risk"]


def test_a_timer_found_already_breached_is_not_warned_about_too(users, acme, settings):
    settings.SLACK_WEBHOOK_URL = "https://hooks.slack.example/T0"
    open_incident(users["ce"], acme, severity="sev2", at=la(2026, 4, 7, 10))
    assert sweep.run(la(2026, 4, 7, 12)) == {"acknowledge_breached": 1}
    assert sweep.run(la(2026, 4, 7, 12, 1)) == {}
    assert sorted(
        Notification.objects.exclude(topic="incident_opened").values_list("topic", "channel")
    ) == [
        ("incident_acknowledge_breached", "email"),
        ("incident_acknowledge_breached", "slack"),
    ]


def test_working_day_warnings_wait_for_working_hours_breaches_do_not(users, acme):
    # sev3 opened Friday 2026-04-10 00:00: resolution due Friday 04-17 00:00 (5 working days
    # of 24 h), 75% at Wednesday 04-15 18:00.
    incident = open_incident(users["ce"], acme, severity="sev3", at=la(2026, 4, 10, 0))
    workflow.perform(users["devops"], incident.pk, "ack", now=la(2026, 4, 10, 1))
    assert sweep.run(la(2026, 4, 15, 17, 59)) == {}
    assert sweep.run(la(2026, 4, 15, 18)) == {"resolution_at_risk": 1}
    # A second one, opened Monday 04-13 00:00: due Saturday 04-18 00:00, 75% Thursday 18:00;
    # the breach is on Monday 04-20 00:00, when the clock runs again.
    later = open_incident(users["ce"], acme, severity="sev3", at=la(2026, 4, 13, 0))
    workflow.perform(users["devops"], later.pk, "ack", now=la(2026, 4, 13, 1))
    assert sweep.run(la(2026, 4, 16, 18)) == {"resolution_at_risk": 1}
    assert sweep.run(la(2026, 4, 17, 0, 1)) == {"resolution_breached": 1}  # the first one
    assert sweep.run(la(2026, 4, 19, 12)) == {}  # Sunday: the second is not breached yet
    assert sweep.run(la(2026, 4, 20, 0, 1)) == {"resolution_breached": 1}


def test_a_weekend_warning_of_a_working_day_timer_waits_for_monday(users, acme):
    # Opened Tuesday 2026-04-14 06:00: 75% of 5 working days (90 h) is used up at Saturday
    # 04-18 00:00; nobody is warned on the weekend about a clock that stands still.
    incident = open_incident(users["ce"], acme, severity="sev3", at=la(2026, 4, 14, 6))
    workflow.perform(users["devops"], incident.pk, "ack", now=la(2026, 4, 14, 7))
    assert incident.resolution_warn_at == la(2026, 4, 18, 0)
    # The acknowledge clock of sev3 is calendar time: warned on the weekend too.
    open_incident(users["ce"], acme, severity="sev3", at=la(2026, 4, 17, 12))
    assert sweep.run(la(2026, 4, 18, 12)) == {"acknowledge_at_risk": 1}  # 75% at 06:00
    assert sweep.run(la(2026, 4, 19, 23, 59)) == {"acknowledge_breached": 1}
    assert sweep.run(la(2026, 4, 20, 0, 1)) == {"resolution_at_risk": 1}


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_send_each_alert_once(users, acme):
    for _ in range(10):
        open_incident(users["ce"], acme, severity="sev1", at=la(2026, 4, 7, 10))
    barrier = threading.Barrier(4)
    results = []

    def sweeper():
        try:
            barrier.wait()
            results.append(sweep.run(la(2026, 4, 7, 11)))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.get("acknowledge_breached", 0) for r in results) == 10
    assert Notification.objects.filter(topic="incident_acknowledge_breached").count() == 10
    assert Notification.objects.filter(topic="incident_acknowledge_at_risk").count() == 0


def test_the_sweep_lookups_use_the_partial_indexes(users, acme):
    open_incident(users["ce"], acme, severity="sev1", at=la(2026, 4, 7, 10))
    for which in ("acknowledge", "resolution"):
        queryset = sla_sweep.due(sweep.INCIDENT_TIMERS, which, la(2026, 4, 8))
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            plan = queryset.explain()
        assert re.search(rf"(using|on) incident_sweep_{which[:3]}\b", plan), plan
