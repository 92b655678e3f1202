"""Single sign-on end to end: Chromium, the portal's live server and a real OpenID Connect
provider (django-oauth-toolkit, tests/oidc_provider/) in a process of its own, started once
for the module. Consent is skipped (a trusted first-party client)."""

import re

import pytest
import requests
from django.contrib.auth.models import User

from audit.models import Outcome, SignInEvent
from tests.browser.conftest import READS_THE_CLOCK
from tests.factories import PASSWORD, make_user
from tests.oidc_provider.running import Provider, configure_portal

# The API token test reads the clock (a token records when it was last used).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


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


def refused_on_the_login_page(page, words):
    """The sign-in page with the error, and no session: the home page sends back to sign in."""
    page.wait_for_selector(".message-error")
    assert re.search(r"/login/$", page.url), page.url
    message = page.locator(".message-error").inner_text()
    assert words in message, message
    page.goto("/")
    assert "/login/" in page.url
    return message


def test_a_devops_engineer_signs_in_with_sso_and_gets_the_role_of_the_group(page, sso, screenshot):
    sso.set_user("dana", "idp-devops", email="dana@corp.example")
    sso_sign_in(page, "dana")
    assert signed_in_as(page, "dana")
    # The portal made the account and gave it the role from the groups claim.
    nav = page.locator("nav[aria-label=Main]")
    assert nav.get_by_role("link", name="DevOps queue").is_visible()
    assert not nav.get_by_role("link", name="New request").is_visible()
    page.click("nav >> text=DevOps queue")
    page.wait_for_selector("h1")
    assert "/login/" not in page.url
    screenshot("devops-queue")
    dana = User.objects.get(username="dana")
    assert dana.email == "dana@corp.example"
    assert list(dana.groups.values_list("name", flat=True)) == ["DevOps"]
    assert not dana.has_usable_password()
    assert SignInEvent.objects.filter(user=dana, outcome=Outcome.SIGNED_IN).count() == 1


def test_an_existing_account_is_found_by_email_and_keeps_its_other_groups(page, sso):
    ce = make_user("ce", "CE")  # seed_demo's ce@example.com
    ce.groups.add(*make_user("x", "Auditors").groups.all())
    sso.set_user("carol.e", "idp-ce", "idp-managers", email="ce@example.com")
    sso_sign_in(page, "carol.e")
    assert signed_in_as(page, "ce")
    assert set(ce.groups.values_list("name", flat=True)) == {"CE", "Managers", "Auditors"}
    assert not User.objects.filter(username="carol.e").exists()


def test_someone_taken_out_of_a_group_loses_the_role_at_the_next_sign_in(page, sso):
    sso.set_user("dana", "idp-devops", "idp-ce")
    sso_sign_in(page, "dana")
    assert signed_in_as(page, "dana")
    assert page.locator("nav >> text=DevOps queue").is_visible()
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/login/"))

    sso.set_user("dana", "idp-ce")  # removed from idp-devops at the provider
    page.context.clear_cookies()  # a new sign-in at the provider too
    sso_sign_in(page, "dana")
    assert signed_in_as(page, "dana")
    assert page.locator("nav >> text=New request").is_visible()
    assert not page.locator("nav >> text=DevOps queue").is_visible()
    page.goto("/queue/")
    assert page.locator("[data-testid=error-page]").get_attribute("data-status") == "403"
    assert list(User.objects.get(username="dana").groups.values_list("name", flat=True)) == ["CE"]


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


@pytest.mark.parametrize(
    "mode, words",
    [
        ("tampered", "signature"),
        ("expired", "expired"),
        ("wrong_audience", "another application"),
    ],
)
def test_an_id_token_that_fails_verification_is_refused(page, sso, mode, words, caplog):
    sso.set_user("dana", "idp-devops")
    sso.issue_id_tokens(mode)
    sso_sign_in(page, "dana")
    refused_on_the_login_page(page, words)
    assert not User.objects.filter(username="dana").exists()
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("accounts"))
    assert "SSO sign-in refused" in logged
    assert sso.client_secret not in logged


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
