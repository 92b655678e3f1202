"""The JSON API of docs/api.md: filing, validation, listing, auth, schema, history.

The small factory helpers at the top are shared with the permission and concurrency tests."""

import itertools
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from provisioning.models import Instance
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import PROVISIONING_KINDS, Event, Request, State
from tests.factories import PASSWORD, apply_run_by_hand, make_user

pytestmark = pytest.mark.clock

# -- helpers shared by the request API tests ---------------------------------------------------

KINDS = [
    "create",
    "suspend",
    "resume",
    "teardown",
    "upgrade",
    "enable_executors",
    "feature",
    "access",
]
# The instance status each kind needs to be filed against.
INSTANCE_STATUS_FOR = {
    "suspend": "active",
    "resume": "suspended",
    "teardown": "active",
    "upgrade": "active",
    "enable_executors": "active",
    "feature": "active",
    "access": "active",
}
_numbers = itertools.count(1)


def unique_slug(prefix="inst"):
    return f"{prefix}{next(_numbers)}"


def make_instance(slug=None, *, status="active", version="5.2.0", **fields):
    slug = slug or unique_slug()
    if status == "suspended":
        # A suspended instance keeps the snapshot its suspend took (a resume restores it).
        fields.setdefault("outputs", {"snapshot": f"{slug}-blue-s1"})
    return Instance.objects.create(
        slug=slug,
        customer=fields.pop("customer", "Acme Corp"),
        status=status,
        gcp_project=f"mi-{slug}",
        version=version,
        url=f"https://{slug}.managed.example.com",
        **fields,
    )


def payload(kind, slug, **extra):
    """A valid API body for filing a `kind` request about `slug`."""
    data = {
        "kind": kind,
        "customer": "Acme Corp",
        "instance": slug,
        "justification": "The customer asked for it.",
        "non_standard_reasons": [],
    }
    if kind == "create":
        data.update(access="public_sso", zone="us-central1-f", users=200, repositories=1500)
    elif kind == "teardown":
        data["confirm"] = slug
    elif kind == "upgrade":
        data["target_version"] = "6.0.0"
    elif kind == "access":
        data.update(person="jo@example.com", scope="vault", category="customer")
        del data["non_standard_reasons"]  # access has one decision: no tech review
    data.update(extra)
    return data


def target_for(kind, slug=None):
    """A slug a `kind` request may name: a fresh one for create, else an instance that fits."""
    if kind == "create":
        return slug or unique_slug("new")
    if slug and Instance.objects.filter(slug=slug).exists():
        return slug
    return make_instance(slug, status=INSTANCE_STATUS_FOR[kind]).slug


def file_request(requester, kind="create", slug=None, *, reasons=(), **extra):
    """File through the same form and workflow function as the API does."""
    slug = target_for(kind, slug)
    form = FORMS[kind](data=payload(kind, slug, non_standard_reasons=list(reasons), **extra))
    assert form.is_valid(), form.errors
    return workflow.file_request(requester, kind, form.cleaned_data)


def request_in_state(users, state, *, kind="create", requester=None, slug=None, standard=None):
    """A request of `kind` brought to `state` by the workflow functions, as people would.

    `standard` defaults to what the path needs: non-standard only to stop in tech_review."""
    requester = requester or users["ce"]
    if standard is None:
        standard = state != State.TECH_REVIEW
    request = file_request(requester, kind, slug, reasons=() if standard else ["other"])

    def act(user, action, **kwargs):
        workflow.perform(user, request.pk, action, **kwargs)

    # Access requests are approved by Managers, the others by CE Leadership.
    approver = users["manager"] if kind == "access" else users["lead"]
    if state == State.REJECTED:
        act(approver, "reject", comment="Not this quarter.")
    elif state == State.CANCELLED:
        act(requester, "cancel")
    elif state != State.PENDING_APPROVAL:
        act(approver, "approve")
        if not standard and state != State.TECH_REVIEW:
            act(users["reviewer"], "tech_approve")
        if state in (State.IN_PROGRESS, State.WAITING_ON_CUSTOMER, State.DONE):
            act(users["devops"], "pick_up")
        if state == State.WAITING_ON_CUSTOMER:
            act(users["devops"], "wait_on_customer")
        if state == State.DONE and kind in PROVISIONING_KINDS:
            # A provisioning request is done when its run applies (teardowns: a second person).
            apply_run_by_hand(users["devops"], request.pk, confirmer=users["devops2"])
        elif state == State.DONE:
            act(users["devops"], "complete")
    request.refresh_from_db()
    assert request.state == state
    return request


