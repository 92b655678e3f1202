"""Access requests (docs/workflow.md, "Access"): any role files one, a manager (never CE
Leadership, never the requester) approves it, DevOps grants it until an expiry, DevOps hear a
week before the end and on the day, and the Access page and `GET /api/v1/access/` list who holds
what. The expectations are written out here from the contract, not read from the rules table."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from requests_app import access, workflow
from requests_app.importer import import_records
from requests_app.models import Approval, Notification, Request, State
from tests.factories import make_user
from tests.requests_app.test_api import api, make_instance, post_action, request_in_state

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")  # the default SLA_TIMEZONE
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=LA)  # a working day, far from any holiday


def body(**fields):
    data = {
        "kind": "access",
        "person": "jo@example.com",
        "scope": "vault",
        "category": "customer",
        "justification": "Debugging the customer's slow searches.",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


def file_access(user, **fields):
    response = api(user).post("/api/v1/requests/", body(**fields), format="json")
    assert response.status_code == 201, response.json()
    return Request.objects.get(pk=response.json()["id"])


def grant(users, request, **kwargs):
    """Approve (a manager), pick up and complete (DevOps)."""
    workflow.perform(users["manager"], request.pk, "approve", notify=False, **kwargs)
    workflow.perform(users["devops"], request.pk, "pick_up", notify=False, **kwargs)
    return workflow.perform(users["devops"], request.pk, "complete", notify=False, **kwargs)


# -- who may do what -------------------------------------------------------------------------------

EVERY_ROLE = ["ce", "sales", "lead", "reviewer", "devops", "manager", "admin"]


@pytest.mark.parametrize("who", EVERY_ROLE)
def test_any_role_may_ask_for_access(users, who):
    make_instance("acme")
    request = file_access(users[who], instance="acme")
    assert (request.kind, request.state, request.requested_by) == (
        "access",
        State.PENDING_APPROVAL,
        users[who],
    )
    assert (request.customer, request.category, request.standard) == ("Acme Corp", "customer", True)


def test_someone_without_a_role_may_not(db):
    nobody = make_user("nobody")
    assert api(nobody).post("/api/v1/requests/", body(), format="json").status_code == 403


def test_but_only_ce_and_sales_file_the_other_kinds(users):
    for who in ["lead", "reviewer", "devops", "manager"]:
        response = api(users[who]).post(
            "/api/v1/requests/", {"kind": "feature", "instance": "x"}, format="json"
        )
        assert response.status_code == 403, who


# state -> who (besides the requester ce) may approve / reject there; the others get 403 for
# their role and managers 409 for the state.
DECIDERS = {"manager", "admin"}


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_managers_decide_access_requests_in_every_state_and_nobody_else(users, action):
    # Every state an access request can be in (it never goes to tech review).
    states = [state for state in State.values if state != State.TECH_REVIEW]
    requests = {state: request_in_state(users, state, kind="access") for state in states}
    for state, request in requests.items():
        for who in [*EVERY_ROLE, "devops2"]:
            with transaction.atomic():
                response = post_action(users[who], request.pk, action, comment="Not needed.")
                transaction.set_rollback(True)
            if who not in DECIDERS:
                want = 403  # CE Leadership decides the other kinds, not this one
            elif state != State.PENDING_APPROVAL:
                want = 409
            else:
                want = 200
            assert response.status_code == want, (state, who, action, response.json())


def test_an_approved_access_request_is_queued_never_sent_to_tech_review(users):
    request = file_access(users["ce"], non_standard_reasons=["security"])
    response = post_action(users["manager"], request.pk, "approve")
    assert response.json()["state"] == "queued"
    approval = Approval.objects.get(request=request)
    assert (approval.stage, approval.approver) == ("managers", users["manager"])


def test_the_requester_never_decides_not_even_a_manager_or_a_superuser(users):
    for who in ["manager", "admin"]:
        request = file_access(users[who])
        for action in ["approve", "reject"]:
            response = post_action(users[who], request.pk, action, comment="Mine.")
            assert response.status_code == 403, (who, action)
            assert "someone else" in response.json()["detail"]


def test_a_rejection_needs_a_reason(users):
    request = file_access(users["ce"])
    assert post_action(users["manager"], request.pk, "reject").status_code == 400
    response = post_action(users["manager"], request.pk, "reject", comment="Use the read role.")
    assert response.json()["state"] == "rejected"


def test_the_approvals_inbox_of_a_manager_holds_access_requests_and_a_leads_does_not(client, users):
    make_instance("acme")
    asked = file_access(users["ce"], instance="acme")
    suspend = request_in_state(users, State.PENDING_APPROVAL, kind="suspend")
    client.force_login(users["manager"])
    page = client.get(reverse("approvals")).content.decode()
    assert f'data-request-id="{asked.pk}"' in page
    assert f'data-request-id="{suspend.pk}"' not in page
    client.force_login(users["lead"])
    page = client.get(reverse("approvals")).content.decode()
    assert f'data-request-id="{asked.pk}"' not in page
    assert f'data-request-id="{suspend.pk}"' in page
    # The manager's request page offers the decision; the lead's does not.
    client.force_login(users["manager"])
    detail = client.get(reverse("request_detail", args=[asked.pk])).content.decode()
    assert 'data-action="approve"' in detail and 'data-action="reject"' in detail
    client.force_login(users["lead"])
    detail = client.get(reverse("request_detail", args=[asked.pk])).content.decode()
    assert 'data-action="approve"' not in detail


def test_a_new_access_request_is_announced_to_managers_not_ce_leadership(users):
    response = api(users["ce"]).post("/api/v1/requests/", body(), format="json")
    [mail] = Notification.objects.filter(request_id=response.json()["id"], channel="email")
    assert mail.topic == "new_request"
    assert mail.recipients == ["manager@example.com"]
    assert "jo@example.com" in mail.subject and "all customer instances" in mail.subject


# -- what the API takes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"scope": "ssh"}, "scope"),
        ({"scope": None}, "scope"),
        ({"person": None}, "person"),
        ({"person": ""}, "person"),
        ({"person": "two words"}, "person"),
        ({"person": "jo@"}, "person"),
        ({"category": None}, "category"),
        ({"category": "partner"}, "category"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "next week"}, "expires_at"),
        ({"instance": "nowhere"}, "instance"),
        ({"customer": "Acme Corp"}, "customer"),  # no instance: no customer
        ({"justification": None}, "justification"),
    ],
)
def test_bad_access_requests_are_400_naming_the_field(users, fields, field):
    response = api(users["ce"]).post("/api/v1/requests/", body(**fields), format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert not Request.objects.exists()


def test_the_category_must_be_the_instances(users):
    make_instance("acme")
    make_instance("dogfood", category="internal", customer="Dogfood")
    response = api(users["ce"]).post(
        "/api/v1/requests/", body(instance="acme", category="internal"), format="json"
    )
    assert response.status_code == 400
    assert "customer instance" in response.json()["category"][0]
    request = file_access(users["ce"], instance="dogfood", category="internal")
    assert (request.category, request.customer) == ("internal", "Dogfood")


def test_without_an_instance_it_covers_the_category_and_has_no_customer(users):
    request = file_access(users["sales"], category="internal", person="devops2")
    assert (request.instance_slug, request.customer, request.instance) == ("", "", None)
    got = api(users["sales"]).get(f"/api/v1/requests/{request.pk}/").json()
    assert (got["instance"], got["customer"], got["category"]) == (None, None, "internal")
    assert (got["person"], got["scope"], got["expires_at"], got["granted_at"]) == (
        "devops2",
        "vault",
        None,
        None,
    )


def test_the_schema_tells_the_access_fields(users):
    document = api(users["ce"]).get("/api/schema/?format=json").json()
    schemas = document["components"]["schemas"]
    new = schemas["NewAccessRequest"]
    assert set(new["required"]) == {"kind", "person", "scope", "category", "justification"}
    props = new["properties"]
    assert props["instance"].get("nullable") is True and props["customer"].get("nullable")
    assert props["person"]["maxLength"] == 254 and props["person"]["pattern"]
    assert "non_standard_reasons" not in props
    scope = schemas[props["scope"]["allOf"][0]["$ref"].split("/")[-1]]
    assert scope["enum"] == ["gcp-managed", "vault"]
    request = schemas["Request"]["properties"]
    for name in ["customer", "instance", "expires_at", "granted_at", "granted_by"]:
        assert request[name].get("nullable") is True, name
    assert "category" in schemas["Instance"]["properties"]
    grants = document["paths"]["/api/v1/access/"]["get"]
    assert {p["name"] for p in grants["parameters"]} >= {"category", "scope", "expired"}


# -- granting --------------------------------------------------------------------------------------


def test_complete_grants_it_for_90_days_by_default(users):
    with time_machine.travel(MONDAY, tick=False):
        request = file_access(users["ce"], person="jo")
        grant(users, request)
    request.refresh_from_db()
    assert request.state == State.DONE
    assert (request.granted_at, request.granted_by) == (MONDAY, users["devops"])
    assert request.expires_at == MONDAY.astimezone(UTC) + timedelta(days=90)  # 90 x 24 h
    event = request.events.get(action="complete")
    assert event.comment == "granted vault to jo until 2026-05-31 11:00 PDT"
    got = api(users["ce"]).get(f"/api/v1/requests/{request.pk}/").json()
    assert got["granted_by"] == "devops" and got["expires_at"].startswith("2026-05-31T11:00")
    assert got["events"][-1]["comment"] == event.comment


def test_complete_keeps_the_expiry_asked_for(users, settings):
    settings.ACCESS_DEFAULT_DAYS = 30  # not used: the request names its end
    until = MONDAY + timedelta(days=14)
    with time_machine.travel(MONDAY, tick=False):
        request = file_access(users["ce"], expires_at=until.isoformat())
        grant(users, request)
    request.refresh_from_db()
    assert request.expires_at == until
    assert "until 2026-03-16 10:00 PDT" in request.events.get(action="complete").comment


def test_an_expiry_that_passed_before_the_grant_is_a_409(users):
    with time_machine.travel(MONDAY, tick=False):
        request = file_access(users["ce"], expires_at=(MONDAY + timedelta(days=2)).isoformat())
        workflow.perform(users["manager"], request.pk, "approve", notify=False)
        workflow.perform(users["devops"], request.pk, "pick_up", notify=False)
    with time_machine.travel(MONDAY + timedelta(days=3), tick=False):
        response = post_action(users["devops"], request.pk, "complete")
    assert response.status_code == 409
    assert "has passed" in response.json()["detail"]
    request.refresh_from_db()
    assert request.state == State.IN_PROGRESS and request.granted_at is None


def test_an_access_request_runs_the_create_clocks_and_no_provisioning(users):
    with time_machine.travel(MONDAY, tick=False):
        request = file_access(users["ce"])
        workflow.perform(users["manager"], request.pk, "approve", notify=False)
        got = api(users["ce"]).get(f"/api/v1/requests/{request.pk}/").json()
    response, resolution = got["sla"]["response"], got["sla"]["resolution"]
    assert response["due_at"].startswith("2026-03-03T10:00")  # 24 h, calendar time
    assert resolution["due_at"].startswith("2026-03-23T10:00")  # 15 working days
    workflow.perform(users["devops"], request.pk, "pick_up", notify=False)
    assert post_action(users["devops"], request.pk, "plan").status_code == 409


# -- reminders -------------------------------------------------------------------------------------


def test_devops_hear_a_week_before_and_on_the_day_once_each(users):
    ends = datetime(2026, 4, 15, 15, 30, tzinfo=LA)
    with time_machine.travel(MONDAY, tick=False):
        request = file_access(users["ce"], expires_at=ends.isoformat())
        grant(users, request)

    def remind(at):
        with time_machine.travel(at, tick=False):
            return access.remind()

    def heard():
        return sorted(
            Notification.objects.filter(request=request, topic__startswith="access_")
            .order_by("pk")
            .values_list("topic", "subject", "recipients")
        )

    assert remind(ends - timedelta(days=7, minutes=1)) == 0
    assert remind(ends - timedelta(days=7)) == 1
    assert remind(ends - timedelta(days=6)) == 0  # once
    [(topic, subject, recipients)] = heard()
    assert topic == "access_expires_in_a_week"
    assert subject == "Access ends in 7 days: vault for jo@example.com on all customer instances"
    assert recipients == ["devops2@example.com", "devops@example.com"]
    assert remind(datetime(2026, 4, 14, 23, 59, tzinfo=LA)) == 0  # the day before
    assert remind(datetime(2026, 4, 15, 0, 0, tzinfo=LA)) == 1  # on the day
    assert remind(datetime(2026, 4, 15, 15, 0, tzinfo=LA)) == 0  # once
    assert [t for t, _, _ in heard()] == ["access_expires_in_a_week", "access_expires_today"]
    assert heard()[1][1].startswith("Access ends today at 15:30 PDT: vault for jo@example.com")
    assert remind(ends + timedelta(minutes=1)) == 0  # ended: the Access page lists it
    assert len(heard()) == 2


# -- who holds what --------------------------------------------------------------------------------


def test_the_access_page_and_api_list_the_grants_in_force_and_those_ended(client, users):
    make_instance("acme")
    with time_machine.travel(MONDAY, tick=False):
        held = file_access(users["ce"], instance="acme", person="jo", scope="gcp-managed")
        grant(users, held)
        short = file_access(
            users["ce"], person="sam", expires_at=(MONDAY + timedelta(days=1)).isoformat()
        )
        grant(users, short)
        waiting = file_access(users["ce"], person="kim")
    with time_machine.travel(MONDAY + timedelta(days=2), tick=False):
        client.force_login(users["sales"])
        page = client.get(reverse("access_list")).content.decode()
        ended = client.get(reverse("access_list"), {"expired": "true"}).content.decode()
        listed = api(users["sales"]).get("/api/v1/access/").json()
        gone = api(users["sales"]).get("/api/v1/access/?expired=true").json()
    assert 'data-person="jo"' in page and 'data-person="sam"' not in page
    assert 'data-person="kim"' not in page  # not granted (yet)
    assert f'href="/requests/{held.pk}/"' in page and "Acme Corp" in page
    assert 'data-field="days-left" data-value="88"' in page
    assert 'data-person="sam"' in ended and 'data-person="jo"' not in ended
    [row] = listed["results"]
    assert row == {
        "request": held.pk,
        "person": "jo",
        "scope": "gcp-managed",
        "category": "customer",
        "instance": "acme",
        "customer": "Acme Corp",
        "requested_by": "ce",
        "granted_by": "devops",
        "granted_at": row["granted_at"],
        "expires_at": row["expires_at"],
        "days_left": 88,
    }
    assert [r["person"] for r in gone["results"]] == ["sam"]
    assert waiting.state == State.PENDING_APPROVAL


def test_the_access_list_filters_and_refuses_bad_filters(client, users):
    with time_machine.travel(MONDAY, tick=False):
        grant(users, file_access(users["ce"], person="jo", category="internal"))
        grant(users, file_access(users["ce"], person="sam", scope="gcp-managed"))
        reader = api(users["manager"])
        assert [
            r["person"] for r in reader.get("/api/v1/access/?category=INTERNAL").json()["results"]
        ] == ["jo"]
        assert [
            r["person"] for r in reader.get("/api/v1/access/?scope=GCP-Managed").json()["results"]
        ] == ["sam"]
        assert [r["person"] for r in reader.get("/api/v1/access/?person=J").json()["results"]] == [
            "jo"
        ]
        assert reader.get("/api/v1/access/?scope=ssh").status_code == 400
        client.force_login(users["manager"])
        page = client.get(reverse("access_list"), {"category": "internal"})
        assert b'data-person="jo"' in page.content and b'data-person="sam"' not in page.content
        assert client.get(reverse("access_list"), {"category": "x"}).status_code == 400


def test_the_request_page_shows_the_access(client, users):
    with time_machine.travel(MONDAY, tick=False):
        request = file_access(users["ce"], category="internal", person="jo")
        client.force_login(users["ce"])
        before = client.get(reverse("request_detail", args=[request.pk])).content.decode()
        grant(users, request)
        after = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "all internal instances" in before and "90 days after it is granted" in before
    assert "jo" in before and "Vault" in before
    assert "2026-05-31 11:00" in after and "granted vault to jo until" in after


def test_the_form_offers_the_instances_and_files_an_access(client, users):
    make_instance("acme")
    client.force_login(users["devops"])
    chooser = client.get(reverse("new_request_choose")).content.decode()
    assert 'data-kind="access"' in chooser and 'data-kind="create"' not in chooser
    form = client.get(reverse("new_request", args=["access"]), {"instance": "acme"})
    assert b'<option value="acme" selected>' in form.content
    response = client.post(
        reverse("new_request", args=["access"]),
        {
            "person": "jo",
            "scope": "vault",
            "category": "customer",
            "instance": "acme",
            "justification": "Incident follow-up.",
        },
    )
    assert response.status_code == 302, response.content.decode()
    request = Request.objects.get(kind="access")
    assert (request.requested_by, request.instance_slug) == (users["devops"], "acme")


# -- history ---------------------------------------------------------------------------------------


def test_the_importer_takes_access_records_and_categories(users):
    make_instance("acme")
    records = [
        {
            "external_id": "OLD-1",
            "kind": "access",
            "instance": None,
            "requested_by": "ce",
            "person": "jo@example.com",
            "scope": "vault",
            "category": "internal",
            "expires_at": "2024-06-01T00:00:00Z",  # long ended: history as it was
            "events": [
                {"at": "2024-03-01T09:00:00Z", "by": "ce", "action": "submit"},
                {"at": "2024-03-01T10:00:00Z", "by": "manager", "action": "approve"},
                {"at": "2024-03-01T11:00:00Z", "by": "devops", "action": "pick_up"},
                {"at": "2024-03-01T12:00:00Z", "by": "devops", "action": "complete"},
            ],
        },
        {
            "external_id": "OLD-2",
            "kind": "access",
            "instance": "acme",
            "requested_by": "ce",
            "person": "sam",
            "scope": "gcp-managed",
            "events": [
                {"at": "2024-03-02T09:00:00Z", "by": "ce", "action": "submit"},
                {"at": "2024-03-02T10:00:00Z", "by": "lead", "action": "approve"},
            ],
        },
        {
            "external_id": "OLD-3",
            "kind": "create",
            "instance": "dogfood",
            "customer": "Us",
            "category": "internal",
            "requested_by": "ce",
            "events": [
                {"at": "2024-03-03T09:00:00Z", "by": "ce", "action": "submit"},
                {"at": "2024-03-03T10:00:00Z", "by": "lead", "action": "approve"},
                {"at": "2024-03-03T11:00:00Z", "by": "devops", "action": "pick_up"},
                {"at": "2024-03-03T12:00:00Z", "by": "devops", "action": "complete"},
            ],
        },
    ]
    result = import_records(records)
    outcomes = {o.label: o for o in result.outcomes}
    assert outcomes["OLD-1"].status == "loaded" and outcomes["OLD-3"].status == "loaded"
    assert outcomes["OLD-2"].status == "rejected"  # CE Leadership does not decide access
    old = Request.objects.get(external_id="OLD-1")
    assert (old.state, old.category, old.customer, old.instance_slug) == (
        "done",
        "internal",
        "",
        "",
    )
    assert old.expires_at == datetime.fromisoformat("2024-06-01T00:00:00+00:00")
    assert old.granted_by == users["devops"]
    assert Request.objects.get(external_id="OLD-3").instance.category == "internal"


def test_every_role_finds_the_access_page_and_managers_their_inbox(client, users):
    for who in EVERY_ROLE:
        client.force_login(users[who])
        home = client.get("/").content.decode()
        assert 'href="/access/"' in home, who
        assert ('href="/approvals/"' in home) == (who in ("lead", "reviewer", "manager", "admin"))
        assert client.get(reverse("access_list")).status_code == 200


def test_the_instance_page_lists_who_holds_access_to_it_and_offers_to_ask(client, users):
    make_instance("acme")
    make_instance("tools", category="internal")
    with time_machine.travel(MONDAY, tick=False):
        grant(users, file_access(users["ce"], instance="acme", person="jo"))
        grant(users, file_access(users["ce"], person="sam"))  # every customer instance
        grant(users, file_access(users["ce"], person="kai", category="internal"))
        file_access(users["ce"], instance="acme", person="kim")  # asked, not granted
        ended = file_access(
            users["ce"], instance="acme", person="lee", expires_at=(MONDAY + timedelta(days=1))
        )
        grant(users, ended)
    with time_machine.travel(MONDAY + timedelta(days=2), tick=False):
        client.force_login(users["manager"])
        html = client.get(reverse("instance_detail", args=["acme"])).content.decode()
        other = client.get(reverse("instance_detail", args=["tools"])).content.decode()
    card = html.split('data-testid="instance-access"')[1].split("</section>")[0]
    assert "<td>jo</td>" in card and "<td>sam</td>" in card and "all customer instances" in card
    assert "<td>kai</td>" not in card and "<td>kim</td>" not in card and "<td>lee</td>" not in card
    assert 'href="/requests/new/access/?instance=acme"' in card  # Managers may ask too
    tools = other.split('data-testid="instance-access"')[1].split("</section>")[0]
    assert "<td>kai</td>" in tools and "<td>jo</td>" not in tools
