"""The incident timers (docs/incidents.md, docs/sla.md): targets per severity, both clocks
started at open, `acknowledge` stopped by `ack`, `resolution` by `resolve`, the timer JSON
exactly as for requests, working days for sev3, and the stored instants moved when a policy or
the working calendar changes."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from incidents import timers, workflow
from incidents.models import Incident, IncidentPolicy
from requests_app.models import Closure
from requests_app.sla import policies as sla_policies
from requests_app.sla import timers as request_timers
from tests.incidents.factories import make_instance, open_incident

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")


def la(*args):
    return datetime(*args, tzinfo=LA)


@pytest.fixture(autouse=True)
def fresh_caches():
    sla_policies.invalidate_cache()
    yield
    sla_policies.invalidate_cache()


@pytest.fixture
def acme(db):
    return make_instance("acme")


def sla_at(incident_id, at, user):
    """The incident's `sla` as the API answers it at `at`."""
    client = APIClient()
    client.force_authenticate(user)
    with time_machine.travel(at, tick=False):
        return client.get(f"/api/v1/incidents/{incident_id}/").json()["sla"]


def act(user, incident, action, at, **extra):
    return workflow.perform(user, incident.pk, action, now=at, **extra)


def test_sev1_timer_json_while_running_and_once_stopped(users, acme):
    opened = la(2026, 4, 7, 10)  # Tuesday
    incident = open_incident(users["ce"], acme, severity="sev1", at=opened)
    assert sla_at(incident.pk, opened + timedelta(minutes=12), users["manager"]) == {
        "acknowledge": {
            "started_at": "2026-04-07T10:00:00-07:00",
            "due_at": "2026-04-07T10:15:00-07:00",
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 720,
            "remaining_seconds": 180,
            "status": "running",
            "at_risk": True,  # 80% of 15 minutes used
        },
        "resolution": {
            "started_at": "2026-04-07T10:00:00-07:00",
            "due_at": "2026-04-07T14:00:00-07:00",
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 720,
            "remaining_seconds": 4 * 3600 - 720,
            "status": "running",
            "at_risk": False,
        },
    }
    act(users["devops"], incident, "ack", opened + timedelta(minutes=14))
    act(users["devops"], incident, "mitigate", opened + timedelta(hours=1))
    act(
        users["devops"],
        incident,
        "resolve",
        opened + timedelta(hours=4, minutes=30),
        postmortem_url="https://example.com/pm/1",
    )
    sla = sla_at(incident.pk, opened + timedelta(days=3), users["manager"])
    assert sla["acknowledge"] == {
        "started_at": "2026-04-07T10:00:00-07:00",
        "due_at": "2026-04-07T10:15:00-07:00",
        "stopped_at": "2026-04-07T10:14:00-07:00",
        "paused": False,
        "elapsed_seconds": 840,
        "remaining_seconds": 60,
        "status": "met",
        "at_risk": False,
    }
    assert sla["resolution"] == {
        "started_at": "2026-04-07T10:00:00-07:00",
        "due_at": "2026-04-07T14:00:00-07:00",
        "stopped_at": "2026-04-07T14:30:00-07:00",
        "paused": False,
        "elapsed_seconds": 4 * 3600 + 1800,
        "remaining_seconds": -1800,
        "status": "breached",
        "at_risk": False,
    }


def test_sev2_targets_are_calendar_time(users, acme):
    opened = la(2026, 4, 10, 23, 30)  # Friday night: calendar time runs over the weekend
    incident = open_incident(users["ce"], acme, severity="sev2", at=opened)
    assert incident.acknowledge_due_at == la(2026, 4, 11, 0, 30)
    assert incident.resolution_due_at == la(2026, 4, 11, 23, 30)
    act(users["devops"], incident, "ack", opened + timedelta(minutes=61))
    sla = sla_at(incident.pk, opened + timedelta(hours=2), users["manager"])
    assert sla["acknowledge"]["status"] == "breached"
    assert sla["acknowledge"]["remaining_seconds"] == -60
    assert sla["resolution"]["status"] == "running"


