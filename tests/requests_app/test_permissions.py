"""Who may do what, through the API (docs/workflow.md).

The expectations are written out here from the contract's table, not read from
requests_app.transitions.RULES: a wrong rule there must make these tests fail."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import override_settings

from requests_app.models import Event, Request, State
from requests_app.transitions import RULES
from tests.factories import make_user
from tests.requests_app.test_api import (
    api,
    file_request,
    future,
    make_instance,
    payload,
    post_action,
    request_in_state,
)

pytestmark = pytest.mark.clock

MATRIX_KINDS = ("create", "feature")


@pytest.fixture(scope="module")
def shared(django_db_setup, django_db_blocker):
    """The people and one request per (kind, state), made once for this module in a transaction
    that is rolled back when the module is done; every test runs in a savepoint of it, so what a
    test does is undone before the next. (The matrix has 800 cells: building the request of each
    cell again made this module the slowest of the suite, and of its date rerun.)"""
    md5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=md5):
        with transaction.atomic():
            people = {
                "ce": make_user("ce", "CE"),
                "sales": make_user("sales", "Sales"),
                "lead": make_user("lead", "CE Leadership"),
                "reviewer": make_user("reviewer", "Tech Review"),
                "devops": make_user("devops", "DevOps"),
                "devops2": make_user("devops2", "DevOps"),
                "manager": make_user("manager", "Managers"),
                "admin": make_user("admin", superuser=True),
            }
            made = {
                (kind, state): request_in_state(people, state, kind=kind, requester=people["ce"]).pk
                for kind in MATRIX_KINDS
                for state in State.values
            }
            yield {name: user.pk for name, user in people.items()}, made
            transaction.set_rollback(True)


@pytest.fixture
def users(shared, db):
    """The module's people, fetched afresh for each test (no role cached from another)."""
    User = get_user_model()
    return {name: User.objects.get(pk=pk) for name, pk in shared[0].items()}


# -- the contract's table, written out ----------------------------------------------------------

REQUESTER = "the requester"
OPEN = {
    State.PENDING_APPROVAL,
    State.TECH_REVIEW,
    State.QUEUED,
    State.IN_PROGRESS,
    State.WAITING_ON_CUSTOMER,
}
# action -> (who may take it: usernames of the `users` fixture, states it applies in, next state)
# The next state None means "stays where it is"; approve's depends on the request (see below).
CONTRACT = {
    "approve": ({"lead"}, {State.PENDING_APPROVAL}, State.QUEUED),
    "reject": ({"lead"}, {State.PENDING_APPROVAL}, State.REJECTED),
    "tech_approve": ({"reviewer"}, {State.TECH_REVIEW}, State.QUEUED),
    "tech_reject": ({"reviewer"}, {State.TECH_REVIEW}, State.REJECTED),
    "pick_up": ({"devops"}, {State.QUEUED}, State.IN_PROGRESS),
    "wait_on_customer": ({"devops"}, {State.IN_PROGRESS}, State.WAITING_ON_CUSTOMER),
    "resume_work": ({"devops"}, {State.WAITING_ON_CUSTOMER}, State.IN_PROGRESS),
    "complete": ({"devops"}, {State.IN_PROGRESS}, State.DONE),
    # A target date is agreed once the request reached DevOps, and while it is still open.
    "set_target": (
        {"devops"},
        {State.QUEUED, State.IN_PROGRESS, State.WAITING_ON_CUSTOMER},
        None,
    ),
    # Who holds the request, without moving it (no assignee in the body: nobody).
    "assign": (
        {"devops"},
        {State.QUEUED, State.IN_PROGRESS, State.WAITING_ON_CUSTOMER},
        None,
    ),
    "cancel": ({"lead", REQUESTER}, OPEN, State.CANCELLED),
    # Provisioning runs (section 7): DevOps, on a request in progress. These requests have no
    # run yet, so only `plan` can succeed; confirm, discard and retry need a planned or errored
    # run (409 here; tests/provisioning covers them with runs).
    "plan": ({"devops"}, {State.IN_PROGRESS}, None),
    "confirm": ({"devops"}, set(), None),
    "discard": ({"devops"}, set(), None),
    "retry": ({"devops"}, set(), None),
}
# Actions that also write their run's own history events (run_queued, ...).
RUN_ACTIONS = {"plan"}
WHO = ["ce", "sales", "lead", "reviewer", "devops", "manager", "admin"]  # ce files the requests
SUPERUSER = "admin"


def expected_status(who, action, state, requester="ce"):
    if action not in CONTRACT:
        pytest.fail(f"{action!r} is in RULES but not in this test's copy of the contract table")
    allowed, states, _ = CONTRACT[action]
    role_ok = who == SUPERUSER or who in allowed or (REQUESTER in allowed and who == requester)
    if not role_ok:
        return 403
    return 200 if state in states else 409


