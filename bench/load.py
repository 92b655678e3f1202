"""Load test: N requests (default 100,000), 10N history events and ~1,000 instances in a database
of its own (bench/common.py's loader, as bench/pages.py loads them), the portal served by gunicorn
as docker-compose.yml's web service runs it (3 workers, DEBUG off, collected static files), and
50 simulated people of every role (CE, Sales, CE Leadership, Tech Review, Managers, DevOps; locust,
bench/loadtest/locustfile.py) signing in through the sign-in form, then reading the main pages
and the JSON API with 1-3 s of think time. Measured once all have signed in, for --duration
seconds: each endpoint's median and p95, the errors, the throughput, and the CPU the portal and
the machine's other work used meanwhile; then each endpoint once more alone, one request at a
time, to tell a slow page from a busy machine. Sign-ins (a deliberately slow password hash each)
are reported on their own. Goal (issue 16): p95 under 300 ms over the pages and API, and no
errors in the whole run. Writes bench/results-load.md.

    make bench            # or: python bench/load.py [--requests N] [--duration 60] [--keep]
"""

import argparse
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import common
import requests as http
from common import Processes, descendants, gunicorn, machine, production_settings, setup

parser = argparse.ArgumentParser()
parser.add_argument("--requests", type=int, default=100_000)
parser.add_argument("--events-per-request", type=int, default=10)
parser.add_argument("--days", type=int, default=180)
parser.add_argument("--instances", type=int, default=1000)
parser.add_argument("--keep", action="store_true", help="reuse the rows an earlier run loaded")
parser.add_argument("--users", type=int, default=50, help="simulated people")
parser.add_argument("--spawn-rate", type=float, default=10, help="people starting a second")
parser.add_argument("--duration", type=float, default=60, help="seconds measured")
parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (production: 3)")
args = parser.parse_args()

GOAL_P95_MS = 300
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results-load.md"
LOCUSTFILE = BENCH / "loadtest" / "locustfile.py"
ROLES = {  # locust's user classes, and the role each plays
    "CE": "CE",
    "Sales": "Sales",
    "CELeadership": "CE Leadership",
    "TechReview": "Tech Review",
    "Managers": "Managers",
    "DevOps": "DevOps",
}

production_settings()
setup("bench_load")

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts import tokens  # noqa: E402
from accounts.models import ApiToken  # noqa: E402
from provisioning.models import Instance  # noqa: E402
from requests_app.models import Event, Request  # noqa: E402


def data():
    """The rows, loaded anew unless --keep finds those of an earlier run; (seconds, events)."""
    kept = Instance.objects.filter(slug__startswith="bench-i").count() == args.instances
    if args.keep and kept and Request.objects.count() == args.requests:
        return 0.0, Event.objects.count()
    common.reset()
    ids = common.people()
    seconds, _, events = common.load(
        args.requests, ids, timezone.now(), args.days, args.events_per_request
    )
    started = time.perf_counter()
    common.instances(args.instances)
    return seconds + time.perf_counter() - started, events


def cast(folder):
    """The people who sign in: bench/common.py's, with one password (hashed once, as it takes a
    deliberate while) and a fresh API token each; written for the locustfile."""
    password = secrets.token_urlsafe(16)
    User = get_user_model()
    people = User.objects.filter(username__in=common.people()).prefetch_related("groups")
    User.objects.filter(pk__in=[p.pk for p in people]).update(password=make_password(password))
    roles = {}
    for person in people:
        ApiToken.objects.filter(user=person, name="bench-load").delete()
        _, key = tokens.create(person, "bench-load")
        for group in person.groups.all():
            roles.setdefault(group.name, []).append({"username": person.username, "token": key})
    missing = set(ROLES.values()) - set(roles)
    if missing:
        raise SystemExit(f"no one holds {', '.join(sorted(missing))}")
    path = Path(folder) / "cast.json"
    path.write_text(
        json.dumps(
            {
                "password": password,
                "requests": args.requests,
                "instances": args.instances,
                "roles": roles,
            }
        )
    )
    return path


