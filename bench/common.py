"""Shared set-up of the benchmarks: a PostgreSQL database of their own, migrated; the data of the
page benchmarks (bench/dashboard.py's requests and events, bench/pages.py's instances); and the
processes a benchmark starts (gunicorn as production runs it, bench/run_start.py's worker and
sandbox), stopped at the end however the benchmark ends.

Only `setup()` may come before Django is set up: what reads the database imports it inside."""

import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(suffix="bench", fresh=False):
    """Point Django at `<database>_<suffix>` on the test server, create it (`fresh`: anew, dropped
    first with whatever an earlier run left in it), migrate it."""
    import psycopg

    from portal import devservices

    url = os.environ.get("DATABASE_URL") or devservices.ensure_postgres()
    os.environ.setdefault("REDIS_URL", devservices.ensure_redis(test=True))
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit("the benchmarks need PostgreSQL: set DATABASE_URL or run `make bench`")
    name = f"{parts.path.lstrip('/') or 'portal'}_{suffix}"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return os.environ["DATABASE_URL"]


def other_database(suffix):
    """A connection to `<database>_<suffix>` beside the one setup() made the default, created
    and migrated if need be: serve(it) makes it the default for what follows."""
    import copy

    from django.core.management import call_command
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.utils import load_backend

    default = connections[DEFAULT_DB_ALIAS]
    settings = copy.deepcopy(default.settings_dict)
    base = settings["NAME"].rsplit("_bench_", 1)[0]
    settings["NAME"] = name = f"{base}_{suffix}"
    with default.cursor() as cursor:  # autocommit: CREATE DATABASE runs in no transaction
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    other = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, DEFAULT_DB_ALIAS)
    serve(other)
    try:
        call_command("migrate", verbosity=0)
    finally:
        serve(default)
    return other


def serve(database):
    """Make `database` (a connection) the default one of this thread: the ORM, the views and
    django.db.connection use it from now on."""
    from django.db import DEFAULT_DB_ALIAS, connections

    connections[DEFAULT_DB_ALIAS] = database


def in_turn(first, second, repeat):
    """Medians of `repeat` runs of each, taken in turn (first, second, first, second...) after
    one warm-up of each: the speed of this shared machine drifts by up to a third within a
    minute, and taking all of one then all of the other put the drift into their ratio."""
    first(), second()
    times = ([], [])
    for _ in range(repeat):
        for fn, spent in zip((first, second), times, strict=True):
            started = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


# -- the data of the page benchmarks ----------------------------------------------------------

KINDS = [
    ("create", 18),
    ("suspend", 8),
    ("resume", 7),
    ("teardown", 8),
    ("upgrade", 30),
    ("enable_executors", 9),
    ("feature", 20),
]
HOUR, DAY = 3600.0, 86400.0


def reset():
    from django.db import connection

    from requests_app.sla import policies as sla_policies

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE requests_app_notification, requests_app_comment, requests_app_approval, "
            "requests_app_event, requests_app_request RESTART IDENTITY CASCADE"
        )
    sla_policies.invalidate_cache()


def people():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    made = {}
    names = [("ce", "CE"), ("sales", "Sales"), ("lead", "CE Leadership")]
    names += [("reviewer", "Tech Review"), ("manager", "Managers")]
    names += [(f"devops{i}", "DevOps") for i in range(1, 7)]
    for name, group in names:
        user, _ = User.objects.get_or_create(username=name, defaults={"email": f"{name}@x.test"})
        user.groups.add(Group.objects.get(name=group))
        made[name] = user.pk
    return made


