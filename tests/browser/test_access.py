"""Access in Chromium: CE asks for access to an instance, a manager approves it from the
approvals inbox, DevOps grants it, and the Access page lists it."""

import re

import pytest

from requests_app.models import Request
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_instance, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


def sign_out(page):
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/login/"))


def test_ce_asks_for_access_a_manager_approves_devops_grants(page, screenshot):
    make_user("ce", "CE")
    make_user("lead", "CE Leadership")
    make_user("manager", "Managers")
    make_user("devops", "DevOps")
    make_instance("acme", customer="Acme Corp")

    sign_in(page, "ce", PASSWORD)
    page.click("nav >> text=New request")
    page.click("[data-kind=access]")
    page.fill("#id_person", "jo@example.com")
    page.select_option("#id_scope", "vault")
    page.select_option("#id_instance", "acme")
    page.check("#id_category input[value=customer]")
    page.fill("#id_justification", "Jo debugs Acme's slow searches this week.")
    screenshot("1-ce-form")
    page.click(".request-form button[type=submit]")
    page.wait_for_selector("[data-testid=request-state]")
    assert "a manager will review it" in page.locator(".message-success").inner_text()
    assert page.get_by_test_id("access-person").inner_text() == "jo@example.com"
    request = Request.objects.get(kind="access")
    sign_out(page)

    # CE Leadership decides the other kinds, not this one: their inbox does not offer it.
    sign_in(page, "lead", PASSWORD)
    page.click("nav >> text=Approvals")
    assert page.locator(f"[data-request-id='{request.pk}']").count() == 0
    sign_out(page)

    sign_in(page, "manager", PASSWORD)
    page.click("nav >> text=Approvals")
    row = page.locator(f"[data-request-id='{request.pk}']")
    assert "jo@example.com" in row.inner_text()
    row.locator("a.button:has-text('Review')").click()
    screenshot("2-manager-reviews")
    page.click("button[data-action=approve]")
    page.wait_for_selector(".message-success")
    assert page.get_by_test_id("request-state").inner_text() == "Queued"
    sign_out(page)

    sign_in(page, "devops", PASSWORD)
    page.goto(f"/requests/{request.pk}/")
    page.click("button[data-action=pick_up]")
    page.wait_for_selector(".message-success")
    page.click("button[data-action=complete]")
    page.wait_for_selector(".message-success")
    assert "granted vault to jo@example.com until" in page.get_by_test_id("timeline").inner_text()
    page.click("nav >> text=Access")
    grant = page.locator("[data-testid=access-table] tr[data-person='jo@example.com']")
    assert "acme" in grant.inner_text() and "devops" in grant.inner_text()
    screenshot("3-access-page")
