"""The request page: who holds the request and what it leads with, the assign form, and the
history in people's words (runs folded into one entry each, comments standing out)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from provisioning import runs
from requests_app import history, workflow
from requests_app.models import Event, State
from tests.factories import make_user
from tests.requests_app.test_api import request_in_state

pytestmark = pytest.mark.clock


def page(client, user, request):
    client.force_login(user)
    response = client.get(reverse("request_detail", args=[request.pk]))
    assert response.status_code == 200
    return response.content.decode()


def section(html, testid):
    found = re.search(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', html, re.S)
    return found.group(2) if found else None


def test_the_holder_sees_their_own_buttons_first(client, users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    html = page(client, users["devops"], request)
    assert "You hold this request." in section(html, "holder")
    assert 'data-testid="assign-to-me"' not in html
    assert "Or act on it anyway" not in html
    assert re.search(r'class="primary" data-action="complete"', html)


def test_another_devops_member_is_told_who_holds_it_and_offered_assign_to_me(client, users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    html = page(client, users["devops2"], request)
    holder = section(html, "holder")
    assert "Held by devops." in holder and "devops holds this request" in holder
    assert 'data-testid="assign-to-me"' in holder and 'class="primary"' in holder
    assert 'name="assignee" value="devops2"' in holder
    # The other actions are still there, under it and quieter.
    assert "Or act on it anyway" in html
    actions = html.split('data-testid="actions"')[1].split("</form>")[0]
    for action in ("complete", "wait_on_customer", "set_target"):
        found = re.search(rf'class="([^"]*)" data-action="{action}"', actions)
        assert found and found.group(1).startswith("quiet"), action
    assert html.index('data-testid="assign-to-me"') < html.index('data-testid="actions"')


def test_nobody_holding_a_request_in_progress_offers_assign_to_me(client, users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    workflow.perform(users["devops"], request.pk, "assign", assignee="", notify=False)
    html = page(client, users["devops"], request)
    assert "Held by nobody." in section(html, "holder")
    assert 'data-testid="assign-to-me"' in html


def test_a_queued_request_nobody_holds_leads_with_pick_up(client, users):
    request = request_in_state(users, State.QUEUED)
    html = page(client, users["devops"], request)
    assert "Held by nobody." in section(html, "holder")
    assert 'data-testid="assign-to-me"' not in html
    assert re.search(r'class="primary" data-action="pick_up"', html)


def test_the_assign_form_lists_devops_members_and_nobody(client, users):
    make_user("retired", "DevOps").__class__.objects.filter(username="retired").update(
        is_active=False
    )
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    form = section(page(client, users["devops2"], request), "assign-form")
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', form)
    assert [(value, label) for value, _, label in options] == [
        ("", "nobody"),
        ("devops", "devops"),
        ("devops2", "devops2 (you)"),
    ]
    assert [value for value, selected, _ in options if selected] == ["devops"]


@pytest.mark.parametrize("who", ["ce", "lead", "manager"])
def test_other_roles_see_no_assign_form(client, users, who):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    html = page(client, users[who], request)
    assert 'data-testid="assign-form"' not in html and 'data-testid="holder"' not in html


def test_assigning_from_the_page_says_whom(client, users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    client.force_login(users["devops2"])
    url = reverse("request_action", args=[request.pk, "assign"])
    response = client.post(url, {"assignee": "devops2"}, follow=True)
    assert "Assigned to you: you hold this request now." in response.content.decode()
    response = client.post(url, {"assignee": "devops"}, follow=True)
    assert "Assigned to devops: they hold this request now." in response.content.decode()
    response = client.post(url, {"assignee": ""}, follow=True)
    assert "Nobody holds this request now." in response.content.decode()
    response = client.post(url, {"assignee": "ce"}, follow=True)
    assert "ce is not in DevOps" in response.content.decode()
    request.refresh_from_db()
    assert request.assignee is None


# -- the history ----------------------------------------------------------------------------------


def timeline(html):
    return html.split('data-testid="timeline"')[1].split("Add a comment")[0]


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_history_speaks_in_verbs_and_state_labels(client, users):
    request = request_in_state(users, State.IN_PROGRESS, kind="feature")
    workflow.perform(users["devops2"], request.pk, "assign", assignee="devops2", notify=False)
    workflow.perform(users["devops2"], request.pk, "assign", assignee="devops", notify=False)
    workflow.perform(users["devops"], request.pk, "assign", assignee=None, notify=False)
    due = timezone.now() + timedelta(days=3)
    workflow.perform(users["devops"], request.pk, "set_target", due_at=due, notify=False)
    workflow.perform(users["lead"], request.pk, "cancel", notify=False)
    said = text(timeline(page(client, users["ce"], request)))
    for words in (
        "ce filed the request — → Pending approval",
        "lead approved Pending approval → Queued",
        "devops picked up Queued → In progress",
        "devops2 assigned themselves",
        "devops2 assigned devops",
        "devops unassigned devops",
        "devops set the target date to ",
        "lead cancelled In progress → Cancelled",
    ):
        assert words in said, (words, said)
    assert "pending_approval" not in said and "in_progress" not in said and "pick up" not in said


def test_a_rejection_shows_the_reason(client, users):
    request = request_in_state(users, State.REJECTED)
    said = text(timeline(page(client, users["ce"], request)))
    assert re.search(r"lead rejected Pending approval → Rejected [^>]* Not this quarter\.", said)


def test_comments_stand_out(client, users):
    request = request_in_state(users, State.QUEUED)
    workflow.add_comment(users["ce"], request.pk, "Any news?", notify=False)
    html = timeline(page(client, users["ce"], request))
    comment = section(html, "history-comment")
    assert "ce" in comment and "commented" in comment
    assert '<blockquote class="comment-body prewrap">Any news?</blockquote>' in comment


def plan_and_apply(users, request):
    """A run that plans, is confirmed by devops2 and applies (no worker: Run's own moves)."""
    workflow.perform(users["devops"], request.pk, "plan", comment="First try.", notify=False)
    run = runs.latest_run(request.pk)
    now = timezone.now()
    assert run.claim("plan", "test-worker", now)
    workflow.record_run_event(run, "run_step", "terraform plan: done", now, None)
    assert run.mark_planned(b"plan", "text", {"add": 3, "change": 0, "destroy": 0}, "d")
    workflow.record_run_event(run, "run_planned", "Plan: 3 to add.", now, None)
    workflow.perform(users["devops2"], request.pk, "confirm", notify=False)
    run.refresh_from_db()
    assert run.claim("apply", "test-worker", timezone.now())
    return run


def test_a_run_folds_into_one_entry_that_opens_to_its_steps(client, users):
    request = request_in_state(users, State.IN_PROGRESS, kind="suspend")
    # A first run that errored, then one that is applying.
    workflow.perform(users["devops"], request.pk, "plan", notify=False)
    first = runs.latest_run(request.pk)
    assert first.claim("plan", "test-worker", timezone.now())
    assert first.mark_errored("planning", timezone.now(), "quota", "", "", first.steps)
    workflow.record_run_event(first, "run_errored", "quota exceeded", timezone.now(), None)
    workflow.add_comment(users["devops"], request.pk, "Asked for more quota.", notify=False)
    workflow.perform(users["devops"], request.pk, "retry", notify=False)
    second = runs.latest_run(request.pk)
    assert second.pk != first.pk
    assert second.claim("plan", "test-worker", timezone.now())
    assert second.mark_planned(b"plan", "text", {"add": 1, "change": 0, "destroy": 0}, "d")
    workflow.record_run_event(second, "run_planned", "Plan: 1 to add.", timezone.now(), None)
    workflow.perform(users["devops2"], request.pk, "confirm", comment="Go.", notify=False)
    second.refresh_from_db()
    assert second.claim("apply", "test-worker", timezone.now())

    html = timeline(page(client, users["devops"], request))
    entries = re.findall(r'data-testid="history-run" data-run="(\d+)"', html)
    assert entries == [str(first.pk), str(second.pk)]
    summaries = re.findall(r'<span data-testid="run-summary">([^<]*)</span>', html)
    assert summaries == ["errored", "planned, confirmed by devops2, applying"]
    # Closed until opened; the steps inside, with what the person wrote with their action.
    assert "<details>" in html and "<details open" not in html
    steps = text(html.split(f'data-run="{second.pk}"')[1].split("</details>")[0])
    assert "queued by devops" in steps and "confirmed by devops2 Go." in steps
    # No run step is an entry of its own, nor a person's plan, retry or confirm.
    said = text(html)
    assert "queued a plan" not in said and "retried the run" not in said
    assert said.count("Run #") == 2
    # The comment between the runs is its own entry, in order.
    assert html.index(f'data-run="{first.pk}"') < html.index("Asked for more quota.")
    assert html.index("Asked for more quota.") < html.index(f'data-run="{second.pk}"')


def test_the_history_of_an_applied_run(users):
    request = request_in_state(users, State.IN_PROGRESS, kind="suspend")
    run = plan_and_apply(users, request)
    assert run.mark_applied({}, timezone.now())
    workflow.finish_by_run(run, timezone.now())
    events = Event.objects.filter(request=request).select_related("by").order_by("at", "id")
    found = history.entries(events, {run.pk: run})
    [folded] = [e for e in found if e.kind == "run"]
    assert folded.summary == "planned, confirmed by devops2, applied"
    assert [s.text for s in folded.steps] == [
        "queued by devops",
        "terraform plan: done",
        "planned",
        "confirmed by devops2",
    ]
    assert folded.steps[0].comment == "First try."
    # Done by the run: the portal marked it done, an entry of its own (the state changed).
    assert (found[-1].who, found[-1].verb, found[-1].change) == (
        "the portal",
        "marked done",
        ("In progress", "Done"),
    )
    # Without the run row, the summary still says it applied (from the request's completion).
    assert history.entries(events)[-2].summary == "planned, confirmed by devops2, applied"
