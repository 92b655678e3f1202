"""Security hardening: the Content-Security-Policy and pages that need no inline code for it,
the sign-in rate limit (django-axes) and the audit log of sign-ins."""

import base64
import hashlib
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import django_rq
import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.client import client_ip
from audit.models import Outcome, SignInEvent
from requests_app import workflow
from requests_app.forms import FORMS
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.clock  # filing, signing in and acting read the clock

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


# -- Content-Security-Policy ----------------------------------------------------------------------


def policy(response):
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.fixture
def filed(users):
    form = FORMS["create"](
        data={
            "instance": "hooli",
            "customer": "Hooli",
            "access": "public_sso",
            "justification": "x",
        }
    )
    assert form.is_valid(), form.errors
    return workflow.file_request(users["ce"], "create", form.cleaned_data, notify=False)


@pytest.fixture
def queued(users):
    """A create request approved into the DevOps queue: its SLA timers run."""
    form = FORMS["create"](
        data={
            "instance": "initech",
            "customer": "Initech",
            "access": "public_sso",
            "justification": "x",
        }
    )
    assert form.is_valid(), form.errors
    request = workflow.file_request(users["ce"], "create", form.cleaned_data, notify=False)
    return workflow.perform(users["lead"], request.pk, "approve", notify=False)


PAGES = [
    ("login", None, "/login/"),
    ("ce", None, "/"),
    ("ce", None, "/requests/new/create/"),
    ("ce", "filed", "/requests/{pk}/"),
    ("lead", "filed", "/requests/{pk}/"),
    ("ce", "queued", "/requests/{pk}/"),
    ("manager", "queued", "/dashboards/sla/"),
    ("devops", "queued", "/dashboards/board/"),
    ("devops", "queued", "/queue/"),
    ("devops", None, "/audit/"),
    ("admin", None, "/admin/"),
    ("admin", "filed", "/admin/requests_app/request/{pk}/change/"),
]


class InlineCode(HTMLParser):
    """Collects what a strict policy blocks: inline scripts, on* handlers, style attributes."""

    def __init__(self):
        super().__init__()
        self.found = []
        self._in_script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name == "style":
                self.found.append(f"<{tag} style={attrs[name]!r}>")
        if tag == "style":
            self.found.append("<style> element")
        if tag == "script":
            data_only = attrs.get("type") == "application/json"
            self._in_script = None if ("src" in attrs or data_only) else attrs
        for name in ("href", "action", "formaction", "src"):
            if (attrs.get(name) or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")

    def handle_data(self, data):
        if self._in_script is not None and data.strip():
            self.found.append(f"inline script: {data.strip()[:60]!r}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None


def inline_code(html):
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.mark.clock_once("headers and markup, the same on every date")
@pytest.mark.parametrize("who,needs,url", PAGES)
def test_pages_carry_a_strict_policy_and_no_inline_code(client, users, request, who, needs, url):
    if needs:
        url = url.format(pk=request.getfixturevalue(needs).pk)
    if who != "login":
        client.force_login(users[who])
    response = client.get(url)
    assert response.status_code == 200, url
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    html = response.content.decode()
    assert inline_code(html) == [], url
    if needs == "queued" and "sla" not in url:
        assert 'class="timer-fill" width="' in html, url  # the timer bars, drawn without style


def test_the_danger_buttons_confirm_through_a_static_script(client, users, filed):
    client.force_login(users["lead"])
    html = client.get(f"/requests/{filed.pk}/").content.decode()
    assert 'data-confirm="Reject: are you sure?"' in html
    assert "portal/confirm.js" in html
    assert "data-confirm" in (ROOT / "static" / "portal" / "confirm.js").read_text()


def test_no_template_holds_inline_script_or_style():
    """Every <script> in templates/ loads a file or carries JSON data; no on* handlers or style
    attributes (SVG presentation attributes such as fill= are not styles and are allowed)."""
    checked = 0
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", text, re.S):
            attrs, body = match.groups()
            if "src=" in attrs:
                assert body.strip() == "", path
            else:
                assert 'type="application/json"' in attrs, (path, match.group(0)[:80])
            checked += 1
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert not re.search(r"\sstyle\s*=", text), path
        assert "<style" not in text, path
        assert "javascript:" not in text, path
    assert checked >= 4


def test_the_job_dashboards_inline_script_is_the_one_allowed_by_hash(client, users):
    """django-rq's pages carry one inline script (select all rows); the policy allows exactly it
    by its hash. An upgrade of django-rq that changes it fails here: put the new hash in
    settings.DJANGO_RQ_INLINE_SCRIPT_HASH."""
    folder = Path(django_rq.__file__).parent / "templates" / "django_rq"
    hashes = set()
    for path in folder.glob("*.html"):
        for body in re.findall(r"<script[^>]*>(.*?)</script>", path.read_text(), re.S):
            if body.strip():
                digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                hashes.add(f"'sha256-{digest}'")
    assert hashes == {settings.DJANGO_RQ_INLINE_SCRIPT_HASH}
    client.force_login(users["devops"])
    response = client.get("/jobs/queues/0/")
    assert response.status_code == 200
    assert settings.DJANGO_RQ_INLINE_SCRIPT_HASH in policy(response)["script-src"]


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


@pytest.mark.clock_once("address parsing, the same on every date")
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
