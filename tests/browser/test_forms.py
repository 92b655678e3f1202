"""Request forms in Chromium: zones from Compute's list in a select, and no customer to retype
for an instance that exists."""

import pytest

from requests_app.models import Request
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_instance, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


def test_zones_are_a_select_and_the_customer_comes_from_the_instance(page):
    make_user("ce", "CE")
    make_instance("tyrell", customer="Tyrell Corp", version="6.0.0")
    sign_in(page, "ce", PASSWORD)

    page.goto("/requests/new/create/")
    options = page.locator("select#id_zone option").all_inner_texts()
    assert "europe-west4-a" in options and "us-central1-f" in options
    assert "mars-north1-z" not in options
    assert page.locator("select#id_zone").input_value() == "us-central1-f"

    page.goto("/requests/new/suspend/")
    assert page.locator("#id_customer").get_attribute("type") == "hidden"
    page.fill("#id_instance", "tyrell")
    page.get_by_role("button", name="File request").click()
    page.wait_for_url("**/requests/*/")
    request = Request.objects.get(instance_slug="tyrell")
    assert request.customer == "Tyrell Corp"
    assert "Tyrell Corp" in page.locator("h1").inner_text()


def test_the_create_form_estimates_the_monthly_cost_as_the_machine_type_changes(page):
    make_user("ce", "CE")
    sign_in(page, "ce", PASSWORD)
    page.goto("/requests/new/create/")
    estimate = page.get_by_test_id("cost-estimate")
    assert estimate.inner_text() == "$532"  # n1-standard-8 recommended: 194 + 282 + 56
    page.fill("#id_users", "1500")  # the recommendation moves to n1-standard-32
    assert estimate.inner_text() == "$1,115"
    page.select_option("#id_machine_type", "n1-standard-16")
    assert estimate.inner_text() == "$726"
    assert "storage $282" in page.locator("#cost-parts").inner_text()
