"""Dashboard benchmark: 100,000 requests with 1,000,000 history events in PostgreSQL, then the
server time of the managers' SLA dashboard and of the DevOps board (Django's test client,
DEBUG off), each against plain SQL that computes the same figures with its own calendar table.
Goal: each page within 3x of its SQL. The dashboard is timed with its figures computed (the
cache emptied before each visit) and with them kept from the visit before (dashboards/figures.py
keeps them until the request data changes or a timer crosses a threshold). Also checks that the
SQL's figures are the API's.

    make bench            # or: python bench/dashboard.py [--requests N] [--repeat N]
"""

import argparse
import io
import json
import os
import statistics
import time
import warnings
from datetime import timedelta
from pathlib import Path

import common
from common import people, reset, setup

parser = argparse.ArgumentParser()
parser.add_argument("--requests", type=int, default=100_000)
parser.add_argument("--events-per-request", type=int, default=10)
parser.add_argument("--days", type=int, default=180)
parser.add_argument("--repeat", type=int, default=7)
parser.add_argument("--instances", type=int, default=1000)  # bench/pages.py
parser.add_argument("--keep", action="store_true", help="bench/pages.py: reuse the loaded rows")
args = parser.parse_args()

# Production settings: no query log, no debug toolbar of any kind.
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-" + "k9Vq2xLr7Tz0Wm4Hs8Pd3Nf6Bc1Jy5Ga" * 2)
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
# Whitenoise looks for collectstatic's output, which a benchmark does not need.
warnings.filterwarnings("ignore", message="No directory at")
setup("bench_dashboard")

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from dashboards import figures as dashboards  # noqa: E402
from dashboards.views import BOARD_ROWS  # noqa: E402
from requests_app.models import Request  # noqa: E402
from requests_app.sla import policies as sla_policies  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results-dashboard.md"


def load(count, ids, now):
    """bench/common.py's loader with this benchmark's options."""
    return common.load(count, ids, now, args.days, args.events_per_request)


# -- plain SQL ---------------------------------------------------------------------------------


def make_calendar_table(first, last):
    """The working days as a table, built in SQL from the weekdays and the holiday list (an
    independent formulation of the SLA calendar): per local day, its start and the working
    seconds before it."""
    calendar = sla_policies.get_calendar()
    holidays = sorted(d for d in calendar.holidays | calendar.closures if first <= d <= last)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_days")
        cursor.execute(
            """
            CREATE TABLE bench_days AS
            WITH d AS (
                SELECT day::date AS day,
                       (day::date::timestamp AT TIME ZONE %(tz)s) AS starts,
                       ((day::date + 1)::timestamp AT TIME ZONE %(tz)s) AS ends,
                       EXTRACT(ISODOW FROM day) < 6 AND NOT day::date = ANY(%(off)s::date[])
                           AS working
                FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS day
            )
            SELECT day, starts, working,
                   COALESCE(SUM(CASE WHEN working THEN EXTRACT(EPOCH FROM ends - starts) END)
                       OVER (ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                       AS before
            FROM d
            """,
            {"tz": settings.SLA_TIMEZONE, "off": holidays, "first": first, "last": last},
        )
        cursor.execute("ALTER TABLE bench_days ADD PRIMARY KEY (day)")
        cursor.execute("ANALYZE bench_days")


def w_join(alias, column):
    """A join on bench_days for `column` and the SQL of its working seconds W."""
    join = (
        f"LEFT JOIN bench_days {alias} ON {alias}.day = "
        f"({column} AT TIME ZONE '{settings.SLA_TIMEZONE}')::date"
    )
    w = (
        f"({alias}.before + CASE WHEN {alias}.working "
        f"THEN EXTRACT(EPOCH FROM {column} - {alias}.starts) ELSE 0 END)"
    )
    return join, w