class Story:
    """One request's life, drawn at random: what happened when (epoch seconds), by whom."""

    def __init__(self, i, rng, now, ids, calendar, policies, days=180):
        self.i = i
        self.kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        self.created = now - rng.uniform(0, days * DAY)
        self.by = ids["ce"] if rng.random() < 0.7 else ids["sales"]
        self.customer = f"Customer {rng.randrange(400):03d}"
        self.events = [(self.created, self.by, "submit", "", "pending_approval")]
        self.state = "pending_approval"
        self.assignee = None
        self.ended = self.queued = self.picked = self.done = self.paused_at = None
        self.pauses = []
        self.standard = rng.random() > 0.08
        self.release = None
        self.target_due = None
        self._live(rng, now, ids, calendar)
        self._timers(calendar, policies)

    def step(self, at, by, action, to_state):
        self.events.append((at, by, action, self.state, to_state))
        self.state = to_state

    def _live(self, rng, now, ids, calendar):
        from requests_app.sla import calendar as sla_calendar

        if self.kind == "upgrade":
            self.release = self.created - rng.uniform(0, 2 * DAY)
        at = self.created + rng.lognormvariate(1.1, 0.9) * HOUR  # leadership decides
        if at > now:
            return
        if rng.random() < 0.04:
            self.step(at, ids["lead"], "reject", "rejected")
            self.ended = at
            return
        if not self.standard:
            self.step(at, ids["lead"], "approve", "tech_review")
            at += rng.lognormvariate(3.0, 0.7) * HOUR
            if at > now:
                return
            if rng.random() < 0.1:
                self.step(at, ids["reviewer"], "tech_reject", "rejected")
                self.ended = at
                return
            self.step(at, ids["reviewer"], "tech_approve", "queued")
        else:
            self.step(at, ids["lead"], "approve", "queued")
        self.queued = at
        cancel_at = at + rng.uniform(0, 6 * DAY) if rng.random() < 0.03 else None
        picked = at + rng.lognormvariate(1.6, 1.1) * HOUR
        if picked > now or (cancel_at and cancel_at < picked):
            return self._maybe_cancel(cancel_at, now, ids)
        engineer = ids[f"devops{1 + min(5, int(rng.expovariate(0.5)))}"]
        self.assignee = engineer
        self.picked = picked
        self.step(picked, engineer, "pick_up", "in_progress")
        if self.kind == "feature" and rng.random() < 0.9:
            self.target_due = self.queued + rng.uniform(5, 40) * DAY
            if picked + HOUR < now:
                self.events.append((picked + HOUR, engineer, "set_target", self.state, self.state))
        if rng.random() < 0.15:
            begin = picked + rng.uniform(0.5, 5) * DAY
            end = begin + rng.lognormvariate(0.7, 0.8) * DAY
            if begin < now and not (cancel_at and cancel_at < begin):
                self.step(begin, engineer, "wait_on_customer", "waiting_on_customer")
                if end > now or (cancel_at and cancel_at < end):
                    self.pauses.append([begin, None])
                    self.paused_at = begin
                    return self._maybe_cancel(cancel_at, now, ids)
                self.step(end, engineer, "resume_work", "in_progress")
                self.pauses.append([begin, end])
        if self.kind == "upgrade":
            done = self.release + rng.lognormvariate(1.2, 0.6) * DAY
        else:
            need = rng.lognormvariate(1.75, 0.6) * DAY  # working time, median ~6 working days
            closed = [(b, e) for b, e in self.pauses]
            done = sla_calendar.due_epoch(sla_calendar.WORKING, self.queued, need, calendar, closed)
        done = max(done, picked + HOUR, *(e + HOUR for _, e in self.pauses))
        if done > now or (cancel_at and cancel_at < done):
            return self._maybe_cancel(cancel_at, now, ids)
        self.step(done, engineer, "complete", "done")
        self.done = self.ended = done

    def _maybe_cancel(self, cancel_at, now, ids):
        if cancel_at and cancel_at < now:
            self.step(cancel_at, self.by, "cancel", "cancelled")
            self.ended = cancel_at

    def _timers(self, calendar, policies):
        from requests_app.sla import timers

        self.response_start = None if self.kind == "upgrade" else self.queued
        self.resolution_start = self.release if self.kind == "upgrade" else self.queued
        closed = [(b, e) for b, e in self.pauses if e is not None]
        due = {}
        for which, start, pauses in (
            ("response", self.response_start, []),
            ("resolution", self.resolution_start, closed),
        ):
            due[which] = timers.instants(
                self.kind, which, start, self.target_due, pauses, calendar, policies
            )
        self.due = due


