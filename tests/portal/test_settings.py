"""Settings come from the environment and are parsed strictly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_url

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k3y-" + "x9Qz!" * 12


def manage(*args, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


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
    ],
)
def test_the_portal_refuses_to_start_with_a_malformed_setting(name, value):
    result = manage("check", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_production_requires_secret_key_and_allowed_hosts():
    missing_key = manage("check", DJANGO_DEBUG="false", ALLOWED_HOSTS="portal.example.com")
    assert missing_key.returncode != 0 and "SECRET_KEY" in missing_key.stderr

    missing_hosts = manage("check", DJANGO_DEBUG="false", SECRET_KEY=GOOD_SECRET, ALLOWED_HOSTS="")
    assert missing_hosts.returncode != 0 and "ALLOWED_HOSTS" in missing_hosts.stderr


def test_deploy_check_reports_no_warning_in_production_mode():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="false",
        SECRET_KEY=GOOD_SECRET,
        ALLOWED_HOSTS="portal.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_tests_run_on_postgresql(db):
    from django.db import connection

    assert connection.vendor == "postgresql", "make test runs the suite against real PostgreSQL"