def test_the_table_here_covers_every_action_of_the_contract():
    assert set(CONTRACT) <= set(RULES), "an action of the contract is missing from RULES"


# A refused cell is answered (403, 409) before the workflow computes any timer, so its outcome
# is the same on every date: the date rerun runs the cells that move a request and its clocks.
REFUSED = pytest.mark.clock_once("a refused cell of the matrix is answered before any clock")


def matrix_cells():
    for who in WHO:
        for action in RULES:
            for state in State.values:
                marks = [REFUSED] if expected_status(who, action, state) != 200 else []
                yield pytest.param(who, action, state, marks=marks, id=f"{who}-{action}-{state}")


@pytest.mark.parametrize(("who", "action", "state"), matrix_cells())
def test_permission_matrix(shared, users, who, action, state):
    # Marking a provisioning request done by hand needs Compute to show its outcome
    # (tests/requests_app/test_run_rules.py); the role and state rules are those of any kind.
    kind = "feature" if action in ("set_target", "complete") else "create"
    request = Request.objects.get(pk=shared[1][(kind, state)])
    events_before = request.events.count()
    body = {"comment": f"{who} tries {action}"}
    if action == "set_target":
        body["due_at"] = future().isoformat()

    response = post_action(users[who], request.pk, action, **body)

    expected = expected_status(who, action, state)
    assert response.status_code == expected, response.json()
    request.refresh_from_db()
    if expected != 200:
        assert response.json()["detail"]
        assert request.state == state
        assert request.events.count() == events_before
        return
    next_state = CONTRACT[action][2] or state
    assert response.json()["state"] == request.state == next_state
    last = request.events.filter(action=action).order_by("-at", "-id").first()
    extra = 1 if action in RUN_ACTIONS else 0  # the run's "run_queued" event
    assert request.events.count() == events_before + 1 + extra
    assert (last.action, last.by, last.from_state, last.to_state) == (
        action,
        users[who],
        state,
        next_state,
    )
    assert last.comment == f"{who} tries {action}"


# -- separation of duties -----------------------------------------------------------------------


def test_requester_in_ce_leadership_cannot_approve_or_reject_their_own_request(users):
    both = make_user("celead", "CE", "CE Leadership")
    request = file_request(both)

    assert post_action(both, request.pk, "approve").status_code == 403
    assert post_action(both, request.pk, "reject").status_code == 403
    request.refresh_from_db()
    assert request.state == State.PENDING_APPROVAL
    # Another lead may; and the requester-lead may still approve other people's requests.
    assert post_action(users["lead"], request.pk, "approve").status_code == 200
    other = file_request(users["ce"])
    assert post_action(both, other.pk, "approve").status_code == 200


def test_requester_in_tech_review_cannot_tech_approve_their_own_request(users):
    both = make_user("cereviewer", "Sales", "Tech Review")
    request = request_in_state(users, State.TECH_REVIEW, requester=both)

    assert post_action(both, request.pk, "tech_approve").status_code == 403
    assert post_action(both, request.pk, "tech_reject").status_code == 403
    assert post_action(users["reviewer"], request.pk, "tech_approve").status_code == 200


def test_superuser_never_approves_their_own_request(users):
    admin = users[SUPERUSER]
    response = api(admin).post("/api/v1/requests/", payload("create", "adminco"), format="json")
    assert response.status_code == 201, response.data
    request_id = response.json()["id"]

    assert post_action(admin, request_id, "approve").status_code == 403
    assert post_action(admin, request_id, "reject").status_code == 403
    assert Request.objects.get(pk=request_id).state == State.PENDING_APPROVAL


def test_superuser_never_tech_approves_their_own_request(users):
    request = request_in_state(users, State.TECH_REVIEW, requester=users[SUPERUSER])
    assert post_action(users[SUPERUSER], request.pk, "tech_approve").status_code == 403
    assert post_action(users[SUPERUSER], request.pk, "tech_reject").status_code == 403


def test_superuser_may_act_on_their_own_request_where_no_duty_is_separated(users):
    request = request_in_state(users, State.QUEUED, requester=users[SUPERUSER])
    assert post_action(users[SUPERUSER], request.pk, "pick_up").status_code == 200
    assert post_action(users[SUPERUSER], request.pk, "cancel").status_code == 200


def test_superuser_approves_other_peoples_requests(users):
    request = file_request(users["ce"], reasons=["security"])
    assert post_action(users[SUPERUSER], request.pk, "approve").status_code == 200
    assert post_action(users[SUPERUSER], request.pk, "tech_approve").status_code == 200


def test_only_the_requester_of_the_role_that_files_may_cancel(users):
    request = file_request(users["sales"])
    assert post_action(users["ce"], request.pk, "cancel").status_code == 403
    assert post_action(users["sales"], request.pk, "cancel").status_code == 200


