"""`make run`: its settings (portal/env.py) and its supervisor (runportal), which restarts what
exits, outlives a Redis outage and leaves nothing running when stopped."""

import http.cookiejar
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from rest_framework.authtoken.models import Token

from portal.env import PLAIN_HTTP, local_run_environ, local_secret_key
from portal.management.commands.runportal import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    STABLE_AFTER,
    Child,
    describe_exit,
    processes_below,
)
from requests_app.models import Notification
from requests_app.notifications import RELAY_GRACE
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]

# -- the environment of make run ---------------------------------------------------------------


def test_make_run_makes_its_secret_key_once_and_keeps_it_private(tmp_path):
    var = tmp_path / "var"
    added = local_run_environ(8100, environ={"PORTAL_VAR_DIR": str(var)})
    key = added["SECRET_KEY"]
    assert len(key) >= 50
    keyfile = var / "secret_key"
    assert keyfile.read_text().strip() == key
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    # Later runs reuse it: sessions outlive a restart.
    assert local_run_environ(8100, environ={"PORTAL_VAR_DIR": str(var)})["SECRET_KEY"] == key
    # A key file someone made readable is made private again.
    keyfile.chmod(0o644)
    assert local_secret_key(var) == key
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600


def test_a_damaged_key_file_is_an_error_not_replaced(tmp_path):
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ImproperlyConfigured, match="delete it"):
        local_secret_key(tmp_path)
    assert (tmp_path / "secret_key").read_text() == "short\n"


def test_make_run_is_local_plain_http_with_links_to_its_port(tmp_path):
    added = local_run_environ(8100, environ={"PORTAL_VAR_DIR": str(tmp_path)})
    assert added["ALLOWED_HOSTS"] == "127.0.0.1,localhost,[::1]"
    assert added["PORTAL_BASE_URL"] == "http://127.0.0.1:8100"
    assert {name: added[name] for name in PLAIN_HTTP} == PLAIN_HTTP
    assert "DJANGO_DEBUG" not in added  # off by default


def test_what_the_environment_sets_wins(tmp_path):
    environ = {
        "PORTAL_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "given",
        "PORTAL_BASE_URL": "https://portal.example.com",
        "ALLOWED_HOSTS": "portal.example.com",
        "SECURE_SSL_REDIRECT": "true",
    }
    added = local_run_environ(8100, environ=environ)
    assert set(environ).isdisjoint(added)
    assert not (tmp_path / "secret_key").exists()


def test_the_makefile_gets_the_environment_as_shell_exports(tmp_path):
    env = {"PATH": os.environ["PATH"], "PORTAL_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "portal.env", "local-run", "8100"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shell = subprocess.run(
        ["sh", "-c", result.stdout + '\necho "$PORTAL_BASE_URL $ALLOWED_HOSTS $SECRET_KEY"'],
        capture_output=True,
        text=True,
    )
    key = (tmp_path / "secret_key").read_text().strip()
    assert shell.stdout.split() == ["http://127.0.0.1:8100", "127.0.0.1,localhost,[::1]", key]


