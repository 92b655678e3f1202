"""The search box of the navigation and the list's filters, in Chromium: the filtered list is a
URL, so a reload (or a bookmark) shows the same requests."""

import re

import pytest

from requests_app import workflow
from requests_app.forms import FORMS
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_instance, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


def file_suspend(requester, slug, customer):
    make_instance(slug, customer=customer)
    form = FORMS["suspend"](data={"instance": slug, "customer": customer})
    assert form.is_valid(), form.errors
    return workflow.file_request(requester, "suspend", form.cleaned_data, notify=False)


def listed(page):
    return [
        int(pk)
        for pk in page.locator(
            "[data-testid=request-table] tbody tr[data-request-id]"
        ).evaluate_all("rows => rows.map(row => row.dataset.requestId)")
    ]


def test_the_navigation_search_finds_tyrell_and_a_reload_keeps_it(page, screenshot):
    ce = make_user("ce", "CE")
    make_user("lead", "CE Leadership")
    tyrell = file_suspend(ce, "tyrell", "Tyrell Corp")
    other = file_suspend(ce, "acme", "Acme Corp")
    sign_in(page, "lead", PASSWORD)

    page.fill("[data-testid=nav-search]", "tyr")
    page.press("[data-testid=nav-search]", "Enter")
    page.wait_for_url(re.compile(r"/requests/\?q=tyr$"))
    assert listed(page) == [tyrell.pk]
    assert page.locator("[data-testid=filter-q]").input_value() == "tyr"
    screenshot("1-searched")

    page.reload()
    assert listed(page) == [tyrell.pk]
    assert page.locator("[data-testid=nav-search]").input_value() == "tyr"

    # The list's own form narrows further, and its URL says so too.
    page.select_option("select[name=state]", "queued")
    page.click("[data-testid=request-filters] button[type=submit]")
    page.wait_for_url(re.compile(r"state=queued"))
    assert listed(page) == []
    assert "q=tyr" in page.url
    page.click("[data-testid=clear-filters]")
    page.wait_for_url(re.compile(r"/requests/$"))
    assert sorted(listed(page)) == sorted([tyrell.pk, other.pk])
    screenshot("2-cleared")