def dashboard_sql(since, until, now):
    """The dashboard's figures in plain SQL: per kind (and in all) with medians and p90, per
    week, per engineer, and the 50 open requests at risk or breached that it lists."""
    start_join, w_start = w_join("ds", "r.resolution_started_at")
    stop_join, w_stop = w_join("de", "r.resolution_stopped_at")
    pause_b_join, w_b = w_join("pb", "p.b")
    pause_e_join, w_e = w_join("pe", "p.e")
    tz = settings.SLA_TIMEZONE
    statements = [
        f"""
        WITH rows AS (
            SELECT r.id, r.kind, r.assignee_id, r.resolution_started_at,
                r.resolution_stopped_at, r.ended_at IS NULL AS is_open,
                CASE
                    WHEN r.response_started_at IS NULL THEN NULL
                    WHEN r.response_stopped_at IS NOT NULL THEN
                        CASE WHEN r.response_breach_at IS NULL
                            OR r.response_stopped_at <= r.response_breach_at
                            THEN 'met' ELSE 'breached' END
                    WHEN r.ended_at IS NOT NULL THEN 'cancelled'
                    WHEN r.response_breach_at < %(now)s THEN 'breached'
                    WHEN r.response_warn_at <= %(now)s THEN 'at_risk'
                    ELSE 'running' END AS rsp,
                CASE
                    WHEN r.resolution_stopped_at IS NOT NULL THEN
                        CASE WHEN r.resolution_breach_at IS NULL
                            OR r.resolution_stopped_at <= r.resolution_breach_at
                            THEN 'met' ELSE 'breached' END
                    WHEN r.ended_at IS NOT NULL THEN 'cancelled'
                    WHEN r.resolution_paused_at IS NOT NULL THEN
                        CASE WHEN r.resolution_breach_at < r.resolution_paused_at
                            THEN 'breached' ELSE 'paused' END
                    WHEN r.resolution_breach_at < %(now)s THEN 'breached'
                    WHEN r.resolution_warn_at <= %(now)s THEN 'at_risk'
                    ELSE 'running' END AS res,
                EXTRACT(EPOCH FROM r.response_stopped_at - r.response_started_at) AS rsp_s,
                CASE WHEN r.resolution_stopped_at IS NOT NULL THEN {w_stop} - {w_start} END
                    AS res_w,
                r.resolution_pauses
            FROM requests_app_request r {start_join} {stop_join}
            WHERE r.resolution_started_at >= %(since)s AND r.resolution_started_at < %(until)s
        ),
        paused AS (
            SELECT p.id, SUM({w_e} - {w_b}) AS w
            FROM (
                SELECT rows.id,
                    GREATEST((x->>0)::timestamptz, rows.resolution_started_at) AS b,
                    LEAST((x->>1)::timestamptz, rows.resolution_stopped_at) AS e
                FROM rows, jsonb_array_elements(rows.resolution_pauses) AS x
                WHERE rows.resolution_stopped_at IS NOT NULL AND x->>1 IS NOT NULL
            ) AS p {pause_b_join} {pause_e_join}
            WHERE p.e > p.b
            GROUP BY p.id
        ),
        f AS (
            SELECT rows.*, (rows.res_w - COALESCE(paused.w, 0)) / 86400 AS res_days,
                rows.is_open AND (rows.rsp = 'at_risk' OR rows.res = 'at_risk') AS risky,
                rows.is_open AND (rows.rsp = 'breached' OR rows.res = 'breached') AS late,
                date_trunc('week', rows.resolution_started_at AT TIME ZONE '{tz}') AS week
            FROM rows LEFT JOIN paused ON paused.id = rows.id
        )
        SELECT GROUPING(kind), GROUPING(week), GROUPING(assignee_id), kind, week, assignee_id,
            count(*),
            count(*) FILTER (WHERE rsp = 'met'), count(*) FILTER (WHERE rsp = 'breached'),
            count(*) FILTER (WHERE res = 'met'), count(*) FILTER (WHERE res = 'breached'),
            percentile_cont(0.5) WITHIN GROUP (ORDER BY rsp_s),
            percentile_cont(0.9) WITHIN GROUP (ORDER BY rsp_s),
            percentile_cont(0.5) WITHIN GROUP (ORDER BY res_days),
            percentile_cont(0.9) WITHIN GROUP (ORDER BY res_days),
            count(*) FILTER (WHERE risky), count(*) FILTER (WHERE late),
            count(*) FILTER (WHERE is_open),
            count(*) FILTER (WHERE resolution_stopped_at IS NOT NULL)
        FROM f
        GROUP BY GROUPING SETS ((kind), (), (week), (assignee_id))
        """,
        # The list of open requests at risk or breached, with what the page shows of them.
        """
        SELECT r.*, u.username, a.username, i.slug
        FROM requests_app_request r
        JOIN auth_user u ON u.id = r.requested_by_id
        LEFT JOIN auth_user a ON a.id = r.assignee_id
        LEFT JOIN provisioning_instance i ON i.id = r.instance_id
        WHERE r.resolution_started_at >= %(since)s AND r.resolution_started_at < %(until)s
          AND r.ended_at IS NULL
          AND ((r.response_stopped_at IS NULL AND r.response_due_at < %(now)s)
            OR r.response_stopped_at > r.response_due_at
            OR (r.resolution_stopped_at IS NULL AND r.resolution_paused_at IS NULL
                AND r.resolution_due_at < %(now)s)
            OR r.resolution_due_at < r.resolution_paused_at
            OR (r.response_stopped_at IS NULL AND r.response_warn_at <= %(now)s
                AND r.response_due_at >= %(now)s)
            OR (r.resolution_stopped_at IS NULL AND r.resolution_paused_at IS NULL
                AND r.resolution_warn_at <= %(now)s AND r.resolution_due_at >= %(now)s))
        ORDER BY r.resolution_due_at NULLS LAST, r.response_due_at NULLS LAST, r.created_at, r.id
        LIMIT 50
        """,
    ]
    params = {"since": since, "until": until, "now": now}
    results = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # as the page does: JIT costs more than it saves
        for sql in statements:
            cursor.execute(sql, params)
            results.append(cursor.fetchall())
    return results


