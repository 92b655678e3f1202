"""Two DevOps engineers acting on one incident at once: exactly one wins, the other gets 409,
and the timeline holds one event for the change. Each thread has its own connection, so these
tests commit for real."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from incidents import workflow
from incidents.models import Incident, IncidentEvent
from tests.incidents.factories import incident_in_state, make_instance, open_incident

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.clock]


@pytest.fixture(autouse=True)
def reads_before_writes(monkeypatch):
    """ "At once" made exact: every racing call has read the incident and judged the action
    before any of them writes (see tests/requests_app/test_concurrency.py)."""
    original = workflow.check_action
    local = threading.local()

    def check_action(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        finally:
            barrier = READS["barrier"]
            if barrier is not None and not getattr(local, "waited", False):
                local.waited = True
                try:
                    barrier.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass

    monkeypatch.setattr(workflow, "check_action", check_action)


READS: dict[str, threading.Barrier | None] = {"barrier": None}


def race(calls):
    """Fire `calls` [(user, url, body)] at once, one thread and one connection each; returns
    the status codes in their order."""
    start = threading.Barrier(len(calls))
    READS["barrier"] = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, user_pk, url, body):
        try:
            client = APIClient()
            client.force_authenticate(get_user_model().objects.get(pk=user_pk))
            start.wait(timeout=30)
            results[index] = client.post(url, body, format="json").status_code
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[index] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(i, user.pk, url, body))
        for i, (user, url, body) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    READS["barrier"] = None
    assert not any(thread.is_alive() for thread in threads), "a call hung"
    return results


def test_two_engineers_acknowledging_at_once(users):
    incident = open_incident(users["ce"], make_instance("acme"), severity="sev1")
    url = f"/api/v1/incidents/{incident.pk}/actions/ack/"
    codes = race([(users["devops"], url, {}), (users["devops2"], url, {})])
    assert sorted(codes) == [200, 409], codes
    winner = [users["devops"], users["devops2"]][codes.index(200)]
    [event] = IncidentEvent.objects.filter(incident=incident, action="ack")
    assert event.by == winner
    incident = Incident.objects.get(pk=incident.pk)
    assert incident.state == "acknowledged" and incident.commander == winner
    assert incident.acknowledge_stopped_at == event.at


def test_resolving_and_setting_the_commander_at_once(users):
    incident = incident_in_state(users, "mitigated", make_instance("acme"), severity="sev3")
    base = f"/api/v1/incidents/{incident.pk}/actions"
    codes = race(
        [
            (users["devops"], f"{base}/resolve/", {}),
            (users["devops2"], f"{base}/commander/", {"commander": "devops2"}),
        ]
    )
    assert sorted(codes) == [200, 409], codes
    changes = IncidentEvent.objects.filter(incident=incident, action__in=["resolve", "commander"])
    assert changes.count() == 1
