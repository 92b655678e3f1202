"""The main path, clicked through in Chromium: CE files, leadership approves, DevOps picks up."""

import re

import pytest
from django.utils import timezone

from requests_app import workflow
from requests_app.models import Request
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_user
from tests.requests_app.test_api import request_in_state
from tests.requests_app.test_request_page import plan_and_apply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


@pytest.fixture
def people():
    return {
        "ce": make_user("ce", "CE"),
        "lead": make_user("lead", "CE Leadership"),
        "reviewer": make_user("reviewer", "Tech Review"),
        "devops": make_user("devops", "DevOps"),
    }


def sign_out(page):
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/login/"))


def file_create_request(page, slug, users, repositories):
    page.click("nav >> text=New request")
    page.click("[data-kind=create]")
    page.fill("#id_instance", slug)
    page.fill("#id_customer", slug.title())
    page.fill("#id_users", str(users))
    page.fill("#id_repositories", str(repositories))
    page.fill("#id_justification", "Prospect trial; self-hosting ruled out.")


def approve_as(page, username, action, screenshot, shot):
    sign_in(page, username, PASSWORD)
    page.click("nav >> text=Approvals")
    page.click("a.button:has-text('Review')")
    page.fill("#id_action_comment", "Looks right.")
    screenshot(shot)
    page.click(f"button[data-action={action}]")
    page.wait_for_selector(".message-success")


def test_ce_files_lead_approves_devops_picks_up(page, people, screenshot):
    sign_in(page, "ce", PASSWORD)
    file_create_request(page, "hooli", users=250, repositories=2000)
    assert page.locator("#recommended-type").inner_text() == "n1-standard-8"
    screenshot("1-ce-form")
    page.click(".request-form button[type=submit]")
    page.wait_for_selector("[data-testid=request-state]")
    assert page.locator("[data-testid=request-state]").inner_text() == "Pending approval"
    assert page.locator("button[data-action=approve]").count() == 0
    screenshot("2-ce-filed")
    sign_out(page)

    approve_as(page, "lead", "approve", screenshot, "3-lead-reviews")
    assert page.locator("[data-testid=request-state]").inner_text() == "Queued"
    sign_out(page)

    sign_in(page, "devops", PASSWORD)
    page.click("nav >> text=DevOps queue")
    request = Request.objects.get(instance_slug="hooli")
    screenshot("4-devops-queue")
    page.click(f"[data-testid=pick-up-{request.pk}]")
    page.wait_for_selector(".message-success")
    assert page.locator("[data-testid=request-state]").inner_text() == "In progress"
    timeline = page.locator("[data-testid=timeline]").inner_text()
    assert "filed the request" in timeline and "approved" in timeline and "picked up" in timeline
    assert "Pending approval → Queued" in timeline and "pending_approval" not in timeline
    screenshot("5-devops-picked-up")
    request.refresh_from_db()
    assert request.state == "in_progress" and request.assignee.username == "devops"


def test_a_large_request_passes_through_tech_review(page, people, screenshot):
    sign_in(page, "ce", PASSWORD)
    file_create_request(page, "umbrella", users=4200, repositories=30000)
    assert page.locator("#recommended-type").inner_text() == "n1-standard-96"
    assert page.locator("#scale-warning").is_visible()
    screenshot("1-ce-large-form")
    page.click(".request-form button[type=submit]")
    page.wait_for_selector("[data-testid=request-state]")
    assert "non-standard: scale" in page.content()
    sign_out(page)

    approve_as(page, "lead", "approve", screenshot, "2-lead")
    assert page.locator("[data-testid=request-state]").inner_text() == "Tech review"
    sign_out(page)

    approve_as(page, "reviewer", "tech_approve", screenshot, "3-reviewer")
    assert page.locator("[data-testid=request-state]").inner_text() == "Queued"
    screenshot("4-queued")
    assert Request.objects.get(instance_slug="umbrella").state == "queued"


