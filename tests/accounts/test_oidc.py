"""The SSO flow through Django's test client against the real provider (tests/oidc_provider):
PKCE and nonce on the way out, and every refusal on the way back ends on the sign-in page with
no session."""

import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User

from tests.factories import make_user
from tests.oidc_provider.running import (
    Provider,
    configure_portal,
    free_port,
    provider_round_trip,
    sign_in_with_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    started = Provider(
        tmp_path_factory.mktemp("oidc-provider"), ["http://testserver/oidc/callback/"]
    )
    yield started
    started.stop()


@pytest.fixture
def sso(settings, provider):
    configure_portal(settings, provider)
    return provider


def signed_in_as(client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def refusal(answer, client):
    """The message of a refusal that ended on the sign-in page, with no one signed in."""
    assert answer.status_code == 302 and answer["Location"] == "/login/", answer
    assert signed_in_as(client) is None
    page = client.get("/login/").content.decode()
    found = re.search(r'class="message message-error"[^>]*>([^<]+)<', page)
    assert found, page
    return found.group(1)


def test_the_authorization_request_uses_pkce_s256_and_a_nonce(client, sso, caplog):
    caplog.set_level(logging.DEBUG)
    answer = client.get("/oidc/login/")
    assert answer.status_code == 302
    url = urlsplit(answer["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == sso.issuer + "/authorize/"
    query = parse_qs(url.query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert query["nonce"] and query["state"]
    assert query["scope"] == ["openid email profile"]
    assert query["redirect_uri"] == ["http://testserver/oidc/callback/"]
    assert query["client_id"] == [sso.client_id]
    # The verifier stays in the session: never in the URL, nor in the log at any level.
    assert "code_verifier" not in query
    verifier = client.session[f"_state_sso_{query['state'][0]}"]["data"]["code_verifier"]
    assert len(verifier) >= 43
    assert verifier not in caplog.text


def test_sign_in_lands_on_the_page_asked_for(client, sso):
    sso.set_user("dana", "idp-devops", email="dana@corp.example")
    answer = sign_in_with_client(client, "dana", next_url="/queue/")
    assert answer.status_code == 302 and answer["Location"] == "/queue/"
    assert signed_in_as(client) == "dana"
    assert list(User.objects.get(username="dana").groups.values_list("name", flat=True)) == [
        "DevOps"
    ]


def test_an_existing_account_is_found_by_email_and_keeps_its_other_groups(client, sso):
    ce = make_user("ce", "CE")  # seed_demo's ce@example.com
    ce.groups.add(Group.objects.create(name="Auditors"))
    sso.set_user("carol.e", "idp-ce", "idp-managers", email="ce@example.com")
    sign_in_with_client(client, "carol.e")
    assert signed_in_as(client) == "ce"
    assert set(ce.groups.values_list("name", flat=True)) == {"CE", "Managers", "Auditors"}
    assert not User.objects.filter(username="carol.e").exists()


def test_an_answer_used_twice_is_refused_the_second_time(client, sso, caplog):
    sso.set_user("dana", "idp-devops")
    start = client.get("/oidc/login/")
    callback = provider_round_trip(start["Location"], "dana")
    assert client.get(callback)["Location"] == "/"
    message = refusal(client.get(callback), client)
    assert "could not be matched to this browser" in message
    assert "state mismatch" in caplog.text


def test_a_state_this_browser_never_started_is_refused(client, sso):
    message = refusal(client.get("/oidc/callback/?code=stolen&state=forged"), client)
    assert "could not be matched to this browser" in message


def test_a_provider_error_is_refused_with_its_code(client, sso, caplog):
    start = client.get("/oidc/login/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    answer = client.get(
        "/oidc/callback/", {"error": "access_denied", "error_description": "no", "state": state}
    )
    assert "refused the sign-in (access_denied)" in refusal(answer, client)
    assert "provider error access_denied" in caplog.text


def test_a_provider_that_does_not_answer_is_said_so(client, sso, settings):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}/o"
    assert "could not be reached" in refusal(client.get("/oidc/login/"), client)


def test_a_superuser_with_no_mapped_group_may_enter_and_a_deactivated_account_may_not(client, sso):
    make_user("admin", superuser=True)
    sso.set_user("root", email="admin@example.com")
    assert sign_in_with_client(client, "root")["Location"] == "/"
    assert signed_in_as(client) == "admin"
    client.logout()

    ce = make_user("ce", "CE")
    ce.is_active = False
    ce.save()
    sso.set_user("carol", "idp-ce", email="ce@example.com")
    assert "deactivated" in refusal(sign_in_with_client(client, "carol"), client)


def test_no_sso_pages_without_the_settings(client):
    assert client.get("/oidc/login/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with SSO" not in client.get("/login/").content.decode()
