"""Single sign-on end to end: Chromium, the portal's live server and a real OpenID Connect
provider (django-oauth-toolkit, tests/oidc_provider/) in a process of its own, started once
for the module. Consent is skipped (a trusted first-party client)."""

import re

import pytest
import requests
from django.contrib.auth.models import User

from audit.models import Outcome, SignInEvent
from tests.browser.conftest import READS_THE_CLOCK
from tests.factories import PASSWORD
from tests.oidc_provider.running import Provider, configure_portal

# The API token test reads the clock (a token records when it was last used). lane2: with the
# test-client SSO tests (tests/accounts/test_oidc.py) this module took 30-34 s on the shared
# 2-core machine, over the 30 s kept for the SSO tests in make test's first process.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    *READS_THE_CLOCK,
    pytest.mark.lane2,
]


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory):
    started = Provider(
        tmp_path_factory.mktemp("oidc-provider"), [f"{live_server.url}/oidc/callback/"]
    )
    yield started
    started.stop()


@pytest.fixture
def sso(settings, provider):
    configure_portal(settings, provider)
    return provider


def sso_sign_in(page, username, password=PASSWORD):
    page.goto("/login/")
    page.click("[data-testid=sso-sign-in]")
    page.fill("#idp-username", username)
    page.fill("#idp-password", password)
    page.click("#idp-submit")


def signed_in_as(page, username):
    page.wait_for_selector("[data-testid=username]")
    return page.locator("[data-testid=username]").inner_text() == username


def refused_on_the_login_page(page, words, screenshot):
    """The sign-in page with the error, and no session: the home page sends back to sign in."""
    page.wait_for_selector(".message-error")
    assert re.search(r"/login/$", page.url), page.url
    message = page.locator(".message-error").inner_text()
    assert words in message, message
    screenshot(words.replace(" ", "-"))
    page.goto("/")
    assert "/login/" in page.url
    return message


def test_sso_sign_in_gives_the_roles_of_the_groups_and_takes_them_at_the_next_sign_in(
    page, sso, screenshot
):
    sso.set_user("dana", "idp-devops", "idp-ce", email="dana@corp.example")
    sso_sign_in(page, "dana")
    assert signed_in_as(page, "dana")
    # The portal made the account and gave it the roles of the groups claim.
    nav = page.locator("nav[aria-label=Main]")
    assert nav.get_by_role("link", name="DevOps queue").is_visible()
    assert nav.get_by_role("link", name="New request").is_visible()
    page.click("nav >> text=DevOps queue")
    page.wait_for_selector("h1")
    assert page.url.endswith("/queue/")
    screenshot("devops-queue")
    dana = User.objects.get(username="dana")
    assert dana.email == "dana@corp.example"
    assert set(dana.groups.values_list("name", flat=True)) == {"DevOps", "CE"}
    assert not dana.has_usable_password()
    assert SignInEvent.objects.filter(user=dana, outcome=Outcome.SIGNED_IN).count() == 1
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/login/"))

    sso.set_user("dana", "idp-ce")  # taken out of idp-devops at the provider
    page.context.clear_cookies()  # a new sign-in at the provider too
    sso_sign_in(page, "dana")
    assert signed_in_as(page, "dana")
    assert nav.get_by_role("link", name="New request").is_visible()
    assert not nav.get_by_role("link", name="DevOps queue").is_visible()
    page.goto("/queue/")
    assert page.locator("[data-testid=error-page]").get_attribute("data-status") == "403"
    assert list(dana.groups.values_list("name", flat=True)) == ["CE"]


def test_a_person_with_no_mapped_group_gets_a_page_that_says_whom_to_ask(page, sso, screenshot):
    sso.set_user("eve", "idp-contractors", email="eve@corp.example")
    sso_sign_in(page, "eve")
    page.wait_for_selector("[data-testid=no-role]")
    text = page.locator("[data-testid=no-role]").inner_text()
    assert "Your account has no portal role" in text
    assert "idp-contractors" in text
    groups = page.locator("[data-testid=role-groups]").inner_text()
    assert "idp-devops" in groups and "DevOps" in groups
    assert page.locator("link[rel=stylesheet]").count() == 1  # the portal's layout
    screenshot("no-role")
    # Not signed in to a portal that would refuse every page.
    page.goto("/")
    assert "/login/" in page.url
    assert User.objects.get(username="eve").groups.count() == 0


def test_id_tokens_that_fail_verification_are_refused(page, sso, caplog, screenshot):
    sso.set_user("dana", "idp-devops")
    for mode, words in [
        ("tampered", "signature does not match"),
        ("expired", "has expired"),
        ("wrong_audience", "issued for another application"),
    ]:
        sso.issue_id_tokens(mode)
        page.context.clear_cookies()  # a new sign-in at the provider each time
        sso_sign_in(page, "dana")
        refused_on_the_login_page(page, words, screenshot)
    assert not User.objects.filter(username="dana").exists()
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("accounts"))
    for reason in ("ID token signature invalid", "ID token expired", "ID token claim 'aud'"):
        assert reason in logged
    assert sso.client_secret not in logged
    assert SignInEvent.objects.filter(outcome=Outcome.FAILED).count() == 3


def test_an_sso_user_makes_lists_and_revokes_an_api_token(page, sso, live_server, screenshot):
    sso.set_user("dana", "idp-devops")
    sso_sign_in(page, "dana")
    assert signed_in_as(page, "dana")
    page.click("[data-testid=api-tokens-link]")
    page.fill("#id_name", "deploy script")
    page.click("[data-testid=create-token]")
    key = page.locator("[data-testid=new-token-key]").inner_text().strip()
    assert key.startswith("mip_")
    row = page.locator("[data-testid=token-row]")
    assert row.count() == 1
    assert "deploy script" in row.inner_text()
    assert key[:12] in row.inner_text() and key not in row.inner_text()
    screenshot("tokens")

    api = f"{live_server.url}/api/v1/instances/"
    assert requests.get(api, headers={"Authorization": f"Token {key}"}, timeout=10).ok

    # Shown once: the page, opened again, has only the prefix.
    page.goto("/account/tokens/")
    assert key not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=revoke-token]")
    page.wait_for_selector("[data-testid=no-tokens]")
    assert "is revoked" in page.locator(".message-success").inner_text()
    answer = requests.get(api, headers={"Authorization": f"Token {key}"}, timeout=10)
    assert answer.status_code == 401
