"""Two people taking conflicting actions at once: exactly one wins, the others get 409, and the
history holds exactly one event for the change (CONTRACTS.md section 3).

Each thread has its own PostgreSQL connection, so these tests commit for real."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
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


def race(calls):
    """Fire `calls` [(user, url, body)] at once, one thread and one connection each.

    Returns the status codes in the order of `calls`."""
    barrier = threading.Barrier(len(calls))
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
            (more["lead2"], action_url(request, "reject"), {}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("cancel", "approve", "reject"))
        assert event.to_state in (State.CANCELLED, State.QUEUED, State.REJECTED)


def test_reviewers_deciding_at_once(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.TECH_REVIEW)
        calls = [
            (users["reviewer"], action_url(request, "tech_approve"), {}),
            (more["reviewer2"], action_url(request, "tech_reject"), {}),
        ]
        codes = race(calls)
        assert_one_winner(request, codes, calls, ("tech_approve", "tech_reject"))
        assert Approval.objects.filter(request=request, stage="tech_review").count() == 1


def test_completing_while_another_engineer_waits_on_the_customer(users, more):
    for _ in range(ROUNDS):
        request = request_in_state(users, State.IN_PROGRESS, kind="suspend")
        calls = [
            (users["devops"], action_url(request, "complete"), {}),
            (users["devops2"], action_url(request, "wait_on_customer"), {}),
        ]
        codes = race(calls)
        event = assert_one_winner(request, codes, calls, ("complete", "wait_on_customer"))
        request.instance.refresh_from_db()
        # The instance changes only when completing won.
        assert (request.instance.status == "suspended") == (event.action == "complete")


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
