"""`/api/v1/incidents/` (docs/incidents.md): opening, the detail's shape, filters, the
postmortem rule, the commander, updates, and the notifications an opening sends."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from incidents.models import Incident
from requests_app.models import Notification
from tests.incidents.factories import incident_in_state, make_instance, open_incident

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 4, 7, 10, 0, tzinfo=LA)  # a Tuesday


def api(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def fleet(db):
    return {
        "acme": make_instance("acme", customer="Acme Corp"),
        "globex": make_instance("globex", customer="Globex"),
        "oldco": make_instance("oldco", status="torn_down"),
    }


def post_incident(user, **body):
    data = {
        "title": "Search is down",
        "severity": "sev2",
        "instances": ["acme"],
        "description": "Every search times out.",
        **body,
    }
    return api(user).post("/api/v1/incidents/", data, format="json")


def test_opening_answers_201_with_the_incident(users, fleet):
    with time_machine.travel(NOW, tick=False):
        response = post_incident(users["ce"], instances=["globex", "acme"])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "id",
        "title",
        "severity",
        "state",
        "instances",
        "description",
        "commander",
        "opened_by",
        "postmortem_url",
        "created_at",
        "updated_at",
        "mitigated_at",
        "sla",
        "events",
        "allowed_actions",
    }
    assert body["title"] == "Search is down" and body["severity"] == "sev2"
    assert body["state"] == "open" and body["instances"] == ["acme", "globex"]
    assert body["opened_by"] == "ce" and body["commander"] is None
    assert body["postmortem_url"] is None
    assert body["allowed_actions"] == []  # CE opens, DevOps act
    assert body["events"] == [
        {
            "at": "2026-04-07T10:00:00-07:00",
            "by": "ce",
            "action": "open",
            "from_state": "",
            "to_state": "open",
            "body": "",
        }
    ]
    assert body["sla"]["acknowledge"]["due_at"] == "2026-04-07T11:00:00-07:00"
    assert body["sla"]["resolution"]["due_at"] == "2026-04-08T10:00:00-07:00"


def test_devops_hear_of_a_new_incident_by_mail_and_slack(users, fleet, settings):
    settings.SLACK_WEBHOOK_URL = "https://hooks.slack.example/T0"
    response = post_incident(users["ce"])
    incident_id = response.json()["id"]
    rows = Notification.objects.filter(topic="incident_opened")
    assert sorted(rows.values_list("channel", flat=True)) == ["email", "slack"]
    mail = rows.get(channel="email")
    assert set(mail.recipients) == {"devops@example.com", "devops2@example.com"}
    assert "SEV2 Search is down (acme)" in mail.subject
    assert f"/incidents/{incident_id}/" in mail.body and "Every search times out." in mail.body


@pytest.mark.parametrize(
    "body, field",
    [
        ({"instances": ["nosuch"]}, "instances"),
        ({"instances": ["oldco"]}, "instances"),  # torn down
        ({"instances": []}, "instances"),
        ({"instances": "acme"}, "instances"),
        ({"instances": ["acme\x00"]}, "instances"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"severity": "sev4"}, "severity"),
        ({"severity": "SEV1"}, "severity"),
        ({"description": 5}, "description"),
    ],
)
def test_bad_input_is_a_field_error(users, fleet, body, field):
    response = post_incident(users["devops"], **body)
    assert response.status_code == 400, response.json()
    assert field in response.json() and response.json()["detail"]
    assert not Incident.objects.exists()


def test_a_missing_field_and_a_body_that_is_not_an_object(users, fleet):
    response = api(users["ce"]).post(
        "/api/v1/incidents/", {"title": "t", "severity": "sev1"}, format="json"
    )
    assert response.status_code == 400 and "instances" in response.json()
    response = api(users["ce"]).post("/api/v1/incidents/", ["acme"], format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


def test_the_unknown_slug_is_named(users, fleet):
    response = post_incident(users["ce"], instances=["acme", "nosuch"])
    assert response.json()["instances"] == ["There is no live instance 'nosuch'."]


def test_resolving_a_sev1_or_sev2_needs_a_postmortem(users, fleet):
    for severity in ("sev1", "sev2"):
        incident = incident_in_state(users, "acknowledged", fleet["acme"], severity=severity)
        url = f"/api/v1/incidents/{incident.pk}/actions/resolve/"
        response = api(users["devops"]).post(url, {"comment": "fixed"}, format="json")
        assert response.status_code == 400
        assert "postmortem" in response.json()["postmortem_url"][0]
        response = api(users["devops"]).post(url, {"postmortem_url": "   "}, format="json")
        assert response.status_code == 400 and "postmortem_url" in response.json()
        response = api(users["devops"]).post(url, {"postmortem_url": "ftp:/x"}, format="json")
        assert response.status_code == 400 and "postmortem_url" in response.json()
        incident.refresh_from_db()
        assert incident.state == "acknowledged" and incident.resolution_stopped_at is None
        pm = "https://wiki.example.com/pm/42"
        response = api(users["devops"]).post(url, {"postmortem_url": pm}, format="json")
        assert response.status_code == 200
        assert response.json()["state"] == "resolved"
        assert response.json()["postmortem_url"] == pm


def test_a_sev3_resolves_without_a_postmortem(users, fleet):
    incident = incident_in_state(users, "mitigated", fleet["acme"], severity="sev3")
    response = api(users["devops"]).post(
        f"/api/v1/incidents/{incident.pk}/actions/resolve/", {}, format="json"
    )
    assert response.status_code == 200 and response.json()["postmortem_url"] is None


def test_the_role_is_checked_before_the_postmortem_and_the_state(users, fleet):
    incident = incident_in_state(users, "open", fleet["acme"], severity="sev1")
    url = f"/api/v1/incidents/{incident.pk}/actions/resolve/"
    assert api(users["ce"]).post(url, {}, format="json").status_code == 403
    assert api(users["devops"]).post(url, {}, format="json").status_code == 409


def test_acknowledging_makes_the_first_responder_commander_and_devops_may_change_it(users, fleet):
    incident = open_incident(users["ce"], fleet["acme"])
    client = api(users["devops2"])
    body = client.post(f"/api/v1/incidents/{incident.pk}/actions/ack/", {}, format="json").json()
    assert body["commander"] == "devops2"
    url = f"/api/v1/incidents/{incident.pk}/actions/commander/"
    response = client.post(url, {"commander": "devops"}, format="json")
    assert response.status_code == 200 and response.json()["commander"] == "devops"
    assert response.json()["state"] == "acknowledged"
    response = client.post(url, {"commander": "ce"}, format="json")
    assert response.status_code == 400
    assert response.json()["commander"] == [
        "ce is not in DevOps; only DevOps members command incidents."
    ]
    response = client.post(url, {"commander": None}, format="json")
    assert response.status_code == 200 and response.json()["commander"] is None
    # A commander set before the ack stays.
    other = open_incident(users["ce"], fleet["acme"])
    client.post(
        f"/api/v1/incidents/{other.pk}/actions/commander/", {"commander": "devops"}, format="json"
    )
    body = client.post(f"/api/v1/incidents/{other.pk}/actions/ack/", {}, format="json").json()
    assert body["commander"] == "devops"


def test_updates_need_a_body(users, fleet):
    incident = open_incident(users["ce"], fleet["acme"])
    url = f"/api/v1/incidents/{incident.pk}/updates/"
    for body in ({}, {"body": " \n"}, {"body": None}, {"body": 3}):
        response = api(users["ce"]).post(url, body, format="json")
        assert response.status_code == 400 and "body" in response.json(), body
    assert api(users["manager"]).post(url, {"body": "hi"}, format="json").status_code == 403


def test_unknown_incidents_and_actions(users, fleet):
    assert api(users["devops"]).get("/api/v1/incidents/999999/").status_code == 404
    assert api(users["devops"]).get("/api/v1/incidents/abc/").status_code == 404
    response = api(users["devops"]).post("/api/v1/incidents/999999/actions/ack/", {}, format="json")
    assert response.status_code == 404 and set(response.json()) == {"detail"}
    incident = open_incident(users["ce"], fleet["acme"])
    response = api(users["devops"]).post(
        f"/api/v1/incidents/{incident.pk}/actions/close/", {}, format="json"
    )
    assert response.status_code == 400 and "action" in response.json()


def test_the_list_is_paginated_and_filtered(users, fleet):
    acme, globex = fleet["acme"], fleet["globex"]
    a = incident_in_state(users, "open", acme, severity="sev1")
    b = incident_in_state(users, "acknowledged", acme, globex, severity="sev2")
    c = incident_in_state(users, "resolved", globex, severity="sev3")
    client = api(users["manager"])

    def ids(query=""):
        response = client.get(f"/api/v1/incidents/{query}")
        assert response.status_code == 200, response.json()
        body = response.json()
        assert set(body) == {"count", "next", "previous", "results"}
        assert all(row["allowed_actions"] is None for row in body["results"])
        return [row["id"] for row in body["results"]]

    assert ids() == [c.pk, b.pk, a.pk]  # newest first
    assert ids("?state=open") == [a.pk]
    assert ids("?state=RESOLVED") == [c.pk]
    assert ids("?severity=sev2") == [b.pk]
    assert ids("?instance=acme") == [b.pk, a.pk]
    assert ids("?instance=GLOBEX&severity=sev3") == [c.pk]
    assert ids("?instance=") == []
    for query in ("?state=closed", "?severity=p1", "?state="):
        response = client.get(f"/api/v1/incidents/{query}")
        assert response.status_code == 400 and response.json()["detail"], query


def test_the_list_runs_a_fixed_number_of_queries(users, fleet, django_assert_max_num_queries):
    for _ in range(3):
        incident_in_state(users, "acknowledged", fleet["acme"], fleet["globex"])
    client = api(users["manager"])
    client.get("/api/v1/incidents/")  # warm the policy and calendar caches
    with django_assert_max_num_queries(8) as counted:
        client.get("/api/v1/incidents/")
    few = len(counted)
    for _ in range(5):
        incident_in_state(users, "resolved", fleet["acme"])
    with django_assert_max_num_queries(few):
        assert client.get("/api/v1/incidents/").json()["count"] == 8