def at(seconds):
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def request_row(story, fields, defaults):
    values = {
        "id": story.i,
        "kind": story.kind,
        "state": story.state,
        "customer": story.customer,
        "instance_slug": f"bench-{story.i}",
        "justification": "Benchmark request.",
        "standard": story.standard,
        "non_standard_reasons": Jsonb([] if story.standard else ["scale"]),
        "created_at": at(story.created),
        "updated_at": at(story.events[-1][0]),
        "machine_type": "n1-standard-8" if story.kind == "create" else "",
        "target_version": "6.1.0" if story.kind == "upgrade" else "",
        "release_published_at": at(story.release),
        "target_due_at": at(story.target_due),
        "requested_by_id": story.by,
        "assignee_id": story.assignee,
        "response_started_at": at(story.response_start),
        "response_stopped_at": at(story.picked if story.response_start else None),
        "response_due_at": at(story.due["response"][0]),
        "response_warn_at": at(story.due["response"][1]),
        "response_breach_at": at(story.due["response"][2]),
        "resolution_started_at": at(story.resolution_start),
        "resolution_stopped_at": at(story.done),
        "resolution_due_at": at(story.due["resolution"][0]),
        "resolution_warn_at": at(story.due["resolution"][1]),
        "resolution_breach_at": at(story.due["resolution"][2]),
        "resolution_pauses": Jsonb(
            [[at(b).isoformat(), at(e).isoformat() if e else None] for b, e in story.pauses]
        ),
        "resolution_paused_at": at(story.paused_at),
        "ended_at": at(story.ended),
    }
    return tuple(values[f] if f in values else defaults[f] for f in fields)


def load(count, ids, now, days=180, events_per_request=10):
    """COPY `count` requests created over the last `days` days and their events (at least
    `events_per_request` each); returns (seconds, requests, events)."""
    from django.db import connection

    from requests_app.models import Request
    from requests_app.sla import policies as sla_policies

    rng = random.Random(20260401)
    calendar, policies = sla_policies.load()
    now_epoch = now.timestamp()
    fields, defaults = [], {}
    for field in Request._meta.concrete_fields:
        fields.append(field.column)
        if not field.primary_key:
            default = field.get_default()
            defaults[field.column] = (
                Jsonb(default) if field.get_internal_type() == "JSONField" else default
            )
    started = time.perf_counter()
    events = 0
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:  # psycopg's own cursor: COPY
        stories = [
            Story(i, rng, now_epoch, ids, calendar, policies, days) for i in range(1, count + 1)
        ]
        # Numbered in the order they were filed, as a live table's rows are: a period's
        # requests sit together on disk, not scattered over the whole table.
        stories.sort(key=lambda story: story.created)
        with cursor.copy(f"COPY requests_app_request ({', '.join(fields)}) FROM STDIN") as copy:
            for i, story in enumerate(stories, start=1):
                story.i = i
                copy.write_row(request_row(story, fields, defaults))
        event_fields = "request_id, at, by_id, action, from_state, to_state, comment, data"
        empty = Jsonb({})
        with cursor.copy(f"COPY requests_app_event ({event_fields}) FROM STDIN") as copy:
            for story in stories:
                history = sorted(story.events, key=lambda e: e[0])
                end = story.ended or now_epoch
                # Comments by the requester fill the history up to the wanted size (they do not
                # stop the response clock, which only a pick-up or a DevOps comment does).
                extra = max(0, events_per_request - len(history))
                for _ in range(extra):
                    when = rng.uniform(story.created, end)
                    history.append((when, story.by, "comment", "", ""))
                for when, by, action, old, new in history:
                    old = old if action != "comment" else ""
                    copy.write_row(
                        (story.i, at(when), by, action, old, new, "Benchmark event.", empty)
                    )
                    events += 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('requests_app_request', 'id'), %s)", [count]
        )
        # As autovacuum keeps a live database: statistics, and the visibility map that lets
        # counts read an index alone (a bulk-loaded table has none until vacuumed).
        cursor.execute("VACUUM ANALYZE requests_app_request")
        cursor.execute("VACUUM ANALYZE requests_app_event")
        # The load's gigabytes written out now, not while the pages are being timed.
        cursor.execute("CHECKPOINT")
    return time.perf_counter() - started, count, events


def instances(count):
    """`count` instances, the requests spread over them (request i on instance i mod count)."""
    from django.db import connection

    from provisioning.models import Instance

    Instance.objects.filter(slug__startswith="bench-i").delete()
    Instance.objects.bulk_create(
        Instance(
            slug=f"bench-i{i}",
            customer=f"Customer {i}",
            status="active",
            gcp_project=f"mi-bench-i{i}",
            version=f"6.{i % 3}.{i % 5}",
            machine_type="n1-standard-8",
        )
        for i in range(count)
    )
    first = Instance.objects.filter(slug="bench-i0").values_list("pk", flat=True).get()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE requests_app_request SET instance_id = %s + (id %% %s)", [first, count]
        )
        cursor.execute("VACUUM ANALYZE requests_app_request")
        cursor.execute("VACUUM ANALYZE provisioning_instance")
        cursor.execute("CHECKPOINT")