def api(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def post_action(user, request_id, action, **body):
    return api(user).post(f"/api/v1/requests/{request_id}/actions/{action}/", body, format="json")


def future(days=10):
    return timezone.now() + timedelta(days=days)


# -- filing -------------------------------------------------------------------------------------

REQUEST_FIELDS = {
    "id",
    "kind",
    "state",
    "customer",
    "instance",
    "requested_by",
    "assignee",
    "standard",
    "non_standard_reasons",
    "external_id",
    "created_at",
    "sla",
    "events",
    "runs",
}
EVENT_FIELDS = {"at", "by", "action", "from_state", "to_state", "comment"}


@pytest.mark.parametrize("kind", KINDS)
def test_filing_each_kind_answers_201_with_the_request(users, kind):
    slug = target_for(kind)
    response = api(users["ce"]).post("/api/v1/requests/", payload(kind, slug), format="json")

    assert response.status_code == 201, response.data
    body = response.json()
    assert REQUEST_FIELDS <= set(body)
    assert body["kind"] == kind
    assert body["state"] == "pending_approval"
    assert body["customer"] == "Acme Corp"
    assert body["instance"] == slug
    assert body["requested_by"] == "ce"
    assert body["assignee"] is None
    assert body["standard"] is True
    assert body["non_standard_reasons"] == []
    assert body["external_id"] is None
    assert body["created_at"]
    assert set(body["sla"]) == {"response", "resolution"}
    assert body["runs"] == []
    [submit] = body["events"]
    assert set(submit) == EVENT_FIELDS
    assert submit["action"] == "submit" and submit["by"] == "ce"
    assert submit["to_state"] == "pending_approval"
    stored = Request.objects.get(pk=body["id"])
    assert (stored.kind, stored.instance_slug, stored.requested_by) == (kind, slug, users["ce"])
    if kind != "create":
        assert stored.instance == Instance.objects.get(slug=slug)
    # A manager decides access requests; the rest they only read.
    decides = ["approve", "reject"] if kind == "access" else []
    assert api(users["manager"]).get(f"/api/v1/requests/{body['id']}/").json() == body | {
        "allowed_actions": decides
    }


def test_sales_files_too_and_the_create_fields_are_kept(users):
    body = payload(
        "create",
        "globex",
        access="ip_allowlist",
        allowed_ip_ranges=["10.0.0.0/8", "192.168.1.0/24"],
        machine_type="n1-standard-16",
        users=800,
        repositories=4000,
        target_version="5.3.1",
    )
    response = api(users["sales"]).post("/api/v1/requests/", body, format="json")

    assert response.status_code == 201, response.data
    data = response.json()
    assert data["requested_by"] == "sales"
    assert data["access"] == "ip_allowlist"
    assert data["allowed_ip_ranges"] == ["10.0.0.0/8", "192.168.1.0/24"]
    assert (data["machine_type"], data["users"], data["repositories"]) == (
        "n1-standard-16",
        800,
        4000,
    )
    assert data["target_version"] == "5.3.1"


def test_the_longest_slug_the_prefix_allows_is_accepted(users):
    slug = "a" * 27  # "mi-" + 27 = 30 characters, GCP's limit
    response = api(users["ce"]).post("/api/v1/requests/", payload("create", slug), format="json")
    assert response.status_code == 201, response.data


def bad_filing(user, body):
    response = api(user).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400, response.data
    return response.json()


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize(
    "slug",
    [
        "Acme",  # uppercase
        "a" * 28,  # "mi-" + 28 characters is 31, over GCP's 30
        "acme-",  # trailing hyphen
        "-acme",
        "ac_me",
        "ab",  # "mi-ab" is shorter than GCP's 6
        "",
    ],
)
def test_bad_slugs_are_field_errors(users, slug):
    before = Request.objects.count()
    errors = bad_filing(users["ce"], payload("create", slug))
    assert errors["instance"]
    assert Request.objects.count() == before


def test_create_for_the_slug_of_a_live_instance_is_refused(users):
    make_instance("initech")
    errors = bad_filing(users["ce"], payload("create", "initech"))
    assert "already exists" in errors["instance"][0]


def test_create_may_reuse_the_slug_of_a_torn_down_instance(users):
    make_instance("initech", status="torn_down")
    response = api(users["ce"]).post("/api/v1/requests/", payload("create", "initech"))
    assert response.status_code == 201, response.data


def test_a_second_open_create_for_the_same_slug_is_refused(users):
    file_request(users["ce"], "create", "hooli")
    errors = bad_filing(users["sales"], payload("create", "hooli"))
    assert errors["instance"]
    assert Request.objects.filter(instance_slug="hooli").count() == 1


def test_create_is_possible_again_once_the_first_is_rejected(users):
    first = file_request(users["ce"], "create", "hooli")
    workflow.perform(users["lead"], first.pk, "reject", comment="Not a fit.")
    response = api(users["sales"]).post("/api/v1/requests/", payload("create", "hooli"))
    assert response.status_code == 201, response.data


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize("kind", ["rename", "", None, "CREATE"])
def test_unknown_kind_is_a_field_error(users, kind):
    body = payload("create", "umbrella") | {"kind": kind}
    errors = bad_filing(users["ce"], body)
    assert errors["kind"]


def test_a_kind_that_is_not_a_string_is_a_field_error_not_a_500(users):
    body = payload("create", "umbrella") | {"kind": ["create"]}
    errors = bad_filing(users["ce"], body)
    assert errors["kind"]


def test_a_body_that_is_not_an_object_is_a_400(users):
    response = api(users["ce"]).post("/api/v1/requests/", ["create"], format="json")
    assert response.status_code == 400


def test_suspend_of_a_suspended_instance_is_refused(users):
    make_instance("vandelay", status="suspended")
    errors = bad_filing(users["ce"], payload("suspend", "vandelay"))
    assert "suspended" in errors["instance"][0]


def test_resume_of_an_active_instance_is_refused(users):
    make_instance("vandelay", status="active")
    errors = bad_filing(users["ce"], payload("resume", "vandelay"))
    assert "active" in errors["instance"][0]


@pytest.mark.parametrize("kind", ["suspend", "resume", "teardown", "upgrade", "feature"])
def test_kinds_other_than_create_need_an_existing_instance(users, kind):
    errors = bad_filing(users["ce"], payload(kind, "nosuchthing"))
    assert "no instance" in errors["instance"][0]


def test_a_torn_down_instance_cannot_be_suspended(users):
    make_instance("gone", status="torn_down")
    errors = bad_filing(users["ce"], payload("suspend", "gone"))
    assert errors["instance"]


@pytest.mark.parametrize("confirm", ["wrong", "", "vandelay2"])
def test_teardown_needs_the_slug_typed_again(users, confirm):
    make_instance("vandelay")
    errors = bad_filing(users["ce"], payload("teardown", "vandelay", confirm=confirm))
    assert errors["confirm"]


def test_teardown_without_confirm_is_refused(users):
    make_instance("vandelay")
    body = payload("teardown", "vandelay")
    del body["confirm"]
    errors = bad_filing(users["ce"], body)
    assert errors["confirm"]


@pytest.mark.parametrize("version", ["5.2.0", "5.2", "v5.2.0", "5.1.9", "4.0.0", "not-a-version"])
def test_upgrade_must_name_a_newer_version(users, version):
    make_instance("stark", version="5.2.0")
    errors = bad_filing(users["ce"], payload("upgrade", "stark", target_version=version))
    assert errors["target_version"]


def test_upgrade_release_date_cannot_be_in_the_future(users):
    make_instance("stark", version="5.2.0")
    body = payload("upgrade", "stark", release_published_at=future().isoformat())
    errors = bad_filing(users["ce"], body)
    assert errors["release_published_at"]


def test_upgrade_release_date_defaults_to_filing_time(users):
    make_instance("stark", version="5.2.0")
    published = (timezone.now() - timedelta(days=2)).replace(microsecond=0)
    given = api(users["ce"]).post(
        "/api/v1/requests/",
        payload("upgrade", "stark", release_published_at=published.isoformat()),
        format="json",
    )
    assert given.status_code == 201, given.data
    stored = Request.objects.get(pk=given.json()["id"])
    assert stored.release_published_at == published
    assert stored.target_version == "6.0.0"


def test_enable_executors_when_already_enabled_is_refused(users):
    make_instance("wayne", executors_enabled=True)
    errors = bad_filing(users["ce"], payload("enable_executors", "wayne"))
    assert "already enabled" in errors["instance"][0]


def test_ip_allowlist_needs_ranges(users):
    body = payload("create", "cyberdyne", access="ip_allowlist", allowed_ip_ranges=[])
    errors = bad_filing(users["ce"], body)
    assert errors["allowed_ip_ranges"]


@pytest.mark.parametrize(
    "ranges", [["10.0.0.1/24"], ["not-a-cidr"], ["10.0.0.0/33"], ["10.0.0.0/8", "300.1.1.0/24"]]
)
def test_bad_cidr_ranges_are_field_errors(users, ranges):
    body = payload("create", "cyberdyne", access="ip_allowlist", allowed_ip_ranges=ranges)
    errors = bad_filing(users["ce"], body)
    assert errors["allowed_ip_ranges"]


def test_unknown_machine_type_is_a_field_error(users):
    errors = bad_filing(users["ce"], payload("create", "cyberdyne", machine_type="n2-mega-512"))
    assert errors["machine_type"]


@pytest.mark.parametrize("field,value", [("users", 0), ("users", "many"), ("repositories", -1)])
def test_bad_sizes_are_field_errors(users, field, value):
    errors = bad_filing(users["ce"], payload("create", "cyberdyne", **{field: value}))
    assert errors[field]


def test_unknown_non_standard_reason_is_a_field_error(users):
    body = payload("create", "cyberdyne", non_standard_reasons=["because"])
    errors = bad_filing(users["ce"], body)
    assert errors["non_standard_reasons"]


def test_bad_zone_is_a_field_error(users):
    errors = bad_filing(users["ce"], payload("create", "cyberdyne", zone="moon-base"))
    assert errors["zone"]


def test_feature_request_needs_a_justification(users):
    make_instance("wonka")
    errors = bad_filing(users["ce"], payload("feature", "wonka", justification=""))
    assert errors["justification"]


def test_a_second_open_suspend_for_the_same_instance_is_refused(users):
    make_instance("tyrell")
    first = api(users["ce"]).post("/api/v1/requests/", payload("suspend", "tyrell"))
    assert first.status_code == 201
    errors = bad_filing(users["sales"], payload("suspend", "tyrell"))
    assert f"#{first.json()['id']}" in errors["instance"][0]


def test_any_open_provisioning_request_blocks_another_but_features_do_not(users):
    make_instance("tyrell")
    file_request(users["ce"], "upgrade", "tyrell")
    assert bad_filing(users["ce"], payload("suspend", "tyrell"))["instance"]
    feature = api(users["ce"]).post("/api/v1/requests/", payload("feature", "tyrell"))
    assert feature.status_code == 201


# -- standard or not ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes", [{"users": 3001}, {"repositories": 25001}, {"users": 5000, "repositories": 30000}]
)
def test_beyond_standard_scale_needs_tech_review(users, sizes):
    body = payload("create", "massive", **sizes)
    response = api(users["ce"]).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 201, response.data
    data = response.json()
    assert data["standard"] is False
    assert "scale" in data["non_standard_reasons"]
    assert data["machine_type"] == "n1-standard-96"

    approved = post_action(users["lead"], data["id"], "approve")
    assert approved.status_code == 200
    assert approved.json()["state"] == "tech_review"
    queued = post_action(users["reviewer"], data["id"], "tech_approve")
    assert queued.status_code == 200
    assert queued.json()["state"] == "queued"