def test_sev3_resolution_counts_five_working_days(users, acme):
    opened = la(2026, 4, 10, 16)  # Friday 16:00: 8 working hours left that day
    incident = open_incident(users["ce"], acme, severity="sev3", at=opened)
    assert incident.acknowledge_due_at == la(2026, 4, 11, 16)  # 24 h, calendar time
    assert incident.resolution_due_at == la(2026, 4, 17, 16)  # Friday a week later
    sla = sla_at(incident.pk, la(2026, 4, 12, 12), users["manager"])  # Sunday noon
    assert sla["resolution"]["elapsed_seconds"] == 8 * 3600  # the weekend does not count
    assert sla["resolution"]["remaining_seconds"] == 5 * 86400 - 8 * 3600
    assert sla["resolution"]["due_at"] == "2026-04-17T16:00:00-07:00"
    assert sla["acknowledge"]["status"] == "breached"  # calendar: past Saturday 16:00


def test_sev3_opened_on_a_saturday_is_met_up_to_the_monday_after_its_due(users, acme):
    opened = la(2026, 4, 11, 10)  # Saturday: the working clock starts Monday 00:00
    first = open_incident(users["ce"], acme, severity="sev3", at=opened)
    second = open_incident(users["ce"], acme, severity="sev3", at=opened)
    # Due at the end of the fifth working day; breached only once the clock runs again.
    assert first.resolution_due_at == la(2026, 4, 18, 0)
    assert first.resolution_breach_at == la(2026, 4, 20, 0)
    for incident in (first, second):
        act(users["devops"], incident, "ack", opened + timedelta(hours=1))
    act(users["devops"], first, "resolve", la(2026, 4, 18, 10))
    assert sla_at(first.pk, la(2026, 4, 21), users["manager"])["resolution"]["status"] == "met"
    sunday = sla_at(second.pk, la(2026, 4, 19, 23, 59), users["manager"])["resolution"]
    assert (sunday["status"], sunday["remaining_seconds"]) == ("running", 0)
    monday = sla_at(second.pk, la(2026, 4, 20, 0, 1), users["manager"])["resolution"]
    assert (monday["status"], monday["remaining_seconds"]) == ("breached", -60)


def test_sev3_skips_holidays(users, acme):
    incident = open_incident(users["ce"], acme, severity="sev3", at=la(2026, 11, 25, 10))
    # Thanksgiving (Thursday 26th) and the weekend do not count.
    assert incident.resolution_due_at == la(2026, 12, 3, 10)


def test_a_policy_change_moves_running_timers_only(users, acme):
    opened = la(2026, 4, 7, 10)
    running = open_incident(users["ce"], acme, severity="sev2", at=opened)
    stopped = open_incident(users["ce"], acme, severity="sev2", at=opened)
    act(users["devops"], stopped, "ack", opened + timedelta(minutes=30))
    act(
        users["devops"],
        stopped,
        "resolve",
        opened + timedelta(hours=1),
        postmortem_url="https://x.example/pm",
    )
    # (update_or_create: a transactional test run before this one flushed the migration's rows)
    IncidentPolicy.objects.update_or_create(
        severity="sev2",
        defaults={
            "acknowledge_target": timedelta(hours=2),
            "acknowledge_mode": "calendar",
            "resolution_target": timedelta(hours=24),
            "resolution_mode": "calendar",
        },
    )
    sla_policies.invalidate_cache()
    assert timers.recompute_unresolved() == 1
    running.refresh_from_db()
    stopped.refresh_from_db()
    assert running.acknowledge_due_at == la(2026, 4, 7, 12)
    assert stopped.acknowledge_due_at == la(2026, 4, 7, 11)


def test_a_closure_added_in_the_admin_moves_sev3_resolutions(users, acme):
    incident = open_incident(users["ce"], acme, severity="sev3", at=la(2026, 4, 10, 16))
    Closure.objects.create(date=la(2026, 4, 13).date(), reason="Team offsite")
    # The admin's recompute job of the request timers tells of the changed calendar.
    request_timers.recompute_open()
    incident.refresh_from_db()
    assert incident.resolution_due_at == la(2026, 4, 20, 16)


def test_the_timers_without_a_policy_row_use_the_defaults(users, acme):
    IncidentPolicy.objects.all().delete()
    incident = open_incident(users["ce"], acme, severity="sev1", at=la(2026, 4, 7, 10))
    assert incident.acknowledge_due_at == la(2026, 4, 7, 10, 15)
    assert incident.resolution_due_at == la(2026, 4, 7, 14)
    assert Incident.objects.get(pk=incident.pk).resolution_warn_at == la(2026, 4, 7, 13)