class CpuMeter(threading.Thread):
    """Twice a second, the CPU time the machine and each process has used so far (/proc; on a
    machine without it, nothing), and which PostgreSQL backends serve this database (their
    command line names it), so that the measured stretch can say how busy the cores were and
    how much of that was the portal's: the machine may have other work. A process that exits
    between two samples loses its last half second (counted as other work)."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, database):
        super().__init__(daemon=True)
        self.database = f" {database} "
        self.samples = []
        self.postgres = set()
        self.done = threading.Event()

    def run(self):
        while Path("/proc/stat").exists() and not self.done.wait(0.5):
            self.samples.append(self.read())

    def stop(self):
        self.done.set()
        self.join()

    def read(self):
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
        idle = fields[3] + fields[4]
        ticks = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        comm, after = stat.read().rsplit(")", 1)
                    ticks[int(entry)] = int(after.split()[11]) + int(after.split()[12])
                    if comm.endswith("(postgres"):
                        with open(f"/proc/{entry}/cmdline") as cmdline:
                            if self.database in cmdline.read():
                                self.postgres.add(int(entry))
                except (OSError, IndexError, ValueError):
                    continue
        return time.time(), sum(fields) - idle, ticks

    def between(self, start, end, groups):
        """(seconds, cores busy, {group: cores}) from the first sample at `start` or after to
        the last at `end` or before; `groups` names sets of pids."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        seconds = inside[-1][0] - inside[0][0]
        first, last = dict(inside[0][2]), {}
        for _, _, ticks in inside:
            last.update(ticks)  # a process that exited: as last seen
        used = {
            name: sum(last.get(p, 0) - first.get(p, 0) for p in pids) / self.TICK / seconds
            for name, pids in groups.items()
        }
        return seconds, (inside[-1][1] - inside[0][1]) / self.TICK / seconds, used


def swarm(processes, url, cast_path):
    """The locustfile in a process of its own (gevent patches what it imports); its record,
    with the pids of gunicorn's processes and locust's."""
    out = processes.folder / "requests.json"
    cmd = [sys.executable, str(LOCUSTFILE), "--host", url, "--cast", str(cast_path)]
    cmd += ["--out", str(out), "--users", str(args.users), "--spawn-rate", str(args.spawn_rate)]
    cmd += ["--duration", str(args.duration)]
    proc = processes.start("locust", cmd)
    limit = args.duration + 180 + args.users / args.spawn_rate
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        tail = processes.tail("locust")
        raise SystemExit(f"locust did not finish in {limit:.0f} s:\n{tail}") from None
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"locust exited with {proc.returncode}:\n{processes.tail('locust')}")
    record = json.loads(out.read_text())
    web = next(p.pid for name, p in processes.started if name == "gunicorn")
    record["pids"] = {"gunicorn": [web, *descendants(web)], "locust": [proc.pid]}
    return record


# What bench/loadtest/locustfile.py's endpoint names stand for, to ask for one of each alone.
EXAMPLES = {"[slug]": "bench-i1", "[customer]": "Customer+042"}
SIGNING_IN = ("sign-in form", "sign in")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def signed_in(url, username, password, key):
    """A session of `username`, signed in through the form, with the API token as well."""
    session = http.Session()
    form = session.get(f"{url}/login/")
    body = {"username": username, "password": password}
    body["csrfmiddlewaretoken"] = CSRF.search(form.text).group(1)
    answer = session.post(f"{url}/login/", data=body, allow_redirects=False)
    if answer.status_code != 302:
        raise SystemExit(f"{username} could not sign in: {answer.status_code}")
    session.headers["Authorization"] = f"Token {key}"
    return session