def board_sql(now):
    """The board in plain SQL: the count per column and the 50 cards due soonest of each, with
    each timer's remaining seconds (working time through bench_days for working-day clocks)."""
    due_join, w_due = w_join("dd", "r.resolution_due_at")
    pause_join, w_pause = w_join("dp", "r.resolution_paused_at")
    now_join, w_now = w_join("dn", "%(now)s::timestamptz")
    working = "r.kind IN ('create', 'suspend', 'resume', 'teardown', 'enable_executors')"
    statements = [
        """
        SELECT state, count(*) FROM requests_app_request
        WHERE state IN ('queued', 'in_progress', 'waiting_on_customer') GROUP BY state
        """,
        f"""
        SELECT * FROM (
            SELECT r.*, u.username AS requester, a.username AS assignee, i.slug,
                row_number() OVER (PARTITION BY r.state ORDER BY r.resolution_due_at NULLS LAST,
                    r.response_due_at NULLS LAST, r.created_at, r.id) AS rank,
                CASE WHEN r.response_stopped_at IS NULL
                    THEN EXTRACT(EPOCH FROM r.response_due_at - %(now)s) END AS response_left,
                CASE
                    WHEN NOT {working} THEN EXTRACT(EPOCH FROM r.resolution_due_at - %(now)s)
                    WHEN r.resolution_paused_at IS NOT NULL THEN {w_due} - {w_pause}
                    ELSE {w_due} - {w_now} END AS resolution_left
            FROM requests_app_request r
            JOIN auth_user u ON u.id = r.requested_by_id
            LEFT JOIN auth_user a ON a.id = r.assignee_id
            LEFT JOIN provisioning_instance i ON i.id = r.instance_id
            {due_join} {pause_join} {now_join}
            WHERE r.state IN ('queued', 'in_progress', 'waiting_on_customer')
        ) AS ranked WHERE rank <= {BOARD_ROWS}
        """,
    ]
    results = []
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, {"now": now})
            results.append(cursor.fetchall())
    return results


# -- timing ------------------------------------------------------------------------------------


def cold(get):
    """`get` with nothing kept from an earlier visit: the SLA figures computed each time."""

    def run():
        cache.clear()
        return get()

    return run


def timed(fn, repeat):
    fn()  # warm: connections, caches, the calendar table in memory
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def page(client, url):
    def get():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response

    return get


def agree(sql_rows, api):
    """The plain SQL's per-kind and overall figures against the API's JSON."""
    mismatches = []
    for g_kind, g_week, g_assignee, kind, _, _, *values in sql_rows:
        if g_kind == 0:
            key, figures = kind, api["kinds"][kind]
        elif g_week == 1 and g_assignee == 1:
            key, figures = "total", api["total"]
        else:
            continue
        count, r_met, r_br, s_met, s_br, r_med, r_p90, s_med, s_p90, risky, late = values[:11]
        tally = dashboards.Tally(
            count, r_met, r_br, s_met, s_br, r_med, r_p90, s_med, s_p90, risky, late
        )
        if tally.as_json() != figures:
            mismatches.append((key, tally.as_json(), figures))
    return mismatches


