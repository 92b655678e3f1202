"""Settings come from the environment and are parsed strictly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_together, env_url

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k3y-" + "x9Qz!" * 12


# What the suite's own environment sets about security (portal.env.suite_environ): left out of
# the portal these tests start, which gets production settings unless a test says otherwise.
SECURITY_VARIABLES = {
    "DJANGO_DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}
PRODUCTION = {"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "portal.example.com"}


def manage(*args, **env):
    """manage.py in a process of its own, with production settings plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in SECURITY_VARIABLES}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**base, **PRODUCTION, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def run_code(code, **env):
    """Python `code` run inside a started portal (manage.py shell), with `env`."""
    return manage("shell", "--no-imports", "-c", code, **env)


def setting_values(*names, **env):
    """The values of settings `names` as a started portal sees them."""
    code = "from django.conf import settings; " + "; ".join(
        f"print(repr(settings.{name}))" for name in names
    )
    result = run_code(code, **env)
    assert result.returncode == 0, result.stderr
    return [eval(line) for line in result.stdout.splitlines()]  # noqa: S307 - our own reprs


@pytest.mark.parametrize(
    "raw,expected", [("true", True), ("0", False), ("Yes", True), ("off", False)]
)
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert env_bool("FLAG", None, environ={"FLAG": raw}) is expected


def test_a_malformed_boolean_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG"):
        env_bool("DJANGO_DEBUG", True, environ={"DJANGO_DEBUG": "maybe"})


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match="PORT='80a0' is not a whole number"):
        env_int("PORT", 8000, environ={"PORT": "80a0"})


@pytest.mark.parametrize("raw", ["mysql://db/portal", "postgres://host:notaport/db", "just-text"])
def test_a_malformed_url_names_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env_url("DATABASE_URL", environ={"DATABASE_URL": raw}, schemes={"postgres", "sqlite"})


@pytest.mark.parametrize("raw", ["console:", "locmem:"])
def test_mail_backends_without_a_host_are_urls_too(raw):
    # docker-compose.yml and the README use EMAIL_URL=console:
    assert env_url("EMAIL_URL", environ={"EMAIL_URL": raw}, schemes={"console", "locmem"}) == raw
    assert setting_values("EMAIL_BACKEND", EMAIL_URL=raw) == [
        f"django.core.mail.backends.{raw[:-1]}.EmailBackend"
    ]


@pytest.mark.parametrize(
    "name,value",
    [
        ("DJANGO_DEBUG", "maybe"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("RQ_DEFAULT_TIMEOUT", "ten"),
        ("DATABASE_URL", "postgres://h:port/x"),
        ("PROVISIONING_BACKEND", "aws"),
        ("SLA_TIMEZONE", "Mars/Olympus"),
        ("SLA_HOLIDAYS", "XX"),
        ("SLACK_API_URL", "slack.com/api"),
    ],
)
def test_the_portal_refuses_to_start_with_a_malformed_setting(name, value):
    result = manage("check", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


SLACK_APP = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APPROVALS_CHANNEL")


def test_the_slack_app_settings_come_all_three_or_none():
    assert env_together(*SLACK_APP, environ={}) is None
    every = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s3",
        "SLACK_APPROVALS_CHANNEL": "C1",
    }
    assert env_together(*SLACK_APP, environ=every) == every
    with pytest.raises(ImproperlyConfigured) as refused:
        env_together(
            *SLACK_APP, environ={"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APPROVALS_CHANNEL": " "}
        )
    assert str(refused.value).startswith("SLACK_SIGNING_SECRET and SLACK_APPROVALS_CHANNEL must be")
    assert "xoxb-1" not in str(refused.value)


def test_a_partial_slack_app_stops_the_start_naming_the_missing_variable():
    result = manage("check", SLACK_BOT_TOKEN="xoxb-secret-token", SLACK_APPROVALS_CHANNEL="C0APPR")
    assert result.returncode != 0
    assert "SLACK_SIGNING_SECRET must be set too" in result.stderr
    assert "xoxb-secret-token" not in result.stderr and "Traceback" not in result.stderr
    # All three: Slack approvals on, Slack's own Web API unless SLACK_API_URL says otherwise.
    assert setting_values(
        "SLACK_APPROVALS",
        "SLACK_API_URL",
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="s3",
        SLACK_APPROVALS_CHANNEL="C0APPR",
        SLACK_API_URL="http://127.0.0.1:9/api",
    ) == [True, "http://127.0.0.1:9/api/"]


def test_slack_approvals_are_off_by_default_and_call_slacks_own_api(settings):
    assert settings.SLACK_APPROVALS is False and settings.SLACK_BOT_TOKEN == ""
    assert settings.SLACK_API_URL == "https://slack.com/api/"


def test_debug_is_off_unless_asked_for():
    assert setting_values("DEBUG") == [False]
    assert setting_values("DEBUG", DJANGO_DEBUG="true") == [True]


def test_production_requires_secret_key_and_allowed_hosts():
    # DEBUG is off by default: no DJANGO_DEBUG at all is production.
    missing_key = manage("check", SECRET_KEY="")
    assert missing_key.returncode != 0 and "SECRET_KEY must be set" in missing_key.stderr
    assert "Traceback" not in missing_key.stderr

    missing_hosts = manage("check", ALLOWED_HOSTS="")
    assert missing_hosts.returncode != 0 and "ALLOWED_HOSTS" in missing_hosts.stderr

    weak_key = manage("check", DJANGO_DEBUG="false", SECRET_KEY="short")
    assert weak_key.returncode != 0 and "SECRET_KEY must be at least 50" in weak_key.stderr


def test_deploy_check_reports_no_warning_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="false")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "no issues" in result.stdout

    # The same with the settings left to their defaults, and with a key being rotated out.
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY_FALLBACKS=OLD_SECRET)
    assert result.returncode == 0, result.stdout + result.stderr


