"""SLA benchmark: 100,000 open requests in PostgreSQL, then
(a) recompute every open timer after a closure is added, and again after it is removed (goal
    < 10 s each, every timer moved),
(b) one sweep when nothing is due (goal < 50 ms) and when 1% is due (goal < 1 s, each alert
    claimed once). Writes bench/results-sla.md.

    make bench            # or: python bench/sla.py [--requests N]
"""

import argparse
import random
import statistics
import time
from datetime import timedelta
from pathlib import Path

import common
from common import machine, setup

parser = argparse.ArgumentParser()
parser.add_argument("--requests", type=int, default=100_000)
parser.add_argument(
    "--keep", action="store_true", help="reuse the open requests a --keep run left loaded"
)
args = parser.parse_args()
setup("bench_sla")
RESULTS = Path(__file__).resolve().parent / "results-sla.md"

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from portal.worker import preload  # noqa: E402
from requests_app.models import Closure, Request  # noqa: E402
from requests_app.sla import policies as sla_policies  # noqa: E402
from requests_app.sla import sweep, timers  # noqa: E402


def reset():
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE requests_app_notification, requests_app_event, requests_app_approval, "
            "requests_app_comment, requests_app_request, requests_app_closure CASCADE"
        )
    sla_policies.invalidate_cache()


def users():
    User = get_user_model()
    made = {}
    for name, group in (("ce", "CE"), ("devops", "DevOps"), ("manager", "Managers")):
        user, _ = User.objects.get_or_create(username=name, defaults={"email": f"{name}@x.test"})
        user.groups.add(Group.objects.get(name=group))
        made[name] = user
    return made


def load(count, people, now):
    """Open requests picked up within the last two days: responses met, resolutions running."""
    rng = random.Random(7)
    calendar, policies = sla_policies.get_calendar(), sla_policies.load()[1]
    batch, started = [], time.perf_counter()
    for i in range(count):
        queued = now - timedelta(seconds=rng.randint(3600, 2 * 86400))
        request = Request(
            kind="create",
            state="in_progress",
            customer=f"Customer {i}",
            instance_slug=f"bench-{i}",
            requested_by=people["ce"],
            assignee=people["devops"],
            created_at=queued - timedelta(hours=1),
            machine_type="n1-standard-8",
            response_started_at=queued,
            response_stopped_at=queued + timedelta(minutes=30),
            resolution_started_at=queued,
        )
        timers.recompute(request, calendar, policies)
        batch.append(request)
        if len(batch) == 5000:
            Request.objects.bulk_create(batch)
            batch = []
    if batch:
        Request.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE requests_app_request")
    return time.perf_counter() - started


def timed(fn, repeat=1):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main():
    # The sweep runs in a worker that has the URL configuration loaded (portal/worker.py).
    preload()
    now = timezone.now()
    if args.keep and Request.objects.filter(ended_at=None).count() == args.requests:
        print(f"kept the {args.requests:,} open requests loaded")
    else:
        reset()
        load_seconds = load(args.requests, users(), now)
        print(f"loaded {args.requests:,} open requests in {load_seconds:.1f} s")
    with connection.cursor() as cursor:  # as autovacuum leaves a table after a bulk load
        cursor.execute("VACUUM ANALYZE requests_app_request")
    rows = []  # (what, figure, goal, passed)

    next_working = timezone.localdate(now) + timedelta(days=1)
    while not sla_policies.get_calendar().is_working_day(next_working):
        next_working += timedelta(days=1)
    closure = Closure(date=next_working, reason="benchmark closure")
    for change, what in ((closure.save, "is added"), (closure.delete, "is removed again")):
        change()
        seconds, changed = timed(timers.recompute_open)
        rows.append(
            (
                f"recompute every open timer after a closure {what} ({changed:,} moved)",
                f"{seconds:.2f} s",
                "< 10 s",
                seconds < 10 and changed == args.requests,
            )
        )

    seconds, sent = timed(lambda: sweep.run(now), repeat=5)
    rows.append(("sweep, nothing due", f"{seconds * 1000:.1f} ms", "< 50 ms", seconds < 0.05))

    due = list(Request.objects.order_by("id").values_list("id", flat=True)[: args.requests // 100])
    # Due five minutes ago: past the breach instant the sweep reads, and past the warning.
    Request.objects.filter(id__in=due).update(
        resolution_due_at=now - timedelta(minutes=5),
        resolution_breach_at=now - timedelta(minutes=5),
        resolution_warn_at=now - timedelta(days=1),
    )
    seconds, sent = timed(lambda: sweep.run(now))
    rows.append(
        (
            f"sweep, 1% due: {sum(sent.values()):,} alerts claimed and queued",
            f"{seconds * 1000:.0f} ms",
            "< 1 s",
            seconds < 1 and sum(sent.values()) == len(due),
        )
    )
    seconds, again = timed(lambda: sweep.run(now), repeat=3)
    rows.append(
        (
            "the next sweep (every alert went once)",
            f"{seconds * 1000:.1f} ms, {sum(again.values())} sent",
            "none sent",
            not any(again.values()),
        )
    )
    if args.keep:  # leave the rows as loaded for the next run
        Request.objects.filter(id__in=due).update(
            resolution_warned_at=None, resolution_breach_alerted_at=None
        )
        timers.recompute_open()
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE requests_app_notification")
    else:
        reset()
    lines = [
        f"# SLA engine benchmark ({args.requests:,} open requests)",
        "",
        f"Machine: {machine()}.",
        "",
        "| what | figure | goal | pass |",
        "|---|---:|---|---|",
        *[
            f"| {what} | {figure} | {goal} | {'pass' if ok else 'FAIL'} |"
            for what, figure, goal, ok in rows
        ],
    ]
    common.write_results(RESULTS, "\n".join(lines))
    missed = [what for what, _, _, ok in rows if not ok]
    if missed:
        print("goals missed: " + "; ".join(missed))
        raise SystemExit(1)


main()