def count_queries(fn):
    queries = []

    def wrapper(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        result = fn()
    return len(queries), result


def main():
    # Production serves hashed names from collectstatic's manifest; plain names do here.
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    reset()
    ids = people()
    seconds, requests, events = load(args.requests, ids, timezone.now())
    print(f"loaded {requests:,} requests and {events:,} events in {seconds:.1f} s")
    counts = Request.objects.order_by().values_list("state").annotate(n=Count("pk"))
    print("  by state: " + ", ".join(f"{state} {n:,}" for state, n in sorted(counts)))

    period = dashboards.default_period()
    # Two years: every loaded request (the long period, without a rollup).
    long = dashboards.Period(since=period.since - timedelta(days=730 - 90), until=period.until)
    days = timedelta(days=400)
    make_calendar_table(long.first_day - days, period.last_day + days)
    manager, devops = Client(), Client()
    User = get_user_model()
    manager.force_login(User.objects.get(username="manager"))
    devops.force_login(User.objects.get(username="devops1"))

    # The API and the SQL a moment apart: a timer may cross 75% or its due instant in between,
    # so look twice before calling a difference a disagreement.
    for _ in range(2):
        api = manager.get("/api/v1/sla/summary/").json()
        mismatches = agree(dashboard_sql(period.since, period.until, timezone.now())[0], api)
        if not mismatches:
            break
    print(
        f"period {period.first_day} to {period.last_day}: {api['total']['count']:,} requests, "
        f"{api['total']['at_risk']:,} open at risk, {api['total']['breached']:,} open breached; "
        f"plain SQL figures = API figures: {'yes' if not mismatches else mismatches}"
    )

    def dashboard_plain():
        return dashboard_sql(period.since, period.until, timezone.now())

    def long_plain():
        return dashboard_sql(long.since, long.until, timezone.now())

    def board_plain():
        return board_sql(timezone.now())

    long_url = f"/dashboards/sla/?since={long.first_day}&until={long.last_day}"
    ratios = []
    lines = [
        f"# Dashboard benchmark ({requests:,} requests, {events:,} events over {args.days} days)",
        "",
        f"Machine: {common.machine()}. Django test client, DEBUG off, median of {args.repeat}.",
        "",
        "| page | median ms | queries | KB | plain SQL ms | ratio | goal | pass |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]

    for name, client, url, plain, fetch in (
        ("SLA dashboard, 90 days", manager, "/dashboards/sla/", dashboard_plain, cold),
        (
            "SLA dashboard, 90 days, figures kept",
            manager,
            "/dashboards/sla/",
            dashboard_plain,
            None,
        ),
        ("SLA dashboard, 2 years", manager, long_url, long_plain, cold),
        ("DevOps board", devops, "/dashboards/board/", board_plain, None),
    ):
        get = fetch(page(client, url)) if fetch else page(client, url)
        queries, response = count_queries(get)
        page_s, _ = timed(get, args.repeat)
        sql_s, _ = timed(plain, args.repeat)
        ratios.append(page_s / sql_s)
        print(
            f"{name:22} page {page_s * 1000:7.1f} ms ({queries} queries, "
            f"{len(response.content) // 1024} KB) | plain SQL {sql_s * 1000:7.1f} ms | "
            f"ratio {ratios[-1]:4.2f}x (goal <= 3x)"
        )
        lines.append(
            f"| {name} | {page_s * 1000:.1f} | {queries} | {len(response.content) // 1024} | "
            f"{sql_s * 1000:.1f} | {ratios[-1]:.2f}x | <= 3x SQL | "
            f"{'pass' if ratios[-1] <= 3 else 'FAIL'} |"
        )
    lines.append("")
    lines.append(
        f"Plain SQL figures = the API's: {'yes' if not mismatches else 'NO: ' + str(mismatches)}"
    )
    common.write_results(RESULTS, "\n".join(lines))
    own_s, _ = timed(cold(lambda: dashboards.compute(period, timezone.now())), args.repeat)
    print(f"  the dashboard's figures alone, computed (dashboards.compute): {own_s * 1000:.1f} ms")
    started = time.perf_counter()
    response = manager.get("/dashboards/sla/export.csv")
    rows = sum(1 for _ in io.BytesIO(b"".join(response.streaming_content))) - 1
    print(f"CSV export of the period: {rows:,} rows in {time.perf_counter() - started:.2f} s")
    print("API total:", json.dumps(api["total"]))
    if mismatches or any(ratio > 3 for ratio in ratios):
        raise SystemExit(1)


if __name__ == "__main__":  # bench/pages.py imports the loader
    main()
