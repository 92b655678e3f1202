"""Two people taking conflicting actions at once: exactly one wins, the others get 409, and the
history holds exactly one event for the change (docs/workflow.md).

Each thread has its own PostgreSQL connection, so these tests commit for real."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from requests_app.models import Approval, Event, Request, State
from tests.factories import make_user
from tests.requests_app.test_api import payload, request_in_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.clock]

ROUNDS = 5


@pytest.fixture
def more(users):
    """Second and third people in the roles that race each other."""
    return {
        "lead2": make_user("lead2", "CE Leadership"),
        "lead3": make_user("lead3", "CE Leadership"),
        "devops3": make_user("devops3", "DevOps"),
        "reviewer2": make_user("reviewer2", "Tech Review"),
    }


@pytest.fixture(autouse=True)
def reads_before_writes(monkeypatch):
    """ "At once" made exact: every racing call reads the request before any of them writes.
    Each thread waits, right after its first check of the request (whatever it decided), for
    the others to have read it too; a call that never gets that far lets the rest go after a
    short timeout. Without this, on a busy machine a thread may start after another finished,
    and two actions that are fine one after the other (approve, then cancel) both succeed."""
    from requests_app import workflow

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
    """Fire `calls` [(user, url, body)] at once, one thread and one connection each.

    Returns the status codes in the order of `calls`."""
    barrier = threading.Barrier(len(calls))
    if all("/actions/" in url for _, url, _ in calls):  # filings read nothing first
        READS["barrier"] = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, user_pk, url, body):
        try:
            client = APIClient()
            client.force_authenticate(get_user_model().objects.get(pk=user_pk))
            barrier.wait(timeout=30)
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
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert all(isinstance(code, int) for code in results), results
    return results


def action_url(request, action):
    return f"/api/v1/requests/{request.pk}/actions/{action}/"


def assert_one_winner(request, codes, calls, actions):
    """Exactly one 200, the rest 409, one event for the change, and the state it names."""
    assert sorted(codes) == [200] + [409] * (len(codes) - 1), codes
    winner_user, winner_url, _ = calls[codes.index(200)]
    winner_action = winner_url.rstrip("/").rsplit("/", 1)[-1]
    events = list(Event.objects.filter(request=request, action__in=actions))
    assert len(events) == 1, [(e.action, e.by_id) for e in events]
    [event] = events
    assert (event.action, event.by_id) == (winner_action, winner_user.pk)
    request.refresh_from_db()
    assert request.state == event.to_state
    # The history is a chain: every event starts where the one before it ended.
    chain = list(Event.objects.filter(request=request).exclude(action="comment"))
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.from_state == before.to_state, (before.action, after.action)
    return event


def test_leads_approving_and_rejecting_at_once(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.PENDING_APPROVAL)
        calls = [
            (users["lead"], action_url(request, "approve"), {"comment": "yes"}),
            (more["lead2"], action_url(request, "reject"), {"comment": "no"}),
            (more["lead3"], action_url(request, "approve"), {"comment": "yes too"}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("approve", "reject"))
        assert event.to_state in (State.QUEUED, State.REJECTED)
        [decision] = Approval.objects.filter(request=request)
        assert decision.approver_id == event.by_id
        assert decision.approved == (event.action == "approve")


def test_devops_picking_up_the_same_request(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.QUEUED)
        calls = [
            (users["devops"], action_url(request, "pick_up"), {}),
            (users["devops2"], action_url(request, "pick_up"), {}),
            (more["devops3"], action_url(request, "pick_up"), {}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("pick_up",))
        assert request.state == State.IN_PROGRESS
        assert request.assignee_id == event.by_id


def test_requester_cancelling_while_a_lead_approves(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.PENDING_APPROVAL)
        calls = [
            (users["ce"], action_url(request, "cancel"), {}),
            (users["lead"], action_url(request, "approve"), {}),
            (more["lead2"], action_url(request, "reject"), {"comment": "Not now."}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("cancel", "approve", "reject"))
        assert event.to_state in (State.CANCELLED, State.QUEUED, State.REJECTED)


def test_reviewers_deciding_at_once(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.TECH_REVIEW)
        calls = [
            (users["reviewer"], action_url(request, "tech_approve"), {}),
            (more["reviewer2"], action_url(request, "tech_reject"), {"comment": "Too big."}),
        ]
        codes = race(calls)
        assert_one_winner(request, codes, calls, ("tech_approve", "tech_reject"))
        assert Approval.objects.filter(request=request, stage="tech_review").count() == 1


def test_completing_while_another_engineer_waits_on_the_customer(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.IN_PROGRESS, kind="feature")
        calls = [
            (users["devops"], action_url(request, "complete"), {}),
            (users["devops2"], action_url(request, "wait_on_customer"), {}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("complete", "wait_on_customer"))
        # The resolution clock stops only when completing won, and pauses only otherwise.
        request.refresh_from_db()
        assert (request.resolution_stopped_at is not None) == (event.action == "complete")
        assert (request.resolution_paused_at is not None) == (event.action == "wait_on_customer")


CONFIRM_CANCEL_ROUNDS = 20


def test_confirms_and_cancels_on_a_planned_run_have_one_winner(users, more):
    """8 DevOps confirms and 4 cancels (requester and leads) at once on a planned run, 20
    rounds: one action wins; a cancelled request keeps no run that a worker could apply."""
    from provisioning import runs
    from provisioning.execute import execute_run
    from requests_app import workflow

    cancellers = [users["ce"], users["lead"], more["lead2"], more["lead3"]]
    confirmers = [users["devops"], users["devops2"], more["devops3"]]
    outcomes = set()
    for _ in range(CONFIRM_CANCEL_ROUNDS):
        request = request_in_state(users, State.IN_PROGRESS, kind="suspend")
        workflow.perform(users["devops"], request.pk, "plan", notify=False)
        run = runs.latest_run(request.pk)
        assert run.claim("plan", "test-worker", timezone.now())
        assert run.mark_planned(b"plan", "text", {"add": 0, "change": 0, "destroy": 0}, "d")
        calls = [(confirmers[i % 3], action_url(request, "confirm"), {}) for i in range(8)]
        calls += [(who, action_url(request, "cancel"), {}) for who in cancellers]
        codes = race(calls)
        assert sorted(codes) == [200] + [409] * (len(codes) - 1), codes
        winner = calls[codes.index(200)][1].rstrip("/").rsplit("/", 1)[-1]
        outcomes.add(winner)
        request.refresh_from_db()
        run.refresh_from_db()
        events = Event.objects.filter(request=request, action__in=("confirm", "cancel"))
        assert [e.action for e in events] == [winner]
        if winner == "cancel":
            assert (request.state, run.state, run.job_wanted) == ("cancelled", "discarded", "")
            # A worker that picks up a stale job finds nothing to apply.
            assert execute_run(run.pk) == "nothing to do"
        else:
            expected = ("in_progress", "applying", "apply")
            assert (request.state, run.state, run.job_wanted) == expected
    # Both kinds of winner happen over the rounds (else the race was not a race).
    assert outcomes == {"confirm", "cancel"}, outcomes


def test_filing_the_same_new_slug_at_once(users):
    for round_number in range(ROUNDS):
        slug = f"raced{round_number}"
        calls = [
            (users["ce"], "/api/v1/requests/", payload("create", slug)),
            (users["sales"], "/api/v1/requests/", payload("create", slug)),
        ]
        codes = race(calls)
        # One is filed; the other is refused as a clash (409) or, when it arrived after the
        # winner committed, by the form's check for an open request (400).
        assert sorted(codes)[0] == 201 and sorted(codes)[1] in (400, 409), codes
        assert Request.objects.filter(instance_slug=slug).count() == 1
        assert Event.objects.filter(request__instance_slug=slug, action="submit").count() == 1


def test_assign_and_cancel_at_once_have_one_winner(users, more):
    """assign keeps the state, cancel ends the request: the version compare-and-set still lets
    only one of them through, so a cancelled request never changes hands after the fact and an
    assign never lands on a request that was cancelled meanwhile. Both read the request before
    either writes (reads_before_writes), so without the compare-and-set both would win. (Cancel
    wins most rounds: assign looks its assignee up before it writes.)"""
    for round_number in range(ROUNDS * 2):
        request = request_in_state(users, State.IN_PROGRESS, kind="feature")
        assigner = users["devops2"] if round_number % 2 else more["devops3"]
        calls = [
            (assigner, action_url(request, "assign"), {"assignee": assigner.username}),
            (users["ce"], action_url(request, "cancel"), {}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("assign", "cancel"))
        if event.action == "cancel":
            assert (request.state, request.assignee_id) == (State.CANCELLED, users["devops"].pk)
        else:
            assert (request.state, request.assignee_id) == (State.IN_PROGRESS, assigner.pk)
