"""PASSWORD_LOGIN and PASSWORD_LOGIN_SUPERUSERS on the portal's sign-in page and the admin's."""

import pytest

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def sso_on(settings):
    # Rendering the sign-in page does not talk to the provider: no provider needed here.
    settings.OIDC_ISSUER = "https://idp.example.com"
    settings.OIDC_CLIENT_ID = "portal"
    settings.OIDC_CLIENT_SECRET = "secret"
    settings.OIDC_ROLE_MAP = {"idp-devops": ("DevOps",)}


@pytest.fixture
def passwords_off(settings, sso_on):
    settings.PASSWORD_LOGIN = False


@pytest.fixture
def superusers_only(settings, passwords_off):
    settings.PASSWORD_LOGIN_SUPERUSERS = True


def signed_in(client):
    return "_auth_user_id" in client.session


def sign_in(client, username, path="/login/"):
    return client.post(path, {"username": username, "password": PASSWORD})


def test_by_default_the_password_form_is_there_and_no_sso_button(client):
    make_user("ce", "CE")
    page = client.get("/login/").content.decode()
    assert 'name="password"' in page
    assert "Sign in with SSO" not in page
    assert sign_in(client, "ce").status_code == 302
    assert signed_in(client)


def test_with_sso_set_up_the_page_offers_both(client, sso_on):
    page = client.get("/login/?next=/queue/").content.decode()
    assert 'href="/oidc/login/?next=%2Fqueue%2F"' in page
    assert 'name="password"' in page


def test_password_login_off_hides_the_form_and_refuses_a_password_sent_anyway(
    client, passwords_off
):
    make_user("ce", "CE")
    make_user("admin", superuser=True)
    page = client.get("/login/").content.decode()
    assert 'name="password"' not in page
    assert "Sign in with SSO" in page
    for who in ("ce", "admin"):
        refused = sign_in(client, who)
        assert refused.status_code == 403
        assert "Password sign-in is turned off" in refused.content.decode()
        assert not signed_in(client)


def test_superusers_may_keep_the_password_and_no_one_else_even_with_the_right_one(
    client, superusers_only
):
    make_user("ce", "CE")
    make_user("admin", superuser=True)
    page = client.get("/login/").content.decode()
    assert "Administrator sign-in with a password" in page
    assert 'name="password"' in page

    refused = sign_in(client, "ce")
    assert refused.status_code == 200
    assert "kept for administrators (superusers) only" in refused.content.decode()
    assert not signed_in(client)

    wrong = client.post("/login/", {"username": "admin", "password": "wrong"})
    assert "Please enter a correct username and password" in wrong.content.decode()
    assert sign_in(client, "admin").status_code == 302
    assert signed_in(client)


def test_the_admin_sign_in_follows_the_same_rule(client, settings, passwords_off):
    make_user("admin", superuser=True)
    answer = client.get("/admin/login/?next=/admin/auth/user/")
    assert answer.status_code == 302
    assert answer["Location"] == "/login/?next=%2Fadmin%2Fauth%2Fuser%2F"
    refused = sign_in(client, "admin", "/admin/login/")
    assert refused.status_code == 302 and refused["Location"] == "/login/"
    assert not signed_in(client)

    settings.PASSWORD_LOGIN_SUPERUSERS = True
    staff = make_user("staff")
    staff.is_staff = True
    staff.save()
    refused = sign_in(client, "staff", "/admin/login/")
    assert "kept for administrators (superusers) only" in refused.content.decode()
    assert not signed_in(client)
    assert sign_in(client, "admin", "/admin/login/").status_code == 302
    assert signed_in(client)
