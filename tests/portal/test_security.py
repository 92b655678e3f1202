"""Security hardening: the sign-in rate limit (django-axes) and the audit log of sign-ins."""

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from audit.client import client_ip
from audit.models import Outcome, SignInEvent
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from tests.factories import PASSWORD, make_user

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


# -- sign-in rate limit ---------------------------------------------------------------------------


def sign_in(client, username, password, ip="10.1.2.3", path="/login/"):
    return client.post(
        path,
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
        HTTP_USER_AGENT="pytest-browser/1.0",
    )


def test_five_failures_lock_a_username_out_for_fifteen_minutes(client, users):
    assert settings.AXES_FAILURE_LIMIT == 5
    for attempt in range(4):
        response = sign_in(client, "lead", "wrong", ip=f"10.0.0.{attempt}")
        assert (
            response.status_code == 200 and b"Please enter a correct username" in response.content
        )
    # The fifth failure locks the username, whatever the address.
    locked = sign_in(client, "lead", "wrong", ip="10.0.0.4")
    assert locked.status_code == 429
    assert b"Sign-in locked" in locked.content and b"15 minutes" in locked.content
    refused = sign_in(client, "lead", PASSWORD, ip="10.9.9.9")
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    # Someone else from another address still signs in.
    assert sign_in(client, "ce", PASSWORD, ip="10.8.8.8").status_code == 302
    client.logout()
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert sign_in(client, "lead", PASSWORD, ip="10.9.9.9").status_code == 302


def test_five_failures_lock_an_address_out_whatever_the_usernames(client, users):
    for name in ["ce", "sales", "nobody", "manager", "reviewer"]:
        sign_in(client, name, "wrong", ip="192.0.2.7")
    response = sign_in(client, "lead", PASSWORD, ip="192.0.2.7")
    assert response.status_code == 429 and b"Sign-in locked" in response.content
    assert sign_in(client, "lead", PASSWORD, ip="192.0.2.8").status_code == 302


def test_a_success_resets_the_count(client, users):
    for _ in range(4):
        sign_in(client, "lead", "wrong")
    assert sign_in(client, "lead", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert sign_in(client, "lead", "wrong").status_code == 200
    assert sign_in(client, "lead", PASSWORD).status_code == 302


def test_the_admin_login_is_rate_limited_too(client, users):
    for _ in range(5):
        sign_in(client, "admin", "wrong", path="/admin/login/")
    response = sign_in(client, "admin", PASSWORD, path="/admin/login/")
    assert response.status_code == 429


def test_token_auth_and_test_client_login_are_untouched(client, users):
    for _ in range(6):
        sign_in(client, "lead", "wrong", ip="127.0.0.1")
    assert sign_in(client, "lead", PASSWORD, ip="127.0.0.1").status_code == 429
    # The API's token authentication never goes through the sign-in backends.
    token = Token.objects.create(user=users["lead"])
    api = APIClient(REMOTE_ADDR="127.0.0.1")
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get("/api/v1/requests/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert api.get("/api/v1/requests/").status_code == 401
    # Code that signs in without a request (the test client's login) is not rate-limited.
    assert client.login(username="ce", password=PASSWORD)


# -- the audit log --------------------------------------------------------------------------------


def test_sign_ins_sign_outs_and_failures_are_recorded(client, users):
    sign_in(client, "lead", "wrong", ip="198.51.100.1")
    sign_in(client, "ghost", "wrong", ip="198.51.100.2")
    sign_in(client, "lead", PASSWORD, ip="198.51.100.3")
    client.post("/logout/", REMOTE_ADDR="198.51.100.3", HTTP_USER_AGENT="pytest-browser/1.0")
    rows = list(
        SignInEvent.objects.order_by("id").values_list("outcome", "username", "user", "ip_address")
    )
    lead = users["lead"].pk
    assert rows == [
        (Outcome.FAILED, "lead", lead, "198.51.100.1"),
        (Outcome.FAILED, "ghost", None, "198.51.100.2"),
        (Outcome.SIGNED_IN, "lead", lead, "198.51.100.3"),
        (Outcome.SIGNED_OUT, "lead", lead, "198.51.100.3"),
    ]
    event = SignInEvent.objects.order_by("id").first()
    assert event.user_agent == "pytest-browser/1.0" and event.path == "/login/"
    assert event.at <= timezone.now()


def test_a_lockout_is_recorded(client, users):
    for _ in range(6):
        sign_in(client, "lead", "wrong")
    outcomes = list(SignInEvent.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == [Outcome.FAILED] * 4 + [Outcome.LOCKED_OUT] * 2


@pytest.mark.parametrize(
    "who,status", [("devops", 200), ("admin", 200), ("ce", 403), ("manager", 403)]
)
def test_the_audit_page_is_for_devops_and_superusers(client, users, who, status):
    client.force_login(users[who])
    assert client.get(reverse("audit_log")).status_code == status


def test_the_audit_page_needs_a_sign_in(client, db):
    response = client.get(reverse("audit_log"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_audit_page_lists_and_filters_the_events(client, users):
    sign_in(client, "lead", "wrong", ip="203.0.113.5")
    sign_in(client, "ce", PASSWORD, ip="203.0.113.6")
    client.logout()
    client.force_login(users["devops"])
    html = client.get(reverse("audit_log")).content.decode()
    # failed, signed in, signed out, and devops signing in (force_login signs in like a person)
    assert html.count("<tr data-outcome=") == 4
    assert "203.0.113.5" in html and "pytest-browser/1.0" in html
    assert 'href="/audit/"' in html  # in the navigation
    failed = client.get(reverse("audit_log"), {"outcome": "failed"}).content.decode()
    assert failed.count("<tr data-outcome=") == 1 and "203.0.113.5" in failed
    by_ip = client.get(reverse("audit_log"), {"q": "203.0.113.6"}).content.decode()
    assert by_ip.count('<tr data-outcome="signed_in"') == 1
    by_name = client.get(reverse("audit_log"), {"q": "LEAD"}).content.decode()
    assert by_name.count("<tr data-outcome=") == 1


def test_ce_sees_no_audit_entry_in_the_navigation(client, users):
    client.force_login(users["ce"])
    assert b'href="/audit/"' not in client.get("/").content


@pytest.mark.parametrize(
    "proxies,forwarded,expected",
    [
        (0, "203.0.113.9", "10.0.0.1"),
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # the client wrote 1.2.3.4 itself
        (2, "1.2.3.4, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (1, "", "10.0.0.1"),
        (1, "not-an-address", "10.0.0.1"),
    ],
)
def test_the_client_address_behind_trusted_proxies(rf, settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_a_user_made_for_the_test_is_not_locked_by_another_tests_failures(client, db):
    """Attempts live in the database, so each test starts unlocked."""
    make_user("fresh")
    assert sign_in(client, "fresh", PASSWORD, ip="127.0.0.1").status_code == 302
