"""An incident in Chromium, on a phone's width: a DevOps engineer opens it from the instance's
page, acknowledges it, is told that a sev2 needs its postmortem, and resolves it; the pages
fit 390 px."""

import pytest

from incidents.models import Incident
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.browser.test_desk import PHONE, horizontal_overflow
from tests.factories import PASSWORD, make_instance, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


def test_devops_open_acknowledge_and_resolve_an_incident(page, screenshot):
    make_user("devops", "DevOps")
    make_user("devops2", "DevOps")
    make_instance("acme-corporation-eu", customer="Acme Corporation Europe Holdings Ltd")
    make_instance("globex")
    page.set_viewport_size(PHONE)
    sign_in(page, "devops", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")

    page.goto("/instances/acme-corporation-eu/")
    page.get_by_test_id("open-incident-link").click()
    page.wait_for_url("**/incidents/new/?instance=acme-corporation-eu")
    page.fill("#id_title", "Searches time out on the largest repositories")
    page.select_option("#id_severity", "sev2")
    page.select_option("#id_instances", ["acme-corporation-eu", "globex"])
    page.fill("#id_description", "Since the 09:00 reindex; smaller repositories are fine.")
    assert horizontal_overflow(page)[0] == 0
    screenshot("1-new")
    page.get_by_test_id("open-incident").click()
    incident = Incident.objects.get()
    page.wait_for_url(f"**/incidents/{incident.pk}/")
    assert "opened" in page.locator(".messages").inner_text()
    assert page.get_by_test_id("incident-state").inner_text() == "Open"
    assert "left" in page.get_by_test_id("timer-acknowledge").inner_text()

    page.locator("[data-action=ack]").click()
    page.wait_for_selector(".message-success")
    assert page.get_by_test_id("incident-state").inner_text() == "Acknowledged"
    assert page.get_by_test_id("timer-acknowledge").get_attribute("data-status") == "met"
    assert page.get_by_test_id("incident-commander").inner_text() == "devops"

    # A sev2 is resolved with its postmortem: the page says so and keeps what was typed.
    page.fill("#id_action_comment", "Rolled the index back.")
    page.locator("[data-action=resolve]").click()
    page.wait_for_selector(".message-error")
    assert "postmortem" in page.locator(".message-error").inner_text()
    assert page.input_value("#id_action_comment") == "Rolled the index back."
    page.fill("#id_postmortem_url", "https://wiki.example.com/postmortems/acme-search")
    page.locator("[data-action=resolve]").click()
    page.wait_for_selector(".message-success")
    assert page.get_by_test_id("incident-state").inner_text() == "Resolved"
    assert page.get_by_test_id("timer-resolution").get_attribute("data-status") == "met"
    timeline = page.get_by_test_id("timeline").inner_text()
    assert "Rolled the index back." in timeline and "acme-search" in timeline
    assert horizontal_overflow(page) == [0, []]
    screenshot("2-resolved")

    page.goto("/incidents/")
    assert horizontal_overflow(page)[0] == 0
    screenshot("3-list")
    incident.refresh_from_db()
    assert incident.state == "resolved" and incident.postmortem_url.endswith("acme-search")