def alone(url, record, cast_path, repeat=3):
    """Each endpoint the people used, asked for once they have gone: one request at a time, as
    someone who used it, the median of `repeat` after one more (ms); what it costs without the
    load (the machine's other work aside)."""
    people = json.loads(Path(cast_path).read_text())
    keys = {p["username"]: p["token"] for group in people["roles"].values() for p in group}
    examples = {**EXAMPLES, "[id]": str(max(1, args.requests // 2))}
    sessions, times = {}, {}
    for name in sorted({s["name"] for s in record["samples"]} - set(SIGNING_IN)):
        username = next(s["username"] for s in record["samples"] if s["name"] == name)
        if username not in sessions:
            sessions[username] = signed_in(url, username, people["password"], keys[username])
        path = name
        for placeholder, value in examples.items():
            path = path.replace(placeholder, value)
        spent = []
        for _ in range(repeat + 1):
            started = time.perf_counter()
            answer = sessions[username].get(url + path, allow_redirects=False)
            spent.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"{path} as {username}: {answer.status_code}")
        times[name] = statistics.median(spent[1:])
    return times


def connection_pid():
    """This process's own PostgreSQL backend, which is not the portal's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def p95(times):
    """The nearest-rank 95th percentile: 95% of the times are at most this."""
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


def row(name, samples, by_itself=None):
    times = [s["ms"] for s in samples]
    errors = sum(1 for s in samples if s["error"])
    return (
        f"| {name} | {len(samples):,} | {errors} | {statistics.median(times):.0f} | "
        f"{p95(times):.0f} | {max(times):.0f} | "
        + ("" if by_itself is None else f"{by_itself:.0f}")
        + " |"
    )


def main():
    load_before = os.getloadavg()
    seconds, events = data()
    print(
        f"{'kept' if not seconds else 'loaded'} {args.requests:,} requests, {events:,} events, "
        f"{args.instances:,} instances" + (f" in {seconds:.1f} s" if seconds else "")
    )
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        with Processes(folder) as processes:
            cast_path = cast(folder)
            url = gunicorn(processes, args.workers)
            print(f"gunicorn ({args.workers} workers) at {url}; {args.users} people, measuring...")
            load_start = os.getloadavg()
            meter = CpuMeter(connection.settings_dict["NAME"])
            meter.start()
            try:
                record = swarm(processes, url, cast_path)
            finally:
                meter.stop()
            load_end = os.getloadavg()
            by_itself = alone(url, record, cast_path)

    samples = record["samples"]
    steady = [
        s
        for s in samples
        if s["name"] not in SIGNING_IN and record["steady_from"] <= s["start"] < record["steady_to"]
    ]
    measured = record["steady_to"] - record["steady_from"]
    errors = [s for s in samples if s["error"]]
    names = sorted({s["name"] for s in steady})
    lines = [
        f"# Load test ({args.requests:,} requests, {events:,} events, {args.instances:,} "
        f"instances; {args.users} people)",
        "",
        f"Machine: {machine()}. Load average (1 min) {load_before[0]:.2f} at the start, "
        f"{load_start[0]:.2f} when the people started, {load_end[0]:.2f} at the end: the "
        "machine's other work shares its cores with the portal, PostgreSQL and locust.",
        "",
        f"gunicorn with {args.workers} workers (docker-compose.yml's web), DEBUG off, on "
        f"PostgreSQL; locust {args.users} people "
        + ", ".join(f"{ROLES[k]} {v}" for k, v in record["users"].items())
        + f", started {args.spawn_rate:g} a second, each waiting 1-3 s between steps. Measured "
        f"for {measured:.0f} s from when the last had signed in"
        + ("" if record["all_signed_in"] else " (NOT all signed in: measured from the timeout)")
        + ". Times in ms, from the request sent to the last byte read; `alone`: the same "
        "endpoint asked for after the people have gone, one request at a time (median of 3).",
        "",
        "| endpoint | requests | errors | median | p95 | max | alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        row(name, [s for s in steady if s["name"] == name], by_itself.get(name)) for name in names
    ]
    if steady:
        lines.append(row("**pages and API**", steady))
    for name in SIGNING_IN:  # each person once, before the measured stretch
        if any(s["name"] == name for s in samples):
            lines.append(row(f"{name} (whole run)", [s for s in samples if s["name"] == name]))
    total_p95 = p95([s["ms"] for s in steady])
    throughput = len(steady) / measured if measured > 0 else 0.0
    ok_p95 = bool(steady) and total_p95 < GOAL_P95_MS
    ok_errors = not errors and not record["user_errors"] and record["all_signed_in"]
    lines += [
        "",
        f"Throughput: {throughput:.1f} requests/s over the pages and API ({len(steady):,} in "
        f"{measured:.0f} s); {len(samples):,} requests in the whole run.",
    ]
    groups = {**record["pids"], "PostgreSQL": meter.postgres - {connection_pid()}}
    cpu = meter.between(record["steady_from"], record["steady_to"], groups)
    if cpu and steady:
        seconds, busy, used = cpu
        others = max(0.0, busy - sum(used.values()))
        portal_ms = (used["gunicorn"] + used["PostgreSQL"]) * seconds / len(steady) * 1000
        lines += [
            "",
            f"CPU over the measured stretch, in cores busy of {os.cpu_count()}: {busy:.2f} in "
            f"all; gunicorn {used['gunicorn']:.2f}, its PostgreSQL connections "
            f"{used['PostgreSQL']:.2f}, locust {used['locust']:.2f}, the machine's other work "
            f"{others:.2f}. The portal (gunicorn and its PostgreSQL) used {portal_ms:.0f} ms of "
            "CPU a request.",
        ]
    lines += [
        "",
        f"- p95 of the pages and API {total_p95:.0f} ms (goal < {GOAL_P95_MS} ms): "
        f"{'pass' if ok_p95 else 'FAIL'}",
        f"- errors in the whole run {len(errors) + len(record['user_errors'])} (goal 0): "
        f"{'pass' if ok_errors else 'FAIL'}",
    ]
    shown = Counter(f"{s['method']} {s['name']}: {s['error']}" for s in errors)
    shown.update(record["user_errors"])
    if shown:
        lines += ["", "Errors:", ""]
        lines += [f"- {count} x {text}" for text, count in sorted(shown.items())[:20]]
    if not ok_p95 and steady:
        slowest = sorted(names, key=lambda n: -p95([s["ms"] for s in steady if s["name"] == n]))
        over = [f"{n} {by_itself[n]:.0f} ms" for n in names if by_itself[n] >= GOAL_P95_MS]
        lines += [
            "",
            f"Slowest at p95: {', '.join(slowest[:3])}. Over {GOAL_P95_MS} ms even alone: "
            + (", ".join(over) if over else "none")
            + ".",
        ]
    common.write_results(RESULTS, "\n".join(lines))
    if not (ok_p95 and ok_errors):
        raise SystemExit(1)


main()
