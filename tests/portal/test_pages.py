import json
import os
import subprocess
import sys

import pytest
from django.urls import reverse

from tests.factories import PASSWORD


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


@pytest.mark.parametrize("url", ["/", "/jobs/", "/admin/"])
def test_pages_require_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_login_page_and_sign_in(client, users):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b"Sign in" in page.content
    bad = client.post(reverse("login"), {"username": "lead", "password": "wrong"})
    assert bad.status_code == 200 and b"Please enter a correct username" in bad.content
    good = client.post(reverse("login"), {"username": "lead", "password": PASSWORD})
    assert good.status_code == 302
    assert client.get("/").status_code == 200


def test_logout_ends_the_session(client, users):
    login(client, users["ce"])
    assert client.post(reverse("logout")).status_code == 302
    assert client.get("/").status_code == 302


def test_navigation_shows_each_role_its_own_entries(client, users):
    login(client, users["devops"])
    assert b'href="/jobs/"' in client.get("/").content
    client.logout()
    login(client, users["ce"])
    assert b'href="/jobs/"' not in client.get("/").content


@pytest.mark.parametrize(
    "who,status", [("devops", 200), ("admin", 200), ("ce", 403), ("manager", 403)]
)
def test_job_dashboard_is_for_devops_and_superusers(client, users, who, status):
    login(client, users[who])
    assert client.get("/jobs/").status_code == status


def test_healthz_reports_database_and_redis(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_names_redis_when_it_is_down(client, db, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body == {"status": "unavailable", "database": "ok", "redis": "down", "down": ["redis"]}
    # Why goes to the server's log, not to whoever asked: /healthz needs no login.
    assert "ConnectionError" not in response.content.decode()
    assert any("Redis is down: ConnectionError" in record.getMessage() for record in caplog.records)


def test_healthz_says_when_jobs_run_in_process(client, db, settings):
    settings.RQ_INPROCESS = True
    response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content)["redis"] == "in-process (no Redis)"


def test_healthz_names_the_database_when_it_is_down():
    """A portal whose PostgreSQL does not answer: a separate process, so nothing else breaks."""
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/healthz'); print(r.status_code, r.content.decode())"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://portal_health:s3cret-password@127.0.0.1:1/portal",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    status, body = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "503", result.stderr
    assert json.loads(body) == {
        "status": "unavailable",
        "database": "down",
        "redis": "ok",
        "down": ["database"],
    }
    # The connection error names the host, port and user: the log has it, the answer does not.
    assert "portal_health" not in body and "127.0.0.1" not in body
    assert "the database is down: OperationalError" in result.stderr


def test_migrations_are_complete(db):
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_server_error_page_needs_no_database_and_survives_its_own_template(
    rf, db, django_assert_num_queries, monkeypatch
):
    from portal import views

    request = rf.get("/requests/", HTTP_REFERER="http://testserver/queue/")
    with django_assert_num_queries(0):
        response = views.server_error(request)
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and 'href="http://testserver/queue/"' in html

    def broken(name):
        raise ValueError("Missing staticfiles manifest entry")

    monkeypatch.setattr(views.loader, "get_template", broken)
    fallback = views.server_error(request)
    assert fallback.status_code == 500 and b"Something went wrong" in fallback.content


def test_the_api_keeps_djangos_plain_error_answers(client, users):
    client.force_login(users["ce"])
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert b"data-testid" not in response.content