@pytest.mark.parametrize("state", [State.QUEUED, State.IN_PROGRESS, State.WAITING_ON_CUSTOMER])
def test_the_requester_may_cancel_after_approval_too(users, state):
    request = request_in_state(users, state, requester=users["sales"])
    assert post_action(users["sales"], request.pk, "cancel").status_code == 200


def test_a_requester_who_left_their_role_may_still_cancel(users):
    request = file_request(users["ce"])
    users["ce"].groups.clear()
    assert post_action(users["ce"], request.pk, "cancel").status_code == 200


def test_role_is_checked_before_state(users):
    # A finished request and a role that may never approve: 403, not 409.
    request = request_in_state(users, State.DONE)
    assert post_action(users["devops"], request.pk, "approve").status_code == 403
    assert post_action(users["lead"], request.pk, "approve").status_code == 409


def test_an_inactive_user_is_refused(users):
    request = file_request(users["ce"])
    users["lead"].is_active = False
    users["lead"].save()
    assert post_action(users["lead"], request.pk, "approve").status_code in (401, 403)


# -- Managers are read-only ---------------------------------------------------------------------


def test_managers_read_everything(users):
    request = request_in_state(users, State.IN_PROGRESS)
    make_instance("readable")
    client = api(users["manager"])
    assert client.get("/api/v1/requests/").status_code == 200
    detail = client.get(f"/api/v1/requests/{request.pk}/")
    assert detail.status_code == 200
    assert detail.json()["allowed_actions"] == []
    assert client.get("/api/v1/instances/").status_code == 200
    assert client.get("/api/v1/instances/readable/").status_code == 200


@pytest.mark.parametrize("action", list(RULES))
def test_managers_get_403_on_every_action_in_every_open_state(users, action):
    for state in OPEN:
        kind = "feature" if action == "set_target" else "create"
        request = request_in_state(users, state, kind=kind)
        body = {"due_at": future().isoformat()} if action == "set_target" else {}
        assert post_action(users["manager"], request.pk, action, **body).status_code == 403


def test_managers_may_not_comment(users):
    request = file_request(users["ce"])
    response = api(users["manager"]).post(
        f"/api/v1/requests/{request.pk}/comments/", {"body": "Any news?"}, format="json"
    )
    assert response.status_code == 403
    assert not Event.objects.filter(request=request, action="comment").exists()


@pytest.mark.parametrize("who", ["ce", "sales", "lead", "reviewer", "devops", "admin"])
def test_every_other_role_may_comment(users, who):
    request = file_request(users["ce"])
    response = api(users[who]).post(
        f"/api/v1/requests/{request.pk}/comments/", {"body": f"from {who}"}, format="json"
    )
    assert response.status_code == 201, response.data
    assert response.json()["events"][-1]["by"] == who


# -- filing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who,status",
    [
        ("ce", 201),
        ("sales", 201),
        ("admin", 201),
        ("lead", 403),
        ("reviewer", 403),
        ("devops", 403),
        ("manager", 403),
    ],
)
def test_only_ce_and_sales_file_requests(users, who, status):
    response = api(users[who]).post(
        "/api/v1/requests/", payload("create", f"{who}corp"), format="json"
    )
    assert response.status_code == status, response.data
    assert Request.objects.filter(instance_slug=f"{who}corp").exists() == (status == 201)


def test_a_user_without_any_role_is_refused(db):
    nobody = make_user("nobody")
    response = api(nobody).post("/api/v1/requests/", payload("create", "nobodyco"), format="json")
    assert response.status_code == 403


def test_roles_are_the_groups_named_in_the_contract(users):
    expected = {"CE", "Sales", "CE Leadership", "Tech Review", "DevOps", "Managers"}
    assert expected <= set(Group.objects.values_list("name", flat=True))


# -- anonymous ----------------------------------------------------------------------------------


def test_anonymous_calls_get_401_or_403_not_a_redirect(users):
    request = file_request(users["ce"])
    make_instance("anon")
    client = api()
    calls = [
        ("get", "/api/v1/requests/", None),
        ("get", f"/api/v1/requests/{request.pk}/", None),
        ("post", "/api/v1/requests/", payload("create", "anonco")),
        ("post", f"/api/v1/requests/{request.pk}/actions/approve/", {}),
        ("post", f"/api/v1/requests/{request.pk}/actions/cancel/", {}),
        ("post", f"/api/v1/requests/{request.pk}/comments/", {"body": "hi"}),
        ("get", "/api/v1/instances/", None),
        ("get", "/api/v1/instances/anon/", None),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code in (401, 403), (method, url, response.status_code)
        assert "Location" not in response, (method, url)
        assert response["Content-Type"].startswith("application/json"), (method, url)
    request.refresh_from_db()
    assert request.state == State.PENDING_APPROVAL
    assert not Request.objects.filter(instance_slug="anonco").exists()
