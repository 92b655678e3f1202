"""Who may do what to an incident, in which state, through the API (docs/incidents.md): a role
that may not answers 403 (checked first), a state that does not allow the action 409, else 200.
The table is written out here from the documented rules, not read from incidents.transitions:
a wrong rule there must make these tests fail."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings
from rest_framework.test import APIClient

from incidents.models import IncidentEvent, IncidentState
from incidents.transitions import RULES
from tests.factories import make_user
from tests.incidents.factories import incident_in_state, make_instance

pytestmark = pytest.mark.clock

STATES = [s.value for s in IncidentState]
UNRESOLVED = {IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.MITIGATED}
# action -> (who may take it, states it applies in, next state; None: stays)
CONTRACT = {
    "ack": ({"devops"}, {IncidentState.OPEN}, IncidentState.ACKNOWLEDGED),
    "mitigate": ({"devops"}, {IncidentState.ACKNOWLEDGED}, IncidentState.MITIGATED),
    "resolve": (
        {"devops"},
        {IncidentState.ACKNOWLEDGED, IncidentState.MITIGATED},
        IncidentState.RESOLVED,
    ),
    "commander": ({"devops"}, UNRESOLVED, None),
}
WHO = ["ce", "sales", "lead", "reviewer", "devops", "manager", "admin"]
SUPERUSER = "admin"


@pytest.fixture(scope="module")
def shared(django_db_setup, django_db_blocker):
    """People and one sev2 incident per state, made once in a transaction rolled back at the
    end of the module; each test runs in a savepoint of it."""
    md5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=md5):
        with transaction.atomic():
            people = {
                "ce": make_user("ce", "CE"),
                "sales": make_user("sales", "Sales"),
                "lead": make_user("lead", "CE Leadership"),
                "reviewer": make_user("reviewer", "Tech Review"),
                "devops": make_user("devops", "DevOps"),
                "manager": make_user("manager", "Managers"),
                "admin": make_user("admin", superuser=True),
            }
            acme = make_instance("acme")
            made = {state: incident_in_state(people, state, acme).pk for state in STATES}
            yield {name: user.pk for name, user in people.items()}, made
            transaction.set_rollback(True)


@pytest.fixture
def users(shared, db):
    User = get_user_model()
    return {name: User.objects.get(pk=pk) for name, pk in shared[0].items()}


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def expected(who, action, state):
    allowed, states, _ = CONTRACT[action]
    if who != SUPERUSER and who not in allowed:
        return 403
    return 200 if state in states else 409


def test_the_table_here_is_the_whole_table():
    assert set(CONTRACT) == set(RULES)


# A role refused an action (403 in every state) is answered before any clock: the date rerun
# runs the cells that move an incident and its timers.
REFUSED = pytest.mark.clock_once("a refused role is answered before any clock")


def rule_cells():
    for who in WHO:
        for action in CONTRACT:
            refused = all(expected(who, action, state) == 403 for state in STATES)
            marks = [REFUSED] if refused else []
            yield pytest.param(who, action, marks=marks, id=f"{who}-{action}")


@pytest.mark.parametrize(("who", "action"), rule_cells())
def test_action_rules(shared, users, who, action):
    for state in STATES:
        pk = shared[1][state]
        before = IncidentEvent.objects.filter(incident_id=pk).count()
        body = {"comment": f"{who} tries {action}"}
        if action == "resolve":
            body["postmortem_url"] = "https://example.com/postmortems/2"
        if action == "commander":
            body["commander"] = "devops"
        with transaction.atomic():
            response = api(users[who]).post(
                f"/api/v1/incidents/{pk}/actions/{action}/", body, format="json"
            )
            assert response.status_code == expected(who, action, state), (
                who,
                action,
                state,
                response.json(),
            )
            after = IncidentEvent.objects.filter(incident_id=pk).count()
            if response.status_code == 200:
                next_state = CONTRACT[action][2] or state
                assert response.json()["state"] == next_state
                assert after == before + 1
                event = IncidentEvent.objects.filter(incident_id=pk).latest("id")
                assert (event.action, event.from_state, event.to_state) == (
                    action,
                    state,
                    next_state,
                )
                assert event.by == users[who] and event.body == f"{who} tries {action}"
            else:
                assert set(response.json()) == {"detail"}
                assert after == before
            transaction.set_rollback(True)


@pytest.mark.parametrize("who", WHO)
def test_updates_ce_and_devops_in_any_state_managers_and_others_read_only(shared, users, who):
    may = who in ("ce", "devops", SUPERUSER)
    for state in STATES:
        pk = shared[1][state]
        with transaction.atomic():
            response = api(users[who]).post(
                f"/api/v1/incidents/{pk}/updates/", {"body": "Still looking."}, format="json"
            )
            assert response.status_code == (201 if may else 403), (who, state)
            if may:
                # (Found by its action, not its place: in the date rerun the module's incidents
                # may have been made at a later destination than this test's clock.)
                [update] = [e for e in response.json()["events"] if e["action"] == "update"]
                assert update == {
                    "at": update["at"],
                    "by": who,
                    "action": "update",
                    "from_state": state,
                    "to_state": state,
                    "body": "Still looking.",
                }
            transaction.set_rollback(True)


@pytest.mark.parametrize("who", WHO)
def test_opening_ce_and_devops(shared, users, who):
    body = {"title": "Logins fail", "severity": "sev1", "instances": ["acme"], "description": ""}
    with transaction.atomic():
        response = api(users[who]).post("/api/v1/incidents/", body, format="json")
        assert response.status_code == (201 if who in ("ce", "devops", SUPERUSER) else 403)
        transaction.set_rollback(True)


@pytest.mark.clock_once("reading is allowed on every date alike")
@pytest.mark.parametrize("who", WHO)
def test_everyone_reads(shared, users, who):
    client = api(users[who])
    assert client.get("/api/v1/incidents/").json()["count"] == len(STATES)
    assert client.get(f"/api/v1/incidents/{shared[1]['open']}/").status_code == 200


def test_a_user_without_a_role_reads_nothing(shared, db):
    nobody = make_user("nobody")
    assert api(nobody).get("/api/v1/incidents/").status_code == 403
    assert APIClient().get("/api/v1/incidents/").status_code in (401, 403)


def test_an_inactive_devops_member_may_not_act(shared, users):
    users["devops"].is_active = False
    users["devops"].save()
    response = api(users["devops"]).post(
        f"/api/v1/incidents/{shared[1]['open']}/actions/ack/", {}, format="json"
    )
    assert response.status_code in (401, 403)
