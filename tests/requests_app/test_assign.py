"""`assign` (docs/api.md, docs/workflow.md): any DevOps member gives a request in the DevOps
states to an active DevOps member, or to nobody, without moving it; an event says who assigned
whom. The race with cancel is in test_concurrency.py."""

import pytest

from requests_app import workflow
from requests_app.models import Event, State
from tests.factories import make_user
from tests.requests_app.test_api import post_action, request_in_state

pytestmark = pytest.mark.clock


def assign(user, request, assignee, **body):
    return post_action(user, request.pk, "assign", assignee=assignee, **body)


def test_devops_assigns_reassigns_and_unassigns_without_moving_the_request(users):
    request = request_in_state(users, State.QUEUED)
    version = request.version

    response = assign(users["devops"], request, "devops2", comment="Yours: you know Acme.")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["assignee"]) == ("queued", "devops2")
    event = body["events"][-1]
    assert event["action"] == "assign" and event["by"] == "devops"
    assert event["from_state"] == event["to_state"] == "queued"
    assert event["comment"] == "Yours: you know Acme."

    # Reassign: devops2 gives it back to devops.
    response = assign(users["devops2"], request, "devops")
    assert (response.status_code, response.json()["assignee"]) == (200, "devops")

    # Unassign: null, "" and a body without `assignee` all mean nobody.
    for nobody in (None, ""):
        assign(users["devops"], request, "devops2")
        response = assign(users["devops"], request, nobody)
        assert (response.status_code, response.json()["assignee"]) == (200, None)
    assign(users["devops"], request, "devops2")
    response = post_action(users["devops"], request.pk, "assign")
    assert (response.status_code, response.json()["assignee"]) == (200, None)

    request.refresh_from_db()
    assert request.state == State.QUEUED and request.assignee is None
    # Each assign is one step of the version (the compare-and-set of perform) and one event
    # that records whom it gave the request to, and whom it took it from.
    events = list(Event.objects.filter(request=request, action="assign"))
    assert request.version == version + len(events) == version + 8
    assert [(e.by.username, e.data["previous"], e.data["assignee"]) for e in events[:3]] == [
        ("devops", None, "devops2"),
        ("devops2", "devops2", "devops"),
        ("devops", "devops", "devops2"),
    ]
    assert events[3].data == {"previous": "devops2", "assignee": None}


@pytest.mark.parametrize("state", [State.IN_PROGRESS, State.WAITING_ON_CUSTOMER])
def test_a_request_being_worked_on_changes_hands(users, state):
    request = request_in_state(users, state, kind="feature")
    assert request.assignee == users["devops"]
    response = assign(users["devops2"], request, "devops2")
    assert response.status_code == 200, response.json()
    request.refresh_from_db()
    assert (request.state, request.assignee) == (state, users["devops2"])


@pytest.mark.parametrize(
    "who,why",
    [
        ("ce", "is not in DevOps"),
        ("lead", "is not in DevOps"),
        ("nosuchperson", "There is no user 'nosuchperson'."),
        ("gone", "is not active any more"),
    ],
)
def test_only_an_active_devops_member_can_hold_a_request(users, who, why):
    make_user("gone", "DevOps").__class__.objects.filter(username="gone").update(is_active=False)
    request = request_in_state(users, State.IN_PROGRESS)
    events = request.events.count()

    response = assign(users["devops"], request, who)

    assert response.status_code == 400, response.json()
    body = response.json()
    assert set(body) == {"detail", "assignee"}
    assert why in body["assignee"][0]
    request.refresh_from_db()
    assert request.assignee == users["devops"] and request.events.count() == events


def test_a_superuser_outside_devops_is_not_a_member_to_assign(users):
    request = request_in_state(users, State.QUEUED)
    response = assign(users["devops"], request, "admin")
    assert response.status_code == 400 and "assignee" in response.json()
    # ...but may assign, as a superuser passes every role check.
    assert assign(users["admin"], request, "devops").status_code == 200


@pytest.mark.parametrize("who", ["ce", "lead", "reviewer", "manager"])
def test_other_roles_may_not_assign(users, who):
    request = request_in_state(users, State.QUEUED)
    response = assign(users[who], request, "devops")
    assert response.status_code == 403, response.json()
    request.refresh_from_db()
    assert request.assignee is None
    assert not request.events.filter(action="assign").exists()


def test_the_role_comes_before_the_assignee(users):
    # A CE naming nobody valid still hears 403: who asks is checked first.
    request = request_in_state(users, State.QUEUED)
    assert assign(users["ce"], request, "nosuchperson").status_code == 403


@pytest.mark.parametrize(
    "state", [State.PENDING_APPROVAL, State.TECH_REVIEW, State.DONE, State.CANCELLED]
)
def test_assign_outside_the_devops_states_is_a_conflict(users, state):
    request = request_in_state(users, state, kind="feature")
    before = request.assignee_id
    response = assign(users["devops"], request, "devops2")
    assert response.status_code == 409, response.json()
    request.refresh_from_db()
    assert request.assignee_id == before and request.state == state


def test_done_request_with_an_unknown_assignee_is_still_a_conflict(users):
    # The state (409) is judged before the body's assignee (400), as for every action.
    request = request_in_state(users, State.DONE, kind="feature")
    assert assign(users["devops"], request, "nosuchperson").status_code == 409


def test_allowed_actions_offer_assign_to_devops_only(users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    assert "assign" in workflow.allowed_actions(users["devops2"], request)
    assert "assign" not in workflow.allowed_actions(users["ce"], request)


def test_assignee_must_be_a_string_in_json(users):
    request = request_in_state(users, State.QUEUED)
    response = assign(users["devops"], request, 42)
    assert response.status_code == 400 and "assignee" in response.json()


def test_the_schema_describes_the_assignee(users):
    from tests.requests_app.test_api import api

    schema = api(users["devops"]).get("/api/schema/?format=json").json()
    body = schema["components"]["schemas"]["ActionBody"]["properties"]["assignee"]
    assert body["type"] == "string" and body["nullable"] is True
    assert body["maxLength"] == 150
