import pytest

from tests.browser.conftest import sign_in
from tests.factories import PASSWORD, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_lead_signs_in_and_sees_the_home_page(page, screenshot):
    make_user("lead", "CE Leadership")
    sign_in(page, "lead", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    assert page.locator("[data-testid=username]").inner_text() == "lead"
    assert "CE Leadership" in page.content()
    assert screenshot("home").exists()


def test_a_wrong_password_is_refused_with_a_message(page):
    make_user("lead", "CE Leadership")
    sign_in(page, "lead", "not-the-password")
    assert page.locator(".errors").is_visible()
    assert page.url.endswith("/login/")
