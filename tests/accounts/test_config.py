"""The sign-in settings are checked when the portal starts, with messages naming the variables."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.config import check_sign_in, parse_role_map
from portal import roles
from tests.portal.test_settings import manage

SSO = {
    "OIDC_ISSUER": "https://idp.example.com",
    "OIDC_CLIENT_ID": "portal",
    "OIDC_CLIENT_SECRET": "s",
}
A_MAP = {"devops": ("DevOps",)}


def test_the_role_map_is_read_as_written():
    parsed = parse_role_map(
        "devops=DevOps, ce-team = CE,leads=ce leadership,leads=Tech Review,role=mgr=Managers",
        roles.ALL_ROLES,
    )
    assert parsed == {
        "devops": ("DevOps",),
        "ce-team": ("CE",),
        "leads": ("CE Leadership", "Tech Review"),  # spelled as the portal spells it
        "role=mgr": ("Managers",),  # the portal group is after the last "="
    }
    assert parse_role_map(None, roles.ALL_ROLES) == {}


@pytest.mark.parametrize(
    "text, words",
    [
        ("devops=Devs", "'Devs' (for 'devops') is not a portal group"),
        ("devops", "'devops' is not of the form idp-group=Portal Group"),
        ("=DevOps", "not of the form"),
        ("devops=", "not of the form"),
    ],
)
def test_a_role_map_that_cannot_work_names_the_variable(text, words):
    with pytest.raises(ImproperlyConfigured, match="OIDC_ROLE_MAP") as raised:
        parse_role_map(text, roles.ALL_ROLES)
    assert words in str(raised.value)


def test_sso_is_on_with_all_three_credentials_and_a_role_map():
    assert check_sign_in(SSO, scopes="openid email", role_map=A_MAP, password_login=False)
    assert not check_sign_in({}, scopes="openid", role_map={}, password_login=True)


@pytest.mark.parametrize(
    "oidc, scopes, role_map, password_login, words",
    [
        (
            {"OIDC_ISSUER": "https://idp"},
            "openid",
            A_MAP,
            True,
            "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET must be set",
        ),
        (SSO, "email profile", A_MAP, True, "OIDC_SCOPES='email profile' must include openid"),
        (SSO, "openid", {}, True, "OIDC_ROLE_MAP must be set"),
        ({}, "openid", {}, False, "PASSWORD_LOGIN=false"),
    ],
)
def test_sign_in_settings_that_cannot_work_stop_the_start(
    oidc, scopes, role_map, password_login, words
):
    with pytest.raises(ImproperlyConfigured) as raised:
        check_sign_in(oidc, scopes=scopes, role_map=role_map, password_login=password_login)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    "env, words",
    [
        (
            {**SSO, "OIDC_ROLE_MAP": "idp-devops=DevOps,idp-x=Admins"},
            "OIDC_ROLE_MAP: 'Admins' (for 'idp-x') is not a portal group",
        ),
        ({"PASSWORD_LOGIN": "false"}, "PASSWORD_LOGIN=false turns the password form off"),
    ],
)
def test_the_portal_does_not_start_with_them(env, words):
    result = manage("check", **env)
    assert result.returncode != 0
    assert words in result.stderr
