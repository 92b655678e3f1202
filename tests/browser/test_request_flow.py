"""The main path, clicked through in Chromium: CE files, leadership approves, DevOps picks up."""

import re

import pytest

from requests_app.models import Request
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_user

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
    assert "filed the request" in timeline and "approve" in timeline and "pick up" in timeline
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
