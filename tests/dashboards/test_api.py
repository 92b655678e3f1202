"""GET /api/v1/sla/summary/ (docs/api.md): auth, parameters, and that its open
at_risk / breached counts are the request list's `at_risk=true` / `breached=true` rows."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from requests_app.sla import policies
from tests.dashboards.factories import random_rows
from tests.factories import make_user

pytestmark = pytest.mark.clock

URL = "/api/v1/sla/summary/"
# The instant the open-count test stands at, a Wednesday afternoon in working hours: there its
# seeded rows hold open timers both at risk and breached. (Made relative to the real now they
# held none at risk on Saturday 2026-11-28, and the test failed.)
NOW = datetime(2026, 3, 25, 15, tzinfo=ZoneInfo("America/Los_Angeles"))


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()
    yield
    policies.invalidate_cache()


def api(user=None, token=False):
    client = APIClient()
    if user is not None and token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    elif user is not None:
        client.force_login(user)
    return client


def test_anonymous_calls_get_401_and_people_without_a_role_403(users):
    assert api().get(URL).status_code == 401
    assert api(make_user("nobody")).get(URL).status_code == 403


@pytest.mark.parametrize("who", ["ce", "sales", "lead", "reviewer", "devops", "manager", "admin"])
def test_every_role_reads_the_summary(users, who):
    response = api(users[who], token=who == "manager").get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {
        "since",
        "until",
        "kind",
        "customer",
        "category",
        "kinds",
        "total",
        "incidents",
        "maintenance",
    }
    assert set(body["incidents"]) == {"sev1", "sev2", "sev3", "total"}
    assert set(body["maintenance"]) == {
        "latest_version",
        "active_instances",
        "on_latest",
        "releases",
    }
    assert set(body["kinds"]["create"]) == {
        "count",
        "response_met_pct",
        "resolution_met_pct",
        "median_response_seconds",
        "median_resolution_working_days",
        "p90_response_seconds",
        "p90_resolution_working_days",
        "at_risk",
        "breached",
    }


def test_bad_parameters_answer_400_with_field_errors(users):
    response = api(users["ce"]).get(URL, {"since": "last week", "kind": "rocket"})
    assert response.status_code == 400
    assert set(response.json()) == {"detail", "since", "kind"}  # the one error body
    response = api(users["ce"]).get(URL, {"since": "2026-03-10", "until": "2026-03-01"})
    assert response.status_code == 400
    assert "until" in response.json()


def test_the_period_and_filters_come_back(users):
    response = api(users["ce"]).get(
        URL, {"since": "2026-01-01", "until": "2026-03-31", "kind": "upgrade", "customer": "Acme"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["since"] == "2026-01-01T00:00:00-08:00"
    assert body["until"] == "2026-04-01T00:00:00-07:00"
    assert (body["kind"], body["customer"]) == ("upgrade", "Acme")
    assert list(body["kinds"]) == ["upgrade"]


@time_machine.travel(NOW, tick=False)
def test_open_counts_are_the_request_lists_at_risk_and_breached_rows(users):
    now = NOW
    rows = random_rows(users["ce"], [users["devops"]], now, 150, seed=11, days=60)
    client = api(users["manager"])
    with time_machine.travel(now, tick=False):
        body = client.get(URL, {"since": (now - timedelta(days=61)).isoformat()}).json()
        for flag in ("at_risk", "breached"):
            listed = client.get("/api/v1/requests/", {flag: "true", "page_size": 500}).json()
            ids = {r["id"] for r in listed["results"]}
            while listed["next"]:
                listed = client.get(listed["next"]).json()
                ids |= {r["id"] for r in listed["results"]}
            open_ids = {r.pk for r in rows if r.ended_at is None} & ids
            assert body["total"][flag] == len(open_ids) > 0, flag
            for kind, figures in body["kinds"].items():
                expected = sum(1 for r in rows if r.pk in open_ids and r.kind == kind)
                assert figures[flag] == expected, (flag, kind)


def test_the_schema_lists_the_summary(users):
    response = api(users["ce"]).get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/v1/sla/summary/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"since", "until", "kind", "customer"}