def test_the_scale_limits_themselves_are_standard(users):
    body = payload("create", "bigbutok", users=3000, repositories=25000)
    data = api(users["ce"]).post("/api/v1/requests/", body, format="json").json()
    assert data["standard"] is True and data["non_standard_reasons"] == []
    approved = post_action(users["lead"], data["id"], "approve")
    assert approved.json()["state"] == "queued"


def test_given_reasons_make_a_request_non_standard(users):
    body = payload("create", "special", non_standard_reasons=["security", "migration"])
    data = api(users["ce"]).post("/api/v1/requests/", body, format="json").json()
    assert data["standard"] is False
    assert sorted(data["non_standard_reasons"]) == ["migration", "security"]
    assert post_action(users["lead"], data["id"], "approve").json()["state"] == "tech_review"


def test_a_standard_request_is_queued_on_approval(users):
    data = api(users["ce"]).post("/api/v1/requests/", payload("create", "plain")).json()
    assert data["standard"] is True
    response = post_action(users["lead"], data["id"], "approve", comment="fine")
    assert response.status_code == 200
    assert response.json()["state"] == "queued"


# -- listing and filters ------------------------------------------------------------------------


def ids(response):
    assert response.status_code == 200, response.data
    return {item["id"] for item in response.json()["results"]}


def test_list_is_paginated_and_filters(users):
    make_instance("alpha")
    create = file_request(users["ce"], "create", "beta")
    suspend = file_request(users["ce"], "suspend", "alpha")
    feature = file_request(users["sales"], "feature", "alpha")
    workflow.perform(users["lead"], suspend.pk, "approve")
    slug = target_for("create")
    form = FORMS["create"](data=payload("create", slug))
    assert form.is_valid()
    imported = workflow.file_request(
        users["ce"], "create", form.cleaned_data, external_id="JIRA-1234"
    )
    client = api(users["manager"])

    everything = client.get("/api/v1/requests/")
    assert set(everything.json()) == {"count", "next", "previous", "results"}
    assert everything.json()["count"] == 4
    assert ids(everything) == {create.pk, suspend.pk, feature.pk, imported.pk}
    assert ids(client.get("/api/v1/requests/?state=queued")) == {suspend.pk}
    assert ids(client.get("/api/v1/requests/?state=pending_approval")) == {
        create.pk,
        feature.pk,
        imported.pk,
    }
    assert ids(client.get("/api/v1/requests/?kind=feature")) == {feature.pk}
    assert ids(client.get("/api/v1/requests/?instance=alpha")) == {suspend.pk, feature.pk}
    assert ids(client.get("/api/v1/requests/?instance=alpha&kind=suspend")) == {suspend.pk}
    assert ids(client.get("/api/v1/requests/?external_id=JIRA-1234")) == {imported.pk}
    assert ids(client.get("/api/v1/requests/?external_id=JIRA-9")) == set()
    assert client.get("/api/v1/requests/?external_id=JIRA-1234").json()["results"][0][
        "external_id"
    ] == ("JIRA-1234")


