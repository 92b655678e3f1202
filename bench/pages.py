"""Pages benchmark: N requests (default 100,000), 10N history events and ~1,000 instances in a
database of its own (bench/dashboard.py's loader), then the server time of each page and API
endpoint (Django's test client, DEBUG off, median of --repeat runs) against plain SQL that reads
the same data. Goal (issue 16): within 3x of the SQL, or within 30 ms where the SQL takes under
5 ms; the CSV export at least 20 MB/s and within 2x of PostgreSQL's COPY of the same query.
EXPLAIN shows whether the list reads the (-created_at, -id) index. Writes bench/results.md.

    make bench            # or: python bench/pages.py [--requests 1000000] [--repeat N]
"""

import time
from pathlib import Path

import common
import dashboard  # noqa: F401  (parses the options, sets Django up on its own database)
from common import in_turn, instances, machine
from dashboard import args, count_queries, page, people, reset
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from dashboards import figures  # noqa: E402
from dashboards.fleet import FLEET_ROWS  # noqa: E402
from requests_app.models import OPEN_STATES  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.md"


def sql(statement, params=()):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()

    return run


def explain(statement):
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + statement)
        return "\n".join(row[0] for row in cursor.fetchall())


def copy_seconds(statement):
    """PostgreSQL's own COPY (statement) TO STDOUT: (seconds, bytes)."""
    connection.ensure_connection()
    started, size = time.perf_counter(), 0
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for block in copy:
                size += len(block)
    return time.perf_counter() - started, size


def load_rows(count, days=None):
    """Load `count` requests (10 events each) created over `days` (--days) over ~1,000
    instances, or keep those loaded (--keep): (seconds, requests, events)."""
    from requests_app.models import Event, Request

    if args.keep and Request.objects.count() == count:
        return 0.0, count, Event.objects.count()
    reset()
    ids = people()
    started = time.perf_counter()
    _, _, events = common.load(
        count, ids, timezone.now(), days or args.days, args.events_per_request
    )
    instances(args.instances)
    return time.perf_counter() - started, count, events


def static_files():
    """Plain static names: production serves hashed ones from collectstatic's manifest."""
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()


# The rows a table of requests shows: the request, its instance's slug, who filed it and who
# holds it.
ROWS_SQL = (
    "SELECT r.*, i.slug, u.username, a.username FROM requests_app_request r "
    "LEFT JOIN provisioning_instance i ON i.id = r.instance_id "
    "LEFT JOIN auth_user u ON u.id = r.requested_by_id "
    "LEFT JOIN auth_user a ON a.id = r.assignee_id "
)
LIST_SQL = ROWS_SQL + "ORDER BY r.created_at DESC, r.id DESC LIMIT 50"


def cases(requests):
    """(name, client, URL, plain SQL reading the same data) of every page measured."""
    User = get_user_model()
    manager, devops = Client(), Client()
    manager.force_login(User.objects.get(username="manager"))
    devops.force_login(User.objects.get(username="devops1"))
    one = requests // 2
    open_states = "(" + ", ".join(f"'{state.value}'" for state in OPEN_STATES) + ")"
    # The number of requests as the portal keeps it (requests_app/counting.py): count(*) would
    # grow with the table, which is what the kept number is for.
    count_sql = "SELECT COALESCE(sum(n), 0) FROM requests_app_requestcount"

    def list_plain():
        return sql(LIST_SQL)(), sql(count_sql)()

    def list_api_plain():
        """The list, the count, and the page's events and runs, which the API's JSON holds."""
        rows = sql(LIST_SQL)()
        ids = [row[0] for row in rows]
        return (
            rows,
            sql(count_sql)(),
            sql(
                "SELECT e.*, u.username FROM requests_app_event e "
                "LEFT JOIN auth_user u ON u.id = e.by_id "
                "WHERE e.request_id = ANY(%s) ORDER BY e.request_id, e.at, e.id",
                [ids],
            )(),
            sql("SELECT * FROM provisioning_run WHERE request_id = ANY(%s)", [ids])(),
        )

    def detail_plain():
        return (
            sql("SELECT * FROM requests_app_request WHERE id = %s", [one])(),
            sql("SELECT * FROM requests_app_event WHERE request_id = %s ORDER BY at, id", [one])(),
        )

    def fleet_plain():
        """The fleet page's data: its page of instances with their open requests, the totals
        over the whole fleet and the versions that decide the latest."""
        return (
            sql(
                "SELECT i.*, (SELECT count(*) FROM requests_app_request r "
                f"WHERE r.instance_id = i.id AND r.state IN {open_states}) "
                f"FROM provisioning_instance i ORDER BY i.status, i.slug LIMIT {FLEET_ROWS}"
            )(),
            sql(
                "SELECT status, machine_type, version, count(*) FROM provisioning_instance "
                "GROUP BY status, machine_type, version"
            )(),
            sql(
                "SELECT DISTINCT target_version FROM requests_app_request "
                "WHERE target_version <> '' AND state NOT IN ('rejected', 'cancelled')"
            )(),
        )

    def queue_plain():
        """Each section's 25 most urgent rows, the counts, how the shown requests' latest runs
        stand and the notifications that failed: what the queue shows."""
        sections = [
            sql(
                ROWS_SQL + "WHERE r.state = %s ORDER BY r.resolution_due_at NULLS LAST, "
                "r.response_due_at NULLS LAST, r.created_at, r.id LIMIT 25",
                [state],
            )()
            for state in ("queued", "in_progress", "waiting_on_customer")
        ]
        ids = [row[0] for rows in sections for row in rows]
        return sections + [
            sql(
                "SELECT state, count(*) FROM requests_app_request WHERE state IN "
                "('queued', 'in_progress', 'waiting_on_customer') GROUP BY state"
            )(),
            sql(
                "SELECT DISTINCT ON (request_id) request_id, state FROM provisioning_run "
                "WHERE request_id = ANY(%s) ORDER BY request_id, id DESC",
                [ids],
            )(),
            sql(
                "SELECT * FROM requests_app_notification WHERE status = 'failed' "
                "ORDER BY created_at DESC LIMIT 20"
            )(),
        ]

    home_plain = sql(
        f"SELECT state, count(*) FROM requests_app_request WHERE state IN {open_states} "
        "GROUP BY state"
    )
    return [
        ("home", manager, "/", home_plain),
        ("request list page", manager, "/requests/", list_plain),
        ("request list API", manager, "/api/v1/requests/", list_api_plain),
        ("request detail page", manager, f"/requests/{one}/", detail_plain),
        ("request detail API", manager, f"/api/v1/requests/{one}/", detail_plain),
        ("fleet", manager, "/dashboards/fleet/", fleet_plain),
        ("DevOps queue", devops, "/queue/", queue_plain),
    ]