def machine():
    """The machine, Python and PostgreSQL the figures were measured on."""
    from django.db import connection

    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.python_implementation()} "
        f"{platform.python_version()}, PostgreSQL {pg}"
    )


# -- the portal's processes --------------------------------------------------------------------

# Production's settings (docker-compose.yml) over plain HTTP on 127.0.0.1, as bench/dashboard.py
# sets them; what the environment already says wins, except DEBUG, which is off.
PRODUCTION = {
    "SECRET_KEY": "bench-" + "k9Vq2xLr7Tz0Wm4Hs8Pd3Nf6Bc1Jy5Ga" * 2,
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
}


def production_settings():
    os.environ["DJANGO_DEBUG"] = "false"
    for name, value in PRODUCTION.items():
        os.environ.setdefault(name, value)
    hosts = [h.strip() for h in os.environ["ALLOWED_HOSTS"].split(",") if h.strip()]
    if "127.0.0.1" not in hosts:  # the servers below answer there
        os.environ["ALLOWED_HOSTS"] = ",".join([*hosts, "127.0.0.1"])


def write_results(path, text):
    """Print the results, write them to `path` (under bench/) and say at which commit."""
    print(text)
    Path(path).write_text(text.rstrip("\n") + "\n")
    print(f"written to {path}")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    print(f"at commit {commit}")


def descendants(pid):
    """Every process below `pid`, read from /proc (RQ's work horse and Terraform run in sessions
    of their own, which a signal to the worker's group does not reach)."""
    children = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Processes:
    """The processes a benchmark starts, each in a session of its own with its output in
    `folder`/<name>.log. Used as a context manager: on the way out, however the benchmark ends
    (an error, Ctrl-C, SIGTERM), each gets SIGTERM, the last started first, and whatever is
    still running after `timeout` seconds is killed with all it started."""

    def __init__(self, folder, timeout=30):
        self.folder = Path(folder)
        self.timeout = timeout
        self.started = []

    def __enter__(self):
        # SIGTERM (a stopped `make bench`) unwinds like Ctrl-C, through this __exit__.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, name, cmd, env=None):
        with open(self.folder / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env or os.environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, proc))
        return proc

    def tail(self, name, lines=25):
        path = self.folder / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_up(self, name, proc, url, seconds=60):
        """Until `url` answers 200; a process that exits first, or never answers, stops the
        benchmark with the end of its log."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "is not up"
                raise SystemExit(f"{name} {why} ({url}); its log:\n{self.tail(name)}")
            time.sleep(0.2)

    def stop(self):
        family = {}
        for _name, proc in reversed(self.started):
            if proc.poll() is None:
                family[proc.pid] = descendants(proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.timeout
        for name, proc in reversed(self.started):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {self.timeout} s: killed", file=sys.stderr)
                for pid in [proc.pid, *family.get(proc.pid, []), *descendants(proc.pid)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
        self.started = []


def gunicorn(processes, workers=3):
    """The portal as docker-compose.yml's `web` service runs it: gunicorn with 3 workers, DEBUG
    off, on a free port of 127.0.0.1 and the benchmark's database (the environment: call
    `production_settings()` and `setup()` first). Its static files first, as the image's build
    collects them (into STATIC_ROOT, the checkout's staticfiles/, which git ignores), so that
    WhiteNoise serves them and pages find their manifest. Returns the URL once /healthz answers."""
    from django.core.management import call_command

    from portal import devservices

    call_command("collectstatic", interactive=False, verbosity=0)
    port = devservices.free_port()
    cmd = [sys.executable, "-m", "gunicorn", "portal.wsgi:application"]
    cmd += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    cmd += ["--access-logfile", str(processes.folder / "access.log")]
    proc = processes.start("gunicorn", cmd)
    url = f"http://127.0.0.1:{port}"
    processes.wait_until_up("gunicorn", proc, f"{url}/healthz")
    return url