def test_the_form_shows_errors_in_the_browser(page, people, screenshot):
    sign_in(page, "ce", PASSWORD)
    page.click("nav >> text=New request")
    page.click("[data-kind=create]")
    page.fill("#id_instance", "Not A Slug")
    page.select_option("#id_access", "ip_allowlist")
    page.fill("#id_allowed_ip_ranges", "10.1.0.0/40")
    page.click(".request-form button[type=submit]")
    page.wait_for_selector("[data-testid=form-errors]")
    assert page.locator("[data-testid=error-instance]").is_visible()
    assert page.locator("[data-testid=error-allowed_ip_ranges]").is_visible()
    screenshot("errors")
    assert Request.objects.count() == 0


def test_another_devops_member_takes_over_a_request_held_by_someone_else(page, people, screenshot):
    make_user("devops2", "DevOps")
    request = request_in_state(people, "queued", kind="feature")
    sign_in(page, "devops", PASSWORD)
    page.goto(f"/requests/{request.pk}/")
    page.click("button[data-action=pick_up]")
    page.wait_for_selector(".message-success")
    assert "You hold this request." in page.locator("[data-testid=holder]").inner_text()
    screenshot("1-devops-holds")
    sign_out(page)

    sign_in(page, "devops2", PASSWORD)
    page.goto(f"/requests/{request.pk}/")
    holder = page.locator("[data-testid=holder]")
    assert "Held by devops." in holder.inner_text()
    assert "devops holds this request" in holder.inner_text()
    take = page.locator("[data-testid=assign-to-me]")
    assert take.inner_text() == "Assign to me" and "primary" in take.get_attribute("class")
    # The other actions are there, under it and quieter.
    done = page.locator("button[data-action=complete]")
    assert done.is_visible() and "primary" not in done.get_attribute("class")
    assert take.bounding_box()["y"] < done.bounding_box()["y"]
    screenshot("2-devops2-sees-the-holder")
    take.click()
    page.wait_for_selector(".message-success")
    assert page.locator(".message-success").inner_text() == (
        "Assigned to you: you hold this request now."
    )
    assert "You hold this request." in page.locator("[data-testid=holder]").inner_text()
    said = " ".join(page.locator("[data-testid=timeline]").inner_text().split())
    assert "devops2 assigned themselves" in said
    screenshot("3-devops2-holds")
    request.refresh_from_db()
    assert request.assignee.username == "devops2" and request.state == "in_progress"
    assert workflow.allowed_actions(people["devops"], request)  # devops may still act on it


def test_a_run_is_one_entry_of_the_history_and_comments_stand_out(page, people, screenshot):
    devops2 = make_user("devops2", "DevOps")
    request = request_in_state(people, "in_progress", kind="suspend")
    workflow.add_comment(people["ce"], request.pk, "The customer is on holiday.", notify=False)
    # Planned (the worker's steps and events), confirmed by devops2, applied.
    run = plan_and_apply({**people, "devops2": devops2}, request)
    assert run.mark_applied({}, timezone.now())
    workflow.finish_by_run(run, timezone.now())
    run_id = run.pk

    sign_in(page, "ce", PASSWORD)
    page.goto(f"/requests/{request.pk}/")
    timeline = page.locator("[data-testid=timeline]")
    runs = timeline.locator("[data-testid=history-run]")
    assert runs.count() == 1
    run = runs.first
    summary = run.locator("summary").inner_text()
    assert summary.startswith(f"Run #{run_id}: planned, confirmed by devops2, applied"), summary
    steps = run.locator(".history-step")
    assert not steps.first.is_visible()  # folded until opened
    comment = timeline.locator("[data-testid=history-comment]")
    assert comment.locator(".comment-body").inner_text() == "The customer is on holiday."
    assert comment.locator(".comment-body").is_visible()
    screenshot("1-folded")
    run.locator("summary").click()
    assert steps.first.is_visible() and steps.count() >= 3
    assert "queued by devops" in run.inner_text()
    screenshot("2-opened")
    # Each step is inside the run's entry, not an entry of its own: filed, approved, picked
    # up, the comment, the run (with the plan and confirm pressed), marked done by the portal.
    assert timeline.locator(":scope > li").count() == 6
