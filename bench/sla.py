"""SLA benchmark: 100,000 open requests in PostgreSQL, then
(a) recompute every open timer after a closure is added (goal < 10 s),
(b) one sweep when nothing is due (goal < 50 ms) and when 1% is due (goal < 1 s).

    make bench            # or: python bench/sla.py [--requests N]
"""

import argparse
import random
import statistics
import time
from datetime import timedelta

from common import setup

parser = argparse.ArgumentParser()
parser.add_argument("--requests", type=int, default=100_000)
args = parser.parse_args()
setup("bench_sla")

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
    reset()
    people = users()
    now = timezone.now()
    load_seconds = load(args.requests, people, now)
    print(f"loaded {args.requests:,} open requests in {load_seconds:.1f} s")

    next_working = timezone.localdate(now) + timedelta(days=1)
    while not sla_policies.get_calendar().is_working_day(next_working):
        next_working += timedelta(days=1)
    Closure.objects.create(date=next_working, reason="benchmark closure")
    missed = []
    seconds, changed = timed(timers.recompute_open)
    print(f"(a) recompute after a closure: {seconds:.2f} s for {changed:,} timers (goal < 10 s)")
    if seconds >= 10:
        missed.append("recompute")

    seconds, sent = timed(lambda: sweep.run(now), repeat=5)
    print(f"(b) sweep, nothing due: {seconds * 1000:.1f} ms, sent {sent} (goal < 50 ms)")
    if seconds >= 0.05:
        missed.append("sweep, nothing due")

    due = list(Request.objects.order_by("id").values_list("id", flat=True)[: args.requests // 100])
    # Due five minutes ago: past the breach instant the sweep reads, and past the warning.
    Request.objects.filter(id__in=due).update(
        resolution_due_at=now - timedelta(minutes=5),
        resolution_breach_at=now - timedelta(minutes=5),
        resolution_warn_at=now - timedelta(days=1),
    )
    seconds, sent = timed(lambda: sweep.run(now))
    print(f"(b) sweep, 1% due: {seconds * 1000:.0f} ms, sent {sent} (goal < 1 s)")
    if seconds >= 1 or not sent:
        missed.append("sweep, 1% due" + ("" if sent else ": nothing sent"))
    seconds, again = timed(lambda: sweep.run(now), repeat=3)
    print(f"    next sweep: {seconds * 1000:.1f} ms, sent {again} (every alert went once)")
    if any(again.values()):
        missed.append("an alert went twice")
    reset()
    if missed:
        print("goals missed: " + ", ".join(missed))
        raise SystemExit(1)


main()