OLD_SECRET = "old-" + "Lq7$Vz" * 10


def test_secret_key_fallbacks_keep_what_the_old_key_signed():
    """Key rotation (docs/operations.md): sessions and signed values made with the old key stay
    valid while it is listed in SECRET_KEY_FALLBACKS, and only then."""
    signed = run_code(
        "from django.core import signing; print(signing.dumps('hello'))", SECRET_KEY=OLD_SECRET
    )
    assert signed.returncode == 0, signed.stderr
    value = signed.stdout.strip()
    check = (
        "from django.core import signing\n"
        "try:\n"
        f"    print(signing.loads({value!r}))\n"
        "except signing.BadSignature:\n"
        "    print('rejected')"
    )
    rotated = run_code(check, SECRET_KEY_FALLBACKS=f"{OLD_SECRET}, ")
    assert rotated.stdout.strip() == "hello", rotated.stderr
    assert run_code(check).stdout.strip() == "rejected"

    assert setting_values("SECRET_KEY_FALLBACKS") == [[]]
    assert setting_values(
        "SECRET_KEY_FALLBACKS", SECRET_KEY_FALLBACKS=f"{OLD_SECRET},{GOOD_SECRET}x"
    ) == [[OLD_SECRET, GOOD_SECRET + "x"]]


def test_a_malformed_fallback_key_stops_the_start_without_showing_it():
    result = manage("check", SECRET_KEY_FALLBACKS=f"{OLD_SECRET},half-a-key")
    assert result.returncode != 0
    assert "SECRET_KEY_FALLBACKS: key 2 is not 50+ characters" in result.stderr
    assert "half-a-key" not in result.stderr and OLD_SECRET not in result.stderr
    assert "Traceback" not in result.stderr


def test_tests_run_on_postgresql(db):
    from django.db import connection

    assert connection.vendor == "postgresql", "make test runs the suite against real PostgreSQL"


def test_the_suite_runs_the_production_settings_over_plain_http(settings):
    """`portal.devservices test-env` (make test) loads the settings with DEBUG off, a throwaway
    key and plain HTTP, as make run does: what the tests pass is what production runs."""
    from portal.env import PLAIN_HTTP, suite_environ

    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE
    assert not settings.SECURE_SSL_REDIRECT and not settings.SESSION_COOKIE_SECURE
    environ = suite_environ()
    assert environ["DJANGO_DEBUG"] == "false" and len(environ["SECRET_KEY"]) >= 50
    assert PLAIN_HTTP.items() <= environ.items()