LINK_FROM_SETTINGS = """
import django
django.setup()
from requests_app.models import Event, Request
from requests_app.notifications import message_for
request = Request(pk=15, kind="create", customer="Tyrell", instance_slug="tyrell")
print(message_for("new_request", request, Event(action="submit"))[1].splitlines()[-1])
"""


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_make_run_with_port_8100_links_notifications_to_port_8100(tmp_path, how):
    """`PORT=8100 make run` (or `make run PORT=8100`): the Makefile hands its port both to
    runportal and to portal.env, whose PORTAL_BASE_URL the notifications link to."""
    env = {
        "PATH": os.environ["PATH"],
        "PORTAL_VAR_DIR": str(tmp_path),
        **({"PORT": "8100"} if how == "environment" else {}),
    }
    args = [] if how == "environment" else ["PORT=8100"]
    # -n: what `make run` would run, without running it.
    dry = subprocess.run(
        ["make", "-n", "run", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "-m portal.env local-run 8100" in dry.stdout
    assert "runportal --port 8100" in dry.stdout

    # That environment, evaluated as the recipe does, and a notification made under it.
    python = shlex.quote(sys.executable)
    script = f'eval "$({python} -m portal.env local-run 8100)"; exec {python} -c "$LINK"'
    env.update(DJANGO_SETTINGS_MODULE="portal.settings", LINK=LINK_FROM_SETTINGS)
    shell = subprocess.run(
        ["sh", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip() == "http://127.0.0.1:8100/requests/15/"


# -- the supervisor's rules ----------------------------------------------------------------------


def test_restarts_back_off_from_one_second_to_thirty_and_start_over_after_a_good_run():
    child = Child("worker", ["true"])
    delays = [child.backoff(ran_for=0.5) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert FIRST_BACKOFF == 1 and MAX_BACKOFF == 30
    assert child.backoff(ran_for=STABLE_AFTER) == FIRST_BACKOFF


def test_exits_are_described_with_their_signal():
    assert describe_exit(1) == "code 1"
    assert describe_exit(-9) == "code -9 (SIGKILL)"


# -- the supervisor, for real --------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url, headers=None, data=None, timeout=10, opener=None):
    """(status, body) of an HTTP request; (None, reason) when nothing answers."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return None, str(exc)


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds}s: {what}")


def running(pids):
    """pid -> start time of those that run (not zombies): the start time tells a process from a
    later one with the same pid."""
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[pid] = fields[19]
    return found


def children_named(parent, word):
    found = []
    for pid in processes_below(parent, depth=1):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:  # it exited between the listing and this read (a restart under way)
            continue
        if word in cmdline:
            found.append(pid)
    return found


class Portal:
    """`manage.py runportal` with make run's settings, its private Redis and var/ under tmp, on
    the test database; everything it prints goes to a file."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.redis_port = free_port()
        self.var = tmp_path / "var"
        self.log = tmp_path / "runportal.log"
        db = connection.settings_dict
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        env = {
            name: value
            for name, value in os.environ.items()
            if name
            not in {
                "REDIS_URL",
                "SANDBOX_COMPUTE_URL",
                "RQ_INPROCESS",
                "DJANGO_ALLOW_ASYNC_UNSAFE",
                "SECRET_KEY",
                "ALLOWED_HOSTS",
                "PORTAL_BASE_URL",
                *PLAIN_HTTP,
            }
        }
        env.update(
            DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}{password}@"
            f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            PORTAL_VAR_DIR=str(self.var),
            PORTAL_PRIVATE_REDIS_PORT=str(self.redis_port),
            EMAIL_URL="console:",
            PROVISIONING_BACKEND="sandbox",
            PYTHONUNBUFFERED="1",
        )
        env.pop("DJANGO_DEBUG", None)
        env.update(local_run_environ(self.port, environ=env))
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "runportal", "--port", str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def answers(self):
        assert self.process.poll() is None, f"runportal exited:\n{self.output()}"
        return get(f"{self.url}/login/")[0] == 200

    def output(self):
        return self.log.read_text(errors="replace")

    def health(self):
        status, body = get(f"{self.url}/healthz")
        return status, json.loads(body) if status else body

    def sign_in(self, username):
        """A browser's session: cookies as a browser keeps them (Secure ones only over HTTPS)."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        status, _ = get(f"{self.url}/login/", opener=opener)
        assert status == 200
        csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
        form = f"csrfmiddlewaretoken={csrf}&username={username}&password={PASSWORD}"
        status, page = get(
            f"{self.url}/login/",
            headers={"Referer": f"{self.url}/login/"},
            data=form.encode(),
            opener=opener,
        )
        assert status == 200 and "Sign out" in page, page[:500]
        return opener

    def file_request(self, token, slug):
        body = {
            "kind": "create",
            "customer": "Runportal Corp",
            "instance": slug,
            "justification": "Filed while the supervisor is watched.",
            "non_standard_reasons": [],
            "access": "public_sso",
            "zone": "us-central1-f",
            "users": 200,
            "repositories": 1500,
        }
        status, answer = get(
            f"{self.url}/api/v1/requests/",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            data=json.dumps(body).encode(),
        )
        assert status == 201, answer
        return json.loads(answer)["id"]

    def stop_for_good(self):
        """Cleanup whatever happened: the portal and everything below it."""
        if self.process is None or self.process.poll() is not None:
            return
        below = processes_below(self.process.pid)
        os.kill(self.process.pid, signal.SIGCONT)
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def notifications_of(request_id):
    return list(Notification.objects.filter(request_id=request_id))


def all_sent(request_id):
    rows = notifications_of(request_id)
    return bool(rows) and all(row.status == "sent" for row in rows)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.django_db(transaction=True)
def test_the_portal_outlives_a_redis_outage_and_stops_clean(tmp_path, users):
    """The supervisor with its private Redis: a killed worker comes back; with Redis killed
    (and the supervisor frozen, so that it stays down) pages and filing still work and the
    notifications wait in the database; once Redis is back they go out; Ctrl-C leaves nothing."""
    ce = users["ce"]
    token = Token.objects.create(user=ce).key
    # The portal checks passwords with its own hashers, not the tests' fast one.
    ce.password = PBKDF2PasswordHasher().encode(PASSWORD, "runportal", iterations=1000)
    ce.save()
    portal = Portal(tmp_path).start()
    try:
        started = time.monotonic()
        wait_until(portal.answers, 90, "the login page answers")
        print(f"runportal answered in {time.monotonic() - started:.1f}s")
        status, page = get(f"{portal.url}/login/")
        assert "Sign in" in page
        # DEBUG is off: WhiteNoise serves the collected, hashed static files.
        css = page.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
        assert css.startswith("/static/portal/portal.") and css.endswith(".css")
        assert get(portal.url + css)[0] == 200
        assert get(f"{portal.url}/no-such-page/")[0] == 404
        assert portal.health() == (200, {"status": "ok", "database": "ok", "redis": "ok"})
        # Plain HTTP: the session cookie is not Secure, so a browser keeps sending it.
        browser = portal.sign_in("ce")
        keyfile = portal.var / "secret_key"
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600

        # Filed with Redis up: the worker sends its mail, which links to the port in use.
        first = portal.file_request(token, "runport-a")
        wait_until(lambda: all_sent(first), 60, "the first request's notifications are sent")
        assert f"{portal.url}/requests/{first}/" in notifications_of(first)[0].body

        # A worker that dies is started again, and the log says which and how.
        (worker,) = children_named(portal.process.pid, "rqworker")
        os.kill(worker, signal.SIGKILL)
        wait_until(
            lambda: children_named(portal.process.pid, "rqworker") not in ([], [worker]),
            15,
            "a new worker",
        )
        wait_until(
            lambda: "worker exited with code -9 (SIGKILL)" in portal.output(),
            15,
            "the supervisor's log line about the worker",
        )

        # Redis dies, and stays down while the supervisor is frozen.
        redis_pid = int((portal.var / "redis" / "redis.pid").read_text())
        os.kill(portal.process.pid, signal.SIGSTOP)
        os.kill(redis_pid, signal.SIGKILL)
        down_at = time.monotonic()
        assert get(f"{portal.url}/login/")[0] == 200
        status, body = portal.health()
        assert status == 503
        assert body == {
            "status": "unavailable",
            "database": "ok",
            "redis": "down",
            "down": ["redis"],
        }
        second = portal.file_request(token, "runport-b")
        filed_at = time.monotonic()
        assert notifications_of(second)
        assert {row.status for row in notifications_of(second)} == {"pending"}
        # Long enough for the relay to take the rows for lost (RELAY_GRACE) - a real outage.
        time.sleep(max(0.0, RELAY_GRACE.total_seconds() + 5 - (time.monotonic() - filed_at)))
        status, page = get(f"{portal.url}/requests/{second}/", opener=browser)
        assert status == 200 and "runport-b" in page
        assert {row.status for row in notifications_of(second)} == {"pending"}

        # The supervisor wakes up: it restarts Redis, then the worker and the scheduler.
        os.kill(portal.process.pid, signal.SIGCONT)
        back_at = wait_until(lambda: portal.health()[0] == 200, 30, "Redis answers again")
        sent_at = wait_until(
            lambda: all_sent(second), 90, "the notifications filed during the outage are sent"
        )
        print(
            f"Redis down {back_at - down_at:.1f}s; notifications sent "
            f"{sent_at - back_at:.1f}s after it came back"
        )
        output = portal.output()
        assert "redis exited with code -9 (SIGKILL)" in output
        assert "Redis answers again" in output
        assert portal.process.poll() is None, "runportal keeps running"
        assert get(f"{portal.url}/login/")[0] == 200

        # Ctrl-C: everything stops, nothing is left.
        below = running(processes_below(portal.process.pid))
        assert len(below) >= 5  # redis, sandbox, web, worker (and its scheduler), cron
        portal.process.send_signal(signal.SIGINT)
        assert portal.process.wait(timeout=40) == 0
        left = {pid for pid, start in running(below).items() if start == below[pid]}
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
        assert get(f"{portal.url}/login/")[0] is None
        assert "Stopped." in portal.output()
    except BaseException:
        print(portal.output()[-6000:])
        raise
    finally:
        portal.stop_for_good()
