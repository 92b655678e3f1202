"""Scale benchmark (issue 16): cost grows with what a page shows, not with the table. The same
pages timed at N requests (default 100,000, 10 events each) and at 10N (1,000,000 requests,
10,000,000 events), the longer history spread over ten times the days, so that what the pages
show (the open work, the last 90 days) stays the same size. Goal: each page at 10N within 1.5x
of its time at N. The SLA dashboard is timed with its figures computed (the cache emptied before
each visit). Django's test client, DEBUG off, median of --repeat runs. Writes
bench/results-scale.md. Loading 10N takes several minutes.

    make bench            # or: python bench/scale.py [--requests N] [--repeat N]
"""

import time
from pathlib import Path

import common
import dashboard  # noqa: F401  (parses the options, sets Django up on its own database)
from common import machine
from dashboard import args, cold, count_queries, page, timed
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from pages import load_rows, static_files

from requests_app.models import OPEN_STATES, Request  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results-scale.md"
GOAL = 1.5


def measure(size):
    """Load `size` requests over size / N times the days, then time every page."""
    days = round(args.days * size / args.requests)
    seconds, requests, events = load_rows(size, days)
    open_now = Request.objects.filter(state__in=OPEN_STATES).count()
    print(
        f"loaded {requests:,} requests, {events:,} events over {days} days in {seconds:.0f} s "
        f"({open_now:,} open)"
    )
    User = get_user_model()
    manager, devops = Client(), Client()
    manager.force_login(User.objects.get(username="manager"))
    devops.force_login(User.objects.get(username="devops1"))
    # A feature request done weeks ago, with its ten events: the same page at both sizes.
    done = Request.objects.filter(kind="feature", state="done").order_by("-created_at")
    ended = list(done.values_list("pk", flat=True)[:500])[-1]  # the 500th, or the oldest
    cases = [
        ("home", manager, "/", None),
        ("request list page", manager, "/requests/", None),
        ("request list API", manager, "/api/v1/requests/", None),
        ("request detail page", manager, f"/requests/{ended}/", None),
        ("request detail API", manager, f"/api/v1/requests/{ended}/", None),
        ("DevOps queue", devops, "/queue/", None),
        ("DevOps board", devops, "/dashboards/board/", None),
        ("SLA dashboard, 90 days (computed)", manager, "/dashboards/sla/", cold),
        ("SLA summary API (computed)", manager, "/api/v1/sla/summary/", cold),
    ]
    found = {}
    for name, client, url, wrap in cases:
        get = wrap(page(client, url)) if wrap else page(client, url)
        # Counted after a visit, at both sizes: the SLA calendar is kept for 30 s, and loading
        # the larger table took longer than that, so a cold count held its two queries.
        get()
        queries, response = count_queries(get)
        seconds, _ = timed(get, args.repeat)
        found[name] = (seconds, queries, len(response.content))
        print(f"  {name:36} {seconds * 1000:7.1f} ms  {queries:2} queries")
    return found, requests, events, days, open_now


def main():
    static_files()
    started = time.perf_counter()
    small, n_small, e_small, d_small, o_small = measure(args.requests)
    big, n_big, e_big, d_big, o_big = measure(10 * args.requests)
    lines = [
        f"# Scale benchmark: {n_small:,} against {n_big:,} requests",
        "",
        f"Machine: {machine()}. Django test client, DEBUG off, median of {args.repeat} runs.",
        f"{n_small:,} requests / {e_small:,} events over {d_small} days ({o_small:,} open), then "
        f"{n_big:,} / {e_big:,} over {d_big} days ({o_big:,} open). Goal: at most {GOAL}x.",
        "",
        f"| page | {n_small:,} ms | queries | {n_big:,} ms | queries | ratio | pass |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    failed = False
    for name, (seconds, queries, _) in small.items():
        big_s, big_q, _ = big[name]
        ratio = big_s / seconds
        ok = ratio <= GOAL and big_q == queries
        failed |= not ok
        lines.append(
            f"| {name} | {seconds * 1000:.1f} | {queries} | {big_s * 1000:.1f} | {big_q} | "
            f"{ratio:.2f}x | {'pass' if ok else 'FAIL'} |"
        )
    lines += ["", f"Whole run: {time.perf_counter() - started:.0f} s.", ""]
    common.write_results(RESULTS, "\n".join(lines))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
