"""What the help desk found using the pages in Chromium: the favicon, the create form's
non-standard badge, error pages in the portal's layout, failed actions that come back to the
request page in human words, success messages that say what happened, the SLA policy admin in
numbers and units, and the pages at a phone's width. Screenshots go to test-artifacts/."""

import re

import pytest

from requests_app import workflow
from requests_app.forms import FORMS
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


@pytest.fixture
def people():
    return {
        "ce": make_user("ce", "CE"),
        "lead": make_user("lead", "CE Leadership"),
        "devops": make_user("devops", "DevOps"),
        "devops2": make_user("devops2", "DevOps"),
        "manager": make_user("manager", "Managers"),
    }


def file(user, slug="hooli", kind="create", **data):
    form = FORMS[kind](
        data={
            "instance": slug,
            "customer": slug.title(),
            "access": "public_sso",
            "justification": "Trial",
            **data,
        }
    )
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data, notify=False)


# -- 7. the favicon ------------------------------------------------------------------------------


def test_every_page_has_an_icon_that_loads(page, people):
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    icon = page.locator("link[rel=icon]")
    assert icon.count() == 1
    linked = page.request.get(icon.get_attribute("href"))
    assert linked.status == 200 and "svg" in linked.headers["content-type"]
    # Where no page names it (JSON, a browser's own guess) the classic address works too.
    classic = page.request.get("/favicon.ico")
    assert classic.status == 200 and classic.body() == linked.body()
    # Before anyone signs in as well.
    page.context.clear_cookies()
    assert page.request.get("/favicon.ico").status == 200


# -- 1. the create form's non-standard badge ------------------------------------------------------


def test_the_non_standard_badge_shows_only_when_the_rule_fires(page, people, screenshot):
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    page.goto("/requests/new/create/")
    badge = page.locator("#scale-warning")
    assert not badge.is_visible(), "an empty form is standard"
    page.fill("#id_users", "200")
    assert not badge.is_visible(), "200 users are standard"
    page.fill("#id_users", "3000")
    assert not badge.is_visible(), "3,000 users is the limit, not above it"
    page.fill("#id_users", "3001")
    assert badge.is_visible()
    assert "scale" in badge.inner_text() and "Tech Review" in badge.inner_text()
    screenshot("1-too-many-users")
    page.fill("#id_users", "200")
    assert not badge.is_visible(), "back under the limit, standard again"
    page.fill("#id_repositories", "25001")
    assert badge.is_visible()
    page.fill("#id_repositories", "25000")
    assert not badge.is_visible()
    # A reason ticked by hand makes the request non-standard whatever its size.
    page.check("input[name=non_standard_reasons][value=security]")
    assert badge.is_visible() and "security" in badge.inner_text()
    screenshot("2-security-ticked")
    page.uncheck("input[name=non_standard_reasons][value=security]")
    assert not badge.is_visible()
    screenshot("3-standard-again")