def measure(name, client, url, plain, repeat):
    """(page seconds, SQL seconds, queries, response bytes): medians of `repeat` runs."""
    page(client, url)()  # counted after a visit: the SLA calendar is kept for 30 s
    queries, response = count_queries(page(client, url))
    page_s, sql_s = in_turn(page(client, url), plain, repeat)
    return page_s, sql_s, queries, len(response.content)


def csv_export(client):
    """The CSV export of the default period, read whole: its bytes."""
    response = client.get("/dashboards/sla/export.csv")
    return sum(len(chunk) for chunk in response.streaming_content)


def main():
    static_files()
    seconds, requests, events = load_rows(args.requests)
    print(
        f"loaded {requests:,} requests, {events:,} events, {args.instances:,} instances "
        f"in {seconds:.1f} s"
    )
    measured = cases(requests)
    manager = next(client for name, client, *_ in measured if name == "home")
    lines = [
        f"# Page benchmark ({args.requests:,} requests, {events:,} events, "
        f"{args.instances:,} instances)",
        "",
        f"Machine: {machine()}. Django test client, DEBUG off, median of {args.repeat} runs of "
        "each page and its SQL taken in turn (the CSV export and COPY: 5).",
        "",
        "| page | median ms | queries | KB | plain SQL ms | ratio | goal | pass |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    failed = False
    for name, client, url, plain in measured:
        page_s, sql_s, queries, size = measure(name, client, url, plain, args.repeat)
        if sql_s < 0.005:
            goal, ok = "<= 30 ms", page_s <= 0.030
        else:
            goal, ok = "<= 3x SQL", page_s <= 3 * sql_s
        failed |= not ok
        lines.append(
            f"| {name} | {page_s * 1000:.1f} | {queries} | {size // 1024} | "
            f"{sql_s * 1000:.1f} | {page_s / sql_s:.1f}x | {goal} | {'pass' if ok else 'FAIL'} |"
        )

    # The CSV export of the default period against COPY of the export's own query.
    period = figures.default_period()
    size = csv_export(manager)
    cte, params = figures._rows_cte(
        period, timezone.now(), figures.get_calendar(), figures.CSV_ROW_COLUMNS
    )
    import psycopg

    connection.ensure_connection()
    statement = psycopg.ClientCursor(connection.connection).mogrify(
        f"{cte} SELECT f.* FROM f ORDER BY f.resolution_started_at, f.id", params
    )
    copy_size = copy_seconds(statement)[1]
    csv_s, copy_s = in_turn(lambda: csv_export(manager), lambda: copy_seconds(statement), 5)
    rate = size / csv_s / 1e6
    ok = rate >= 20 and csv_s <= 2 * copy_s
    failed |= not ok
    lines.append(
        f"| CSV export, default period | {csv_s * 1000:.0f} ({rate:.1f} MB/s, "
        f"{size / 1e6:.1f} MB) | - | - | COPY {copy_s * 1000:.0f} ({copy_size / 1e6:.1f} MB) | "
        f"{csv_s / copy_s:.1f}x | >= 20 MB/s, <= 2x COPY | {'pass' if ok else 'FAIL'} |"
    )
    plan = explain(LIST_SQL)
    uses = "request_created_desc" in plan
    lines += [
        "",
        f"EXPLAIN of the list's query (uses request_created_desc: {uses}):",
        "",
        "```",
        plan,
        "```",
        "",
    ]
    failed |= not uses
    common.write_results(RESULTS, "\n".join(lines))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":  # bench/scale.py imports the cases
    main()
