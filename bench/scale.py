"""Scale benchmark (issue 16): cost grows with what a page shows, not with the table. The same
pages timed at N requests (default 100,000, 10 events each) and at 10N (1,000,000 requests,
10,000,000 events), the longer history spread over ten times the days, so that what the pages
show (the open work, the last 90 days) stays the same size. Goal: each page at 10N within 1.5x
of its time at N. The SLA dashboard is timed with its figures computed (the cache emptied before
each visit). Django's test client, DEBUG off, median of --repeat runs; the two sizes live in
two databases (`..._bench_dashboard` and `..._bench_scale`) and each page is timed at both in
turn. Writes bench/results-scale.md. Loading 10N takes several minutes (--keep reuses both).

    make bench            # or: python bench/scale.py [--requests N] [--repeat N]
"""

import time
from pathlib import Path

import common
import dashboard  # noqa: F401  (parses the options, sets Django up on its own database)
from common import in_turn, machine, other_database, serve
from dashboard import args, cold, count_queries, page
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from pages import load_rows, static_files

from requests_app.models import OPEN_STATES, Request  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results-scale.md"
GOAL = 1.5


def prepare(size, database):
    """Load `size` requests over size / N times the days into `database` (a connection):
    (the pages to time as (name, get), what was loaded)."""
    serve(database)
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
    pages = [(name, wrap(page(c, url)) if wrap else page(c, url)) for name, c, url, wrap in cases]
    return pages, (requests, events, days, open_now)


def on(database, get):
    """`get` run with `database` the default connection."""

    def run():
        serve(database)
        return get()

    return run


def main():
    static_files()
    started = time.perf_counter()
    # The two sizes in two databases, so that each page is timed at both sizes in turn.
    small_db = connections["default"]
    big_db = other_database("bench_scale")
    small, (n_small, e_small, d_small, o_small) = prepare(args.requests, small_db)
    big, (n_big, e_big, d_big, o_big) = prepare(10 * args.requests, big_db)
    lines = [
        f"# Scale benchmark: {n_small:,} against {n_big:,} requests",
        "",
        f"Machine: {machine()}. Django test client, DEBUG off, median of {args.repeat} runs of "
        "each page at each size, the two sizes (in two databases) taken in turn.",
        f"{n_small:,} requests / {e_small:,} events over {d_small} days ({o_small:,} open), then "
        f"{n_big:,} / {e_big:,} over {d_big} days ({o_big:,} open). Goal: at most {GOAL}x, and "
        "the same number of queries.",
        "",
        f"| page | {n_small:,} ms | queries | {n_big:,} ms | queries | ratio | pass |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    failed = False
    for (name, small_get), (_, big_get) in zip(small, big, strict=True):
        small_get, big_get = on(small_db, small_get), on(big_db, big_get)
        # Counted after a visit: the SLA calendar is kept for 30 s, so a cold count would hold
        # its two queries.
        small_get(), big_get()
        serve(small_db)  # count_queries watches the default connection of the moment
        queries = count_queries(small_get)[0]
        serve(big_db)
        big_q = count_queries(big_get)[0]
        seconds, big_s = in_turn(small_get, big_get, args.repeat)
        ratio = big_s / seconds
        ok = ratio <= GOAL and big_q == queries
        failed |= not ok
        print(f"  {name:36} {seconds * 1000:7.1f} / {big_s * 1000:7.1f} ms  {queries:2} queries")
        lines.append(
            f"| {name} | {seconds * 1000:.1f} | {queries} | {big_s * 1000:.1f} | {big_q} | "
            f"{ratio:.2f}x | {'pass' if ok else 'FAIL'} |"
        )
    serve(small_db)
    lines += ["", f"Whole run: {time.perf_counter() - started:.0f} s.", ""]
    common.write_results(RESULTS, "\n".join(lines))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