@pytest.mark.parametrize("query", ["state=open", "kind=rename", "breached=maybe"])
def test_bad_filters_are_400(users, query):
    response = api(users["ce"]).get(f"/api/v1/requests/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_list_pages_link_to_each_other(users):
    rows = [
        Request(
            kind="feature",
            customer="Bulk",
            instance_slug="bulk",
            requested_by=users["ce"],
            created_at=timezone.now() - timedelta(minutes=n),
        )
        for n in range(55)
    ]
    Request.objects.bulk_create(rows)
    client = api(users["ce"])

    first = client.get("/api/v1/requests/").json()
    assert first["count"] == 55
    assert first["previous"] is None and first["next"]
    second = client.get(first["next"]).json()
    assert second["next"] is None and second["previous"]
    assert len(first["results"]) + len(second["results"]) == 55
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    # Newest first.
    created = [r["created_at"] for r in first["results"]]
    assert created == sorted(created, reverse=True)


def test_list_query_count_does_not_grow_with_rows(users, django_assert_max_num_queries):
    for _ in range(3):
        request_in_state(users, State.IN_PROGRESS, kind="feature")
    client = api(users["ce"])
    with django_assert_max_num_queries(12) as few:
        client.get("/api/v1/requests/")
    for _ in range(5):
        request_in_state(users, State.IN_PROGRESS, kind="feature")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/api/v1/requests/")


@pytest.mark.clock_once("two ways of writing the same JSON: the date moves both alike")
def test_the_list_says_of_each_request_what_its_detail_says(users):
    """The list draws its page from rows (usernames, events and runs loaded once for the page,
    instants written with one time zone lookup); each entry must be the detail's JSON but for
    `allowed_actions`, null in lists. Every kind, events without a person, runs, the granter."""
    from provisioning.models import Run, RunState

    when = datetime(2026, 3, 3, 10, 0, tzinfo=timezone.get_current_timezone())
    made = [request_in_state(users, State.IN_PROGRESS, kind=kind) for kind in KINDS]
    made.append(request_in_state(users, State.DONE, kind="access"))
    made.append(request_in_state(users, State.TECH_REVIEW, kind="feature"))
    Event.objects.create(request=made[0], at=when, by=None, action="comment", comment="system")
    Event.objects.create(request=made[1], at=when.replace(microsecond=120), by=users["lead"])
    Run.objects.create(
        instance=make_instance(),
        request_id=made[0].pk,
        kind="plan",
        state=RunState.ERRORED,
        created_by=users["devops"],
        created_at=when,
    )
    client = api(users["manager"])
    listed = {entry["id"]: entry for entry in client.get("/api/v1/requests/").json()["results"]}
    assert set(listed) == {r.pk for r in made}
    for request in made:
        detail = client.get(f"/api/v1/requests/{request.pk}/").json()
        assert detail.pop("allowed_actions") is not None
        entry = listed[request.pk]
        assert entry.pop("allowed_actions") is None
        for timer in ("response", "resolution"):  # live seconds move between the two calls
            for one in (entry, detail):
                if one["sla"][timer]:
                    one["sla"][timer].pop("elapsed_seconds")
                    one["sla"][timer].pop("remaining_seconds")
        assert entry == detail, request.kind
    # The planned representation against DRF's own loop over the fields, request by request.
    from rest_framework import serializers

    from requests_app.serializers import RequestSerializer

    def steady(data):
        for timer in data["sla"].values():
            if timer:  # live seconds move between the two calls
                timer.pop("elapsed_seconds")
                timer.pop("remaining_seconds")
        return data

    for request in Request.objects.filter(pk__in=[r.pk for r in made]):
        planned = RequestSerializer(request)
        drf = serializers.ModelSerializer.to_representation(planned, request)
        assert steady(dict(planned.data)) == steady(dict(drf))
    assert listed[made[0].pk]["runs"][0]["state"] == "errored"
    system = [e for e in listed[made[0].pk]["events"] if e["comment"] == "system"]
    assert [e["by"] for e in system] == [None]
    granted = listed[made[-2].pk]
    assert granted["granted_by"] == "devops" and granted["requested_by"] == "ce"


def test_detail_query_count_does_not_grow_with_events_or_runs(users, django_assert_max_num_queries):
    """The API loads the request and its events once, and neither it nor the page asks for
    each run's author one run at a time."""
    from provisioning.models import Run, RunState

    request = request_in_state(users, State.IN_PROGRESS)
    instance = make_instance()

    def add(count):
        for _ in range(count):
            Run.objects.create(
                instance=instance,
                request_id=request.pk,
                kind="plan",
                state=RunState.ERRORED,
                created_by=users["devops"],
                created_at=timezone.now(),
            )
            Event.objects.create(request=request, at=timezone.now(), by=users["ce"], action="x")

    add(1)
    client = api(users["ce"])
    client.force_login(users["ce"])
    counted = {}
    for url in (f"/api/v1/requests/{request.pk}/", f"/requests/{request.pk}/"):
        with django_assert_max_num_queries(40) as few:
            assert client.get(url).status_code == 200
        counted[url] = len(few.captured_queries)
    add(6)
    for url, count in counted.items():
        with django_assert_max_num_queries(count):
            assert client.get(url).status_code == 200


def test_unknown_request_is_404(users):
    assert api(users["ce"]).get("/api/v1/requests/999999/").status_code == 404
    assert post_action(users["lead"], 999999, "approve").status_code == 404
    response = api(users["ce"]).post("/api/v1/requests/999999/comments/", {"body": "hi"})
    assert response.status_code == 404


def test_unknown_action_is_refused(users):
    request = file_request(users["ce"])
    response = post_action(users["lead"], request.pk, "self_destruct")
    assert response.status_code in (400, 404)
    request.refresh_from_db()
    assert request.state == "pending_approval"


# -- auth and schema ----------------------------------------------------------------------------


def test_token_auth_works(users):
    token = Token.objects.create(user=users["lead"])
    request = file_request(users["ce"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert client.get("/api/v1/requests/").status_code == 200
    response = client.post(
        f"/api/v1/requests/{request.pk}/actions/approve/", {"comment": "ok"}, format="json"
    )
    assert response.status_code == 200, response.data
    assert response.json()["events"][-1]["by"] == "lead"

    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert client.get("/api/v1/requests/").status_code == 401


def test_drf_create_token_command_makes_a_working_token(users):
    call_command("drf_create_token", "devops")
    token = Token.objects.get(user=users["devops"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/instances/").status_code == 200


def test_session_auth_works(users):
    client = APIClient()
    assert client.login(username="sales", password=PASSWORD)
    response = client.post("/api/v1/requests/", payload("create", "sessionco"), format="json")
    assert response.status_code == 201, response.data
    assert response.json()["requested_by"] == "sales"


def test_schema_is_an_openapi_3_document(users):
    response = api(users["ce"]).get("/api/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert str(document["openapi"]).startswith("3.")
    paths = document["paths"]
    for path in [
        "/api/v1/requests/",
        "/api/v1/requests/{id}/",
        "/api/v1/requests/{id}/actions/{action_name}/",
        "/api/v1/requests/{id}/comments/",
        "/api/v1/instances/",
        "/api/v1/instances/{slug}/",
    ]:
        assert path in paths, sorted(paths)
    assert "post" in paths["/api/v1/requests/"]
    filters = {p["name"] for p in paths["/api/v1/requests/"]["get"]["parameters"]}
    assert {"state", "kind", "instance", "external_id", "page"} <= filters
    as_json = api(users["ce"]).get("/api/schema/?format=json")
    assert as_json.status_code == 200
    assert as_json.json()["openapi"] == document["openapi"]


# -- instances ----------------------------------------------------------------------------------

INSTANCE_FIELDS = {
    "slug",
    "customer",
    "status",
    "gcp_project",
    "zone",
    "machine_type",
    "version",
    "access",
    "allowed_ip_ranges",
    "executors_enabled",
    "url",
}


def test_instances_list_and_detail(users):
    make_instance(
        "acme",
        machine_type="n1-standard-32",
        access="ip_allowlist",
        allowed_ip_ranges=["10.1.0.0/16"],
        executors_enabled=True,
    )
    make_instance("zeta", status="suspended")
    client = api(users["manager"])

    listing = client.get("/api/v1/instances/")
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [i["slug"] for i in body["results"]] == ["acme", "zeta"]
    assert INSTANCE_FIELDS <= set(body["results"][0])

    detail = client.get("/api/v1/instances/acme/")
    assert detail.status_code == 200
    acme = detail.json()
    assert INSTANCE_FIELDS <= set(acme)
    assert acme["slug"] == "acme" and acme["customer"] == "Acme Corp"
    assert acme["status"] == "active" and acme["gcp_project"] == "mi-acme"
    assert acme["zone"] == "us-central1-f" and acme["machine_type"] == "n1-standard-32"
    assert acme["version"] == "5.2.0" and acme["access"] == "ip_allowlist"
    assert acme["allowed_ip_ranges"] == ["10.1.0.0/16"] and acme["executors_enabled"] is True
    assert acme["url"] == "https://acme.managed.example.com"
    assert client.get("/api/v1/instances/zeta/").json()["status"] == "suspended"
    assert client.get("/api/v1/instances/nope/").status_code == 404


def test_instance_detail_prefers_the_live_instance_of_a_reused_slug(users):
    make_instance("reused", status="torn_down", version="4.0.0")
    make_instance("reused", status="active", version="6.0.0")
    detail = api(users["ce"]).get("/api/v1/instances/reused/").json()
    assert (detail["status"], detail["version"]) == ("active", "6.0.0")


# -- comments and history -----------------------------------------------------------------------


def test_comment_adds_a_comment_event(users):
    request = request_in_state(users, State.QUEUED)
    response = api(users["devops"]).post(
        f"/api/v1/requests/{request.pk}/comments/", {"body": "Looking at it."}, format="json"
    )
    assert response.status_code == 201, response.data
    last = response.json()["events"][-1]
    assert last["action"] == "comment" and last["by"] == "devops"
    assert last["comment"] == "Looking at it."
    assert last["from_state"] == last["to_state"] == "queued"
    assert response.json()["state"] == "queued"
    assert request.comments.get().body == "Looking at it."


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize("body", [{"body": ""}, {"body": "   "}, {}, {"body": 5}])
def test_empty_comment_is_a_400(users, body):
    request = file_request(users["ce"])
    response = api(users["ce"]).post(
        f"/api/v1/requests/{request.pk}/comments/", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["body"]
    assert not Event.objects.filter(request=request, action="comment").exists()


def test_history_records_every_step_in_order(users):
    request = file_request(users["ce"], "feature", reasons=["other"])
    steps = [
        ("lead", "approve", "pending_approval", "tech_review"),
        ("reviewer", "tech_approve", "tech_review", "queued"),
        ("devops", "pick_up", "queued", "in_progress"),
        ("devops", "wait_on_customer", "in_progress", "waiting_on_customer"),
        ("devops", "resume_work", "waiting_on_customer", "in_progress"),
        ("devops", "set_target", "in_progress", "in_progress"),
        ("devops", "complete", "in_progress", "done"),
    ]
    for who, action, _, _ in steps:
        body = {"comment": f"{who} does {action}"}
        if action == "set_target":
            body["due_at"] = future().isoformat()
        response = post_action(users[who], request.pk, action, **body)
        assert response.status_code == 200, (action, response.data)
    api(users["sales"]).post(f"/api/v1/requests/{request.pk}/comments/", {"body": "Thanks!"})

    events = api(users["manager"]).get(f"/api/v1/requests/{request.pk}/").json()["events"]
    assert all(set(event) == EVENT_FIELDS for event in events)
    assert [e["action"] for e in events] == (
        ["submit"] + [action for _, action, _, _ in steps] + ["comment"]
    )
    for event, (who, action, old, new) in zip(events[1:], steps, strict=False):
        assert (event["by"], event["from_state"], event["to_state"]) == (who, old, new)
        assert event["comment"] == f"{who} does {action}"
    assert events[-1]["by"] == "sales" and events[-1]["comment"] == "Thanks!"
    times = [e["at"] for e in events]
    # ISO 8601 with an offset (SLA_TIMEZONE's), in the order they happened.
    assert all(re.search(r"(Z|[+-]\d\d:\d\d)$", t) for t in times)
    parsed = [datetime.fromisoformat(t) for t in times]
    assert parsed == sorted(parsed)


def test_pick_up_assigns_the_devops_engineer(users):
    request = request_in_state(users, State.QUEUED)
    data = post_action(users["devops2"], request.pk, "pick_up").json()
    assert data["assignee"] == "devops2" and data["state"] == "in_progress"


# -- set_target ---------------------------------------------------------------------------------


def test_set_target_stores_the_due_date(users):
    request = request_in_state(users, State.QUEUED, kind="feature")
    due = future(days=20).replace(microsecond=0)
    response = post_action(users["devops"], request.pk, "set_target", due_at=due.isoformat())
    assert response.status_code == 200, response.data
    request.refresh_from_db()
    assert request.target_due_at == due
    assert request.state == "queued"


@pytest.mark.parametrize("due", [None, "2001-01-01T00:00:00Z", "next tuesday"])
def test_set_target_needs_a_future_date(users, due):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    body = {} if due is None else {"due_at": due}
    response = post_action(users["devops"], request.pk, "set_target", **body)
    assert response.status_code == 400
    assert response.json()["due_at"]
    request.refresh_from_db()
    assert request.target_due_at is None
    assert not request.events.filter(action="set_target").exists()


def test_set_target_does_not_apply_to_other_kinds(users):
    request = request_in_state(users, State.IN_PROGRESS, kind="create")
    response = post_action(users["devops"], request.pk, "set_target", due_at=future().isoformat())
    assert response.status_code == 409


# -- what finishing a request does --------------------------------------------------------------


def complete(users, request):
    """Finish a request: by hand for a feature, through an applied run for provisioning kinds."""
    if request.kind in PROVISIONING_KINDS:
        apply_run_by_hand(users["devops"], request.pk, confirmer=users["devops2"])
        response = api(users["devops"]).get(f"/api/v1/requests/{request.pk}/")
    else:
        response = post_action(users["devops"], request.pk, "complete", comment="Done.")
    assert response.status_code == 200, response.data
    assert response.json()["state"] == "done"
    return response


def test_completing_a_create_makes_the_instance_active(users):
    body = payload("create", "newco", machine_type="n1-standard-16", users=900)
    created = api(users["ce"]).post("/api/v1/requests/", body, format="json").json()
    request = Request.objects.get(pk=created["id"])
    assert not Instance.objects.filter(slug="newco").exists()
    post_action(users["lead"], request.pk, "approve")
    post_action(users["devops"], request.pk, "pick_up")
    complete(users, request)

    instance = Instance.objects.get(slug="newco")
    assert instance.status == "active"
    assert instance.gcp_project == "mi-newco"
    assert instance.customer == "Acme Corp"
    assert instance.machine_type == "n1-standard-16"
    assert instance.version == "6.0.0"  # INSTANCE_DEFAULT_VERSION when none is asked for
    request.refresh_from_db()
    assert request.instance == instance
    shown = api(users["ce"]).get("/api/v1/instances/newco/").json()
    assert shown["status"] == "active" and shown["gcp_project"] == "mi-newco"
    assert shown["url"] == "https://newco.managed.example.com"


@pytest.mark.parametrize(
    "kind,field,value",
    [
        ("suspend", "status", "suspended"),
        ("resume", "status", "active"),
        ("teardown", "status", "torn_down"),
        ("upgrade", "version", "6.0.0"),
        ("enable_executors", "executors_enabled", True),
    ],
)
def test_completing_changes_the_instance(users, kind, field, value):
    request = request_in_state(users, State.IN_PROGRESS, kind=kind)
    complete(users, request)
    request.instance.refresh_from_db()
    assert getattr(request.instance, field) == value


def test_completing_a_feature_leaves_the_instance_alone(users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    before = Instance.objects.values().get(pk=request.instance_id)
    complete(users, request)
    after = Instance.objects.values().get(pk=request.instance_id)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_after_teardown_the_slug_can_be_created_again(users):
    old = make_instance("phoenix")
    request_in_state(users, State.DONE, kind="teardown", slug="phoenix")
    again = request_in_state(users, State.DONE, kind="create", slug="phoenix")
    old.refresh_from_db()
    assert old.status == "torn_down"
    assert again.instance != old and again.instance.status == "active"
    assert api(users["ce"]).get("/api/v1/instances/phoenix/").json()["status"] == "active"


def test_a_new_user_without_a_role_reads_nothing(db):
    nobody = make_user("nobody")
    assert api(nobody).get("/api/v1/requests/").status_code == 403
    assert api(nobody).get("/api/v1/instances/").status_code == 403


# -- the schema tells the truth (docs/api.md) ---------------------------------------------------


def schema_document(user):
    return api(user).get("/api/schema/?format=json").json()


def is_error_body(body):
    """The one error body: a string `detail`, every other key a list of strings."""
    return isinstance(body.get("detail"), str) and all(
        isinstance(value, list) and all(isinstance(item, str) for item in value)
        for key, value in body.items()
        if key != "detail"
    )


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize(
    "method,path",
    [
        ("post", "/api/v1/requests/null,null/comments/"),
        ("get", "/api/v1/requests/null,null/"),
        ("post", "/api/v1/requests/null,null/actions/approve/"),
        ("post", "/api/v1/requests/-1/actions/approve/"),
        ("get", "/api/v1/requests/1.5/"),
        ("get", "/api/v1/requests/99999999999999999999999999/"),
        ("post", "/api/v1/requests/99999999999999999999999999/comments/"),
        ("post", "/api/v1/requests/1/actions/Approve/"),
        ("get", "/api/v1/no/such/thing/"),
    ],
)
def test_ids_that_are_no_request_are_a_404_in_the_error_body(users, method, path):
    client = api(users["ce"])
    client.raise_request_exception = True
    response = getattr(client, method)(path, {"body": "hi"}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert is_error_body(response.json())


def test_a_post_to_a_wrong_path_with_a_session_is_a_404_not_a_csrf_failure(users):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="ce", password=PASSWORD)
    response = client.post("/api/v1/requests/null,null/comments/", {"body": "hi"}, format="json")
    assert response.status_code == 404 and is_error_body(response.json())


def test_every_error_answers_the_one_error_body(users):
    request = file_request(users["ce"])
    nobody = make_user("nobody")
    answers = [
        APIClient().get("/api/v1/requests/"),  # 401
        api(nobody).get("/api/v1/requests/"),  # 403: no role
        api(users["devops"]).post("/api/v1/requests/", payload("create", "x1co")),  # 403
        api(users["ce"]).get("/api/v1/requests/?state=open"),  # 400 filter
        api(users["ce"]).get("/api/v1/requests/?page=99"),  # 404 page
        api(users["ce"]).post("/api/v1/requests/", {"kind": "create"}, format="json"),  # 400
        post_action(users["devops"], request.pk, "pick_up"),  # 409
        post_action(users["lead"], request.pk, "self_destruct"),  # 400
        api(users["manager"]).post(f"/api/v1/requests/{request.pk}/comments/", {}),  # 403
        api(users["ce"]).get("/api/v1/sla/summary/?since=yesterday"),  # 400
        api(users["ce"]).delete(f"/api/v1/requests/{request.pk}/"),  # 405
    ]
    assert [a.status_code for a in answers] == [
        401,
        403,
        403,
        400,
        404,
        400,
        409,
        400,
        403,
        400,
        405,
    ]
    for answer in answers:
        assert is_error_body(answer.json()), answer.json()


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize(
    "field,value",
    [
        ("customer", 5),  # DRF and Django would both have made "5" of it
        ("customer", "   "),  # create has no instance to take the customer from
        ("users", "200"),
        ("users", True),
        ("users", 200.0),
        ("users", 10**30),
        ("repositories", -1),
        ("allowed_ip_ranges", "10.0.0.0/8"),
        ("allowed_ip_ranges", ["10.0.0.0/8", 5]),
        ("non_standard_reasons", "scale"),
        ("zone", " us-central1-f"),
        ("machine_type", 8),
        ("target_version", "5.3 "),
        ("instance", "ac"),  # the project id would be shorter than 6
        ("justification", "null\x00character"),
        ("customer", "lone \ud800 surrogate"),
    ],
)
def test_json_bodies_are_held_to_the_schema(users, field, value):
    body = json.dumps(payload("create", "strictco") | {field: value})  # escapes surrogates
    response = api(users["ce"]).post("/api/v1/requests/", body, content_type="application/json")
    assert response.status_code == 400, response.data
    errors = response.json()
    assert errors[field]
    assert is_error_body(errors)
    assert not Request.objects.exists()


@pytest.mark.parametrize(
    "when",
    [
        "2026-01-01",
        "2026-01-01 10:00:00+00:00",
        "2026-01-01T10:00:00+22:00",  # PostgreSQL refuses offsets beyond 15:59
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        20260101,
    ],
)
def test_date_times_need_a_time_and_a_sane_range(users, when):
    make_instance("stark", version="5.2.0")
    body = payload("upgrade", "stark", release_published_at=when)
    assert bad_filing(users["ce"], body)["release_published_at"]
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    response = post_action(users["devops"], request.pk, "set_target", due_at=when)
    assert response.status_code == 400 and response.json()["due_at"]


def test_nullable_fields_may_be_sent_as_null(users):
    body = payload("create", "nullco") | {
        "justification": None,
        "non_standard_reasons": None,
        "machine_type": None,
        "zone": None,
        "access": None,
        "allowed_ip_ranges": None,
        "users": None,
        "repositories": None,
        "target_version": None,
    }
    response = api(users["ce"]).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 201, response.data
    assert response.json()["machine_type"] == "n1-standard-8"


def test_a_body_that_is_not_an_object_is_refused_by_actions_and_comments_too(users):
    request = request_in_state(users, State.QUEUED)
    client = api(users["devops"])
    for path in ("actions/pick_up/", "comments/"):
        response = client.post(f"/api/v1/requests/{request.pk}/{path}", ["x"], format="json")
        assert response.status_code == 400 and response.json()["non_field_errors"]
    request.refresh_from_db()
    assert request.state == State.QUEUED


def test_a_comment_is_at_most_10000_characters_and_managers_hear_403_first(users):
    request = file_request(users["ce"])
    url = f"/api/v1/requests/{request.pk}/comments/"
    too_long = api(users["ce"]).post(url, {"body": "x" * 10_001}, format="json")
    assert too_long.status_code == 400 and too_long.json()["body"]
    assert api(users["manager"]).post(url, {}, format="json").status_code == 403
    assert api(users["ce"]).post(url, {"body": "x" * 10_000}, format="json").status_code == 201


def test_filters_belong_to_the_list_and_an_empty_page_is_the_first(users):
    request = file_request(users["ce"])
    client = api(users["ce"])
    assert client.get(f"/api/v1/requests/{request.pk}/?state=done").status_code == 200
    assert client.get("/api/v1/requests/?state=").status_code == 400
    assert ids(client.get("/api/v1/requests/?page=")) == {request.pk}
    assert ids(client.get("/api/v1/requests/?instance=")) == set()
    assert client.get("/api/v1/requests/?page=0").status_code == 404
    assert client.get("/api/v1/requests/?instance=a%00b").status_code == 400
    assert client.get("/api/v1/instances/a%00b/").status_code == 404


def test_every_operation_documents_its_errors_in_the_error_body(users):
    document = schema_document(users["ce"])
    expected = {
        ("/api/v1/requests/", "get"): {"400", "401", "403", "404"},
        ("/api/v1/requests/", "post"): {"400", "401", "403", "409"},
        ("/api/v1/requests/{id}/", "get"): {"401", "403", "404"},
        ("/api/v1/requests/{id}/actions/{action_name}/", "post"): {
            "400",
            "401",
            "403",
            "404",
            "409",
        },
        ("/api/v1/requests/{id}/comments/", "post"): {"400", "401", "403", "404"},
        ("/api/v1/instances/", "get"): {"400", "401", "403", "404"},
        ("/api/v1/instances/{slug}/", "get"): {"401", "403", "404"},
        ("/api/v1/access/", "get"): {"400", "401", "403", "404"},
        ("/api/v1/sla/summary/", "get"): {"400", "401", "403"},
    }
    for (path, method), codes in expected.items():
        responses = document["paths"][path][method]["responses"]
        assert {code for code in responses if code >= "400"} == codes, (path, method)
        for code in codes:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"]
    assert error["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_path_ids_are_integers_and_actions_an_enum(users):
    paths = schema_document(users["ce"])["paths"]
    for path in ("/api/v1/requests/{id}/", "/api/v1/requests/{id}/comments/"):
        operation = next(iter(paths[path].values()))
        (id_param,) = [p for p in operation["parameters"] if p["name"] == "id"]
        assert id_param["schema"]["type"] == "integer"
    action = paths["/api/v1/requests/{id}/actions/{action_name}/"]["post"]
    (name,) = [p for p in action["parameters"] if p["name"] == "action_name"]
    assert set(name["schema"]["enum"]) == set(workflow.RULES)


def test_the_schema_declares_what_may_be_null(users):
    schemas = schema_document(users["ce"])["components"]["schemas"]
    request = schemas["Request"]["properties"]
    for field in ["assignee", "due_at", "release_published_at", "users", "repositories"]:
        assert request[field].get("nullable") is True, field
    assert request["external_id"].get("nullable") is True
    assert request["allowed_actions"].get("nullable") is True
    assert schemas["Event"]["properties"]["by"].get("nullable") is True
    timer = schemas["Timer"]["properties"]
    for field in ["started_at", "due_at", "stopped_at", "remaining_seconds"]:
        assert timer[field].get("nullable") is True, field
    assert schemas["Sla"]["properties"]["response"].get("nullable") is True
    run = schemas["Run"]["properties"]
    for field in ["started_at", "finished_at", "heartbeat_at"]:
        assert run[field].get("nullable") is True, field


def test_the_filing_body_is_one_object_per_kind_made_from_the_forms(users):
    schemas = schema_document(users["ce"])["components"]["schemas"]
    new = schemas["NewRequest"]
    assert new["discriminator"]["propertyName"] == "kind"
    assert set(new["discriminator"]["mapping"]) == set(KINDS)
    create = schemas["NewCreateRequest"]
    props = create["properties"]
    assert set(create["required"]) == {"kind", "customer", "instance"}
    form = FORMS["create"].base_fields
    assert props["users"]["minimum"] == form["users"].min_value == 1
    assert props["users"]["maximum"] == form["users"].max_value
    assert props["repositories"]["minimum"] == 0
    assert props["customer"]["maxLength"] == form["customer"].max_length
    assert (props["instance"]["minLength"], props["instance"]["maxLength"]) == (3, 27)
    assert "pattern" in props["instance"] and "pattern" in props["zone"]
    machine_types = schemas[props["machine_type"]["oneOf"][0]["$ref"].split("/")[-1]]["enum"]
    assert machine_types == ["n1-standard-8", "n1-standard-16", "n1-standard-32", "n1-standard-96"]
    reasons = schemas[props["non_standard_reasons"]["items"]["$ref"].split("/")[-1]]["enum"]
    assert reasons == ["migration", "scale", "security", "other"]
    assert props["allowed_ip_ranges"]["items"]["pattern"]
    upgrade = schemas["NewUpgradeRequest"]
    assert "target_version" in upgrade["required"]
    # An ISO date-time; without an offset it is read in SLA_TIMEZONE (so not RFC 3339's format).
    pattern = upgrade["properties"]["release_published_at"]["pattern"]
    assert re.fullmatch(pattern, "2026-01-01T10:00:00-08:00")
    assert re.fullmatch(pattern, "2026-01-01T10:00:00")
    assert not re.fullmatch(pattern, "2026-01-01")
    assert "confirm" in schemas["NewTeardownRequest"]["required"]
    assert "justification" in schemas["NewFeatureRequest"]["required"]
    assert schemas["NewComment"]["properties"]["body"]["maxLength"] == 10_000
    # JSON only: the form encodings are not part of the contract.
    body = document_body = schema_document(users["ce"])["paths"]["/api/v1/requests/"]["post"]
    assert set(document_body["requestBody"]["content"]) == {"application/json"}, body


def test_the_shared_patterns_mean_what_the_server_checks():
    import ipaddress
    import re

    from requests_app import serializers

    blank = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    assert {c for c in blank if re.fullmatch(f"[{serializers.WHITESPACE}]", c)} == blank
    for good in ["10.0.0.0/8", "192.168.1.0/24", "10.1.2.3", "::/0", "2001:db8::/32", "fe80::1"]:
        assert re.fullmatch(serializers.CIDR, good), good
        ipaddress.ip_network(good, strict=False)
    for bad in ["10.0.0.0/33", "300.1.1.0/24", "010.0.0.0/8", "nope", "1:2:3:4:5:6:7:8:9", ""]:
        assert not re.fullmatch(serializers.CIDR, bad), bad
    assert re.fullmatch(serializers.NON_BLANK, " a ") and not re.fullmatch(
        serializers.NON_BLANK, "\u3000"
    )


def test_a_date_time_without_an_offset_is_read_in_the_sla_time_zone(users):
    """A feature target typed in Los Angeles lands on Los Angeles' clock, not 8 h off."""
    from zoneinfo import ZoneInfo

    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    when = (timezone.now() + timedelta(days=10)).astimezone(ZoneInfo("America/Los_Angeles"))
    typed = when.replace(tzinfo=None, microsecond=0).isoformat()  # as a person types it
    response = post_action(users["devops"], request.pk, "set_target", due_at=typed)
    assert response.status_code == 200, response.json()
    request.refresh_from_db()
    assert request.target_due_at == when.replace(microsecond=0)
    assert response.json()["due_at"].endswith(when.strftime("%z")[:3] + ":00")


@pytest.mark.clock_once("formats given instants; reads no clock")
@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [ZoneInfo("UTC"), ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Kolkata")]
        ),
    )
)
def test_instants_are_written_as_drf_writes_them(value):
    from rest_framework import serializers

    from requests_app.serializers import iso_instants

    field = serializers.DateTimeField()
    assert iso_instants(field)(value) == field.to_representation(value)
    assert iso_instants(field)(None) is None
    utc = serializers.DateTimeField(default_timezone=ZoneInfo("UTC"))
    assert iso_instants(utc)(value) == utc.to_representation(value)


@pytest.mark.clock_once("formats given instants; reads no clock")
@pytest.mark.parametrize(
    "zone",
    [
        "UTC",
        "America/Los_Angeles",
        "Asia/Kolkata",  # +05:30
        "America/St_Johns",  # -03:30, and DST
        "Australia/Lord_Howe",  # DST of half an hour
        "Europe/Dublin",  # a negative DST in the tz database
        "Africa/Monrovia",  # -00:44:30 until 1972: an offset with seconds
    ],
)
def test_postgresql_writes_instants_as_drf_writes_them(db, zone):
    """The list API's events come with their instants written by PostgreSQL: byte for byte
    what DRF writes, around every change of offset and with microseconds or none."""
    import random

    from django.db import connection
    from rest_framework import serializers

    from requests_app.serializers import iso_instant_sql

    utc = ZoneInfo("UTC")
    instants = [datetime(1960, 1, 1, tzinfo=utc), datetime(1850, 6, 1, 12, 30, tzinfo=utc)]
    # Every 3.5 hours of 2026: across each change of offset, on either side of it.
    start = datetime(2026, 1, 1, tzinfo=utc)
    instants += [start + timedelta(minutes=30 * n) for n in range(0, 365 * 48, 7)]
    pick = random.Random(zone)
    for _ in range(2000):
        when = datetime(1970, 1, 1, tzinfo=utc) + timedelta(
            seconds=pick.randrange(0, 130 * 365 * 86400)
        )
        instants.append(
            when.replace(microsecond=pick.choice([0, 1, 999999, pick.randrange(10**6)]))
        )
    sql, params = iso_instant_sql("t.at", zone)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sql} FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS t(at, n) ORDER BY n",
            [*params, instants],
        )
        written = [text for (text,) in cursor.fetchall()]
    field = serializers.DateTimeField(default_timezone=ZoneInfo(zone))
    assert written == [field.to_representation(when) for when in instants]
