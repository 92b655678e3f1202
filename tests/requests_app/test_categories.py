"""Customer and internal instances: a create request says which (customer by default), the
instance it builds keeps it, requests about an instance take its category, and the lists filter
by it (`?category=`, exact, any case)."""

import pytest
from django.urls import reverse

from provisioning.models import Instance
from requests_app.models import Request, State
from tests.factories import apply_run_by_hand
from tests.requests_app.test_api import api, make_instance, payload, request_in_state

pytestmark = pytest.mark.clock


def test_a_create_is_for_a_customer_unless_it_says_internal(users):
    client = api(users["ce"])
    plain = client.post("/api/v1/requests/", payload("create", "plain"), format="json").json()
    ours = client.post(
        "/api/v1/requests/", payload("create", "ours", category="internal"), format="json"
    ).json()
    assert (plain["category"], ours["category"]) == ("customer", "internal")
    bad = client.post(
        "/api/v1/requests/", payload("create", "bad", category="partner"), format="json"
    )
    assert bad.status_code == 400 and "category" in bad.json()


def test_the_instance_a_create_builds_keeps_its_category(users):
    response = api(users["ce"]).post(
        "/api/v1/requests/", payload("create", "dogfood", category="internal"), format="json"
    )
    request = Request.objects.get(pk=response.json()["id"])
    for who, action in [("lead", "approve"), ("devops", "pick_up")]:
        from requests_app import workflow

        workflow.perform(users[who], request.pk, action, notify=False)
    apply_run_by_hand(users["devops"], request.pk)
    instance = Instance.objects.get(slug="dogfood")
    assert (instance.category, instance.status) == ("internal", "active")
    got = api(users["manager"]).get("/api/v1/instances/dogfood/").json()
    assert got["category"] == "internal"


def test_requests_about_an_instance_take_its_category(users):
    make_instance("dogfood", category="internal", status="active")
    response = api(users["sales"]).post(
        "/api/v1/requests/", payload("suspend", "dogfood", customer=None), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["category"] == "internal"


def test_the_instance_list_filters_by_category_in_any_case(users):
    make_instance("acme")
    make_instance("dogfood", category="internal")
    reader = api(users["manager"])
    everything = reader.get("/api/v1/instances/").json()["results"]
    assert {(i["slug"], i["category"]) for i in everything} == {
        ("acme", "customer"),
        ("dogfood", "internal"),
    }
    for value in ["internal", "INTERNAL", "Internal"]:
        found = reader.get("/api/v1/instances/", {"category": value}).json()["results"]
        assert [i["slug"] for i in found] == ["dogfood"], value
    found = reader.get("/api/v1/instances/", {"category": "customer"}).json()["results"]
    assert [i["slug"] for i in found] == ["acme"]
    for bad in ["", "partner", "intern"]:
        response = reader.get("/api/v1/instances/", {"category": bad})
        assert response.status_code == 400 and "category" in response.json(), bad


def test_the_request_list_filters_by_category_in_the_api_and_on_the_page(client, users):
    make_instance("dogfood", category="internal")
    ours = request_in_state(users, State.QUEUED, kind="suspend", slug="dogfood")
    theirs = request_in_state(users, State.QUEUED, kind="suspend")
    reader = api(users["devops"])
    found = reader.get("/api/v1/requests/", {"category": "Internal"}).json()["results"]
    assert [r["id"] for r in found] == [ours.pk]
    found = reader.get("/api/v1/requests/", {"category": "customer", "state": "queued"}).json()
    assert [r["id"] for r in found["results"]] == [theirs.pk]
    assert reader.get("/api/v1/requests/", {"category": "x"}).status_code == 400
    client.force_login(users["devops"])
    page = client.get(reverse("request_list"), {"category": "internal"}).content.decode()
    assert f'data-request-id="{ours.pk}"' in page
    assert f'data-request-id="{theirs.pk}"' not in page
    assert '<option value="internal" selected>' in page  # the select keeps the filter
    assert client.get(reverse("request_list"), {"category": "x"}).status_code == 400
