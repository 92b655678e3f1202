"""The dashboard, its CSV, the board and the fleet pages: who sees them, that their figures are
the API's, and that their query counts do not grow with the rows."""

import csv
import io
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboards import figures as dashboards
from dashboards.views import BOARD_ROWS
from requests_app.sla import policies
from tests.dashboards.factories import file, make_instance, random_rows, timed_request
from tests.factories import make_user

pytestmark = pytest.mark.clock

# The tests' now: a Wednesday afternoon in working hours (working-day timers run, some are at
# risk), the rows made relative to it.
NOW = datetime(2026, 3, 25, 15, tzinfo=ZoneInfo("America/Los_Angeles"))


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()
    yield
    policies.invalidate_cache()


@pytest.fixture
def now():
    """NOW, with the clock standing still there from this fixture on (pages read it too)."""
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def rows(users, now):
    engineers = [users["devops"], users["devops2"]]
    return random_rows(users["ce"], engineers, now, 120, seed=5, days=85)


def page_figures(html):
    """{kind or "total": {field: value}} from the data attributes of the per-kind table."""
    figures = {}
    for kind, body in re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', html, re.S):
        cells = re.findall(r'data-field="([a-z_0-9]+)" data-value="([^"]*)"', body)
        figures[kind] = {field: _number(value) for field, value in cells}
    return figures


def _number(text):
    if text == "":
        return None
    return float(text) if "." in text else int(text)


# -- the dashboard --------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"kind": "create"}, {"customer": "globex"}])
def test_the_dashboard_shows_the_apis_figures(client, users, rows, now, params):
    client.force_login(users["manager"])
    with time_machine.travel(now, tick=False):
        page = client.get(reverse("sla_dashboard"), params)
        api = client.get("/api/v1/sla/summary/", params).json()
    assert page.status_code == 200
    shown = page_figures(page.content.decode())
    assert shown.pop("total") == api["total"]
    assert shown == api["kinds"]
    assert api["total"]["count"] > 0


def test_the_dashboard_draws_its_charts_and_lists_what_needs_attention(client, users, rows, now):
    client.force_login(users["manager"])
    with time_machine.travel(now, tick=False):
        html = client.get(reverse("sla_dashboard")).content.decode()
        figures = dashboards.compute(dashboards.default_period(now), now)
    assert 'data-testid="trend-chart"' in html and 'data-testid="load-chart"' in html
    assert "<polyline" in html
    listed = re.findall(r'<tr data-request-id="(\d+)"', html)
    assert len(listed) == min(figures.total.attention, 50) > 0
    for username, tally in figures.engineers:
        assert f'data-engineer="{username}" data-series="open" data-value="{tally.open}"' in html
    assert "How these figures are counted" in html


def test_a_bad_period_shows_the_errors(client, users):
    client.force_login(users["manager"])
    response = client.get(reverse("sla_dashboard"), {"since": "soon"})
    assert response.status_code == 400
    assert b'data-testid="period-errors"' in response.content


def test_the_dashboard_needs_a_role(client, users):
    for name in ("sla_dashboard", "sla_export", "board", "fleet"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/login/" in response["Location"], name
    client.force_login(make_user("nobody"))
    assert client.get(reverse("sla_dashboard")).status_code == 403
    assert client.get(reverse("sla_export")).status_code == 403
    assert client.get(reverse("fleet")).status_code == 403


# -- the CSV --------------------------------------------------------------------------------------


def read_csv(response):
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_holds_the_requests_behind_the_figures(client, users, rows, now):
    client.force_login(users["manager"])
    with time_machine.travel(now, tick=False):
        response = client.get(reverse("sla_export"))
        api = client.get("/api/v1/sla/summary/").json()
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = read_csv(response)
    assert len(lines) == api["total"]["count"] == len(rows)
    for kind, figures in api["kinds"].items():
        mine = [line for line in lines if line["kind"] == kind]
        assert len(mine) == figures["count"]
        for which in ("response", "resolution"):
            met = sum(line[f"{which}_status"] == "met" for line in mine)
            breached = sum(line[f"{which}_status"] == "breached" for line in mine)
            pct = round(100 * met / (met + breached), 1) if met + breached else None
            assert figures[f"{which}_met_pct"] == pct, (kind, which)
        seconds = [float(x["response_seconds"]) for x in mine if x["response_seconds"]]
        days = [float(x["resolution_working_days"]) for x in mine if x["resolution_working_days"]]
        for values, field, digits in (
            (seconds, "median_response_seconds", 0),
            (days, "median_resolution_working_days", 2),
        ):
            median = dashboards.percentile(values, 0.5)
            expected = None if median is None else round(median, digits)
            assert figures[field] == pytest.approx(expected, abs=10**-digits), (kind, field)
        for flag in ("at_risk", "breached"):
            assert figures[flag] == sum(line[flag] == "true" for line in mine), (kind, flag)


def test_the_csv_follows_the_filters(client, users, now):
    start = now - timedelta(days=3)
    timed_request(users["ce"], "create", queued=start, customer="Globex")
    timed_request(users["ce"], "suspend", queued=start, customer="Globex")
    timed_request(users["ce"], "create", queued=start, customer="Initech")
    client.force_login(users["ce"])
    lines = read_csv(client.get(reverse("sla_export"), {"kind": "create", "customer": "globex"}))
    assert [(line["kind"], line["customer"]) for line in lines] == [("create", "Globex")]
    assert set(lines[0]) == set(dashboards.CSV_COLUMNS)


DANGEROUS = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\r=1+1"]


@pytest.mark.parametrize("engine", ["sql", "python"])
def test_the_csv_neutralises_formulas_in_text_but_keeps_numbers(users, now, engine):
    """OWASP's CSV injection advice: text a spreadsheet would run as a formula starts with a
    single quote; numbers, negative ones included, stay numbers."""
    start = now - timedelta(days=3)
    assignee = make_user("@evil", "DevOps")
    for customer in [*DANGEROUS, "Acme Corp", "Ann-Marie's =shop"]:
        timed_request(
            users["ce"],
            "create",
            queued=start,
            picked=start + timedelta(hours=1),
            customer=customer,
            assignee=assignee,
        )
    request = timed_request(users["ce"], "create", queued=start, customer="-Negative")
    request.instance_slug = "-1"
    request.save(update_fields=["instance_slug"])
    period = dashboards.default_period(now)
    with time_machine.travel(now, tick=False):
        rows = [
            dict(zip(dashboards.CSV_COLUMNS, row, strict=True))
            for row in dashboards.csv_rows(period, now, engine)
        ]
    customers = {row["customer"] for row in rows}
    assert customers == {
        *("'" + value for value in DANGEROUS),
        "Acme Corp",
        "Ann-Marie's =shop",
        "'-Negative",
    }
    assert {row["assignee"] for row in rows} == {"'@evil", ""}
    assert "'-1" in {row["instance"] for row in rows}
    # The numeric columns are untouched: numbers (and empty cells) only.
    for row in rows:
        for column in ("id", "response_seconds", "resolution_working_days"):
            assert row[column] == "" or float(row[column]) == float(row[column]), column
            assert not row[column].startswith("'"), column


def test_the_csv_download_quotes_formulas(client, users, now):
    timed_request(users["ce"], "create", queued=now - timedelta(days=2), customer="=1+2")
    # Commas, quotes and a line break survive the file's quoting.
    awkward = 'Acme, "the best"\nLtd'
    timed_request(users["ce"], "create", queued=now - timedelta(days=1), customer=awkward)
    client.force_login(users["manager"])
    with time_machine.travel(now, tick=False):
        lines = read_csv(client.get(reverse("sla_export")))
    assert [line["customer"] for line in lines] == ["'=1+2", awkward]


def test_only_free_text_columns_can_start_like_a_formula():
    """A new column of free text must join CSV_TEXT_COLUMNS; every other column is a number, an
    instant, a boolean or a value of fixed choices."""
    fixed = {
        "kind",
        "state",
        "category",
        "response_status",
        "resolution_status",
        "open",
        "at_risk",
        "breached",
    }
    numbers = {"id", "response_seconds", "resolution_working_days"}
    instants = {c for c in dashboards.CSV_COLUMNS if c.endswith("_at")}
    text = set(dashboards.CSV_TEXT_COLUMNS)
    assert text == {"customer", "instance", "assignee"}
    assert text | fixed | numbers | instants == set(dashboards.CSV_COLUMNS)
    assert not text & (fixed | numbers | instants)
    from requests_app.models import Kind, State

    for value in [*Kind.values, *State.values, "met", "breached", "running", "paused", "true"]:
        assert not value.startswith(dashboards.FORMULA_PREFIXES)


# -- the board ------------------------------------------------------------------------------------


def test_the_board_is_for_devops_and_managers(client, users):
    for who, status in [("devops", 200), ("manager", 200), ("admin", 200), ("ce", 403)]:
        client.force_login(users[who])
        assert client.get(reverse("board")).status_code == status, who


def test_the_board_shows_open_work_with_live_timers(client, users, now):
    queued_one = timed_request(users["ce"], queued=now - timedelta(hours=20))
    two_days, one_day = now - timedelta(days=2), now - timedelta(days=1)
    working = timed_request(users["ce"], queued=two_days, picked=one_day, assignee=users["devops"])
    waiting = timed_request(
        users["ce"],
        queued=two_days,
        picked=two_days + timedelta(hours=1),
        pauses=[(one_day, None)],
        assignee=users["devops"],
    )
    done = timed_request(
        users["ce"], queued=two_days, picked=two_days + timedelta(hours=1), done=one_day
    )
    client.force_login(users["devops"])
    with time_machine.travel(now, tick=False):
        html = client.get(reverse("board")).content.decode()
    states = re.findall(r'<section class="board-column" data-state="([a-z_]+)">', html)
    assert states == ["queued", "in_progress", "waiting_on_customer"]
    for request, state in (
        (queued_one, "queued"),
        (working, "in_progress"),
        (waiting, "waiting_on_customer"),
    ):
        section = html.split(f'data-state="{state}"')[1].split("</section>")[0]
        assert f'data-request-id="{request.pk}"' in section
    assert f'data-request-id="{done.pk}"' not in html
    # The queued request's response timer is at risk (20 of 24 h used) and counts down live.
    card = html.split(f'data-request-id="{queued_one.pk}"')[1].split("</article>")[0]
    response = card.split('data-testid="timer-response"')[1].split(">")[0]
    assert 'data-status="at_risk"' in response and 'data-live="1"' in response
    assert 'data-remaining="14400"' in response and 'data-target="86400"' in response
    # A paused timer does not count down.
    card = html.split(f'data-request-id="{waiting.pk}"')[1].split("</article>")[0]
    resolution = card.split('data-testid="timer-resolution"')[1].split(">")[0]
    assert 'data-status="paused"' in resolution and "data-live" not in resolution
    assert "portal/board.js" in html


def test_the_board_shows_the_most_urgent_cards_of_a_long_column(client, users, now):
    for i in range(BOARD_ROWS + 5):
        timed_request(users["ce"], queued=now - timedelta(minutes=10 + i))
    client.force_login(users["manager"])
    html = client.get(reverse("board")).content.decode()
    assert f'data-testid="count-queued">{BOARD_ROWS + 5}<' in html
    assert html.count("<article") == BOARD_ROWS
    assert f"The {BOARD_ROWS} due soonest of {BOARD_ROWS + 5}" in html


def test_board_cards_say_how_the_run_stands_and_who_holds_the_request(
    client, users, now, django_assert_max_num_queries
):
    from provisioning.models import Run

    def with_run(request, state):
        instance = make_instance()
        Run.objects.create(
            instance=instance, request_id=request.pk, kind="create", state=state, created_at=now
        )
        return request

    day = now - timedelta(days=1)
    held = [
        with_run(timed_request(users["ce"], queued=day, picked=day, assignee=users["devops"]), s)
        for s in ("planned", "errored", "applying")
    ]
    nobody = timed_request(users["ce"], queued=now - timedelta(hours=1))
    client.force_login(users["devops2"])
    with CaptureQueriesContext(connection) as few:
        html = client.get(reverse("board")).content.decode()

    def card(request):
        found = html.split(f'data-request-id="{request.pk}"')[1].split("</article>")[0]
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.split("board-card-work")[1]))

    assert "held by devops · plan waiting for confirm" in card(held[0])
    assert "held by devops · run errored" in card(held[1])
    assert "held by devops · applying" in card(held[2])
    assert "held by nobody" in card(nobody) and "·" not in card(nobody)
    # One query for the runs of every card, however many.
    for _ in range(30):
        request = timed_request(users["ce"], queued=day, picked=day, assignee=users["devops2"])
        with_run(request, "planned")
    with django_assert_max_num_queries(len(few)):
        html = client.get(reverse("board")).content.decode()
    said = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert said.count("held by devops2 (you) · plan waiting for confirm") == 30


# -- the fleet ------------------------------------------------------------------------------------


def test_the_fleet_shows_versions_behind_and_costs(client, users, now):
    make_instance("acme", version="6.1.2", machine_type="n1-standard-16", executors_enabled=True)
    make_instance("globex", version="6.0.0")
    make_instance("initech", version="5.9.1", status="suspended")
    make_instance("gone", version="4.0.0", status="torn_down")
    make_instance("stark", version="", status="provisioning", machine_type="n1-standard-96")
    # A newer release known only from an upgrade request.
    upgrade = timed_request(users["ce"], "upgrade", queued=now)
    upgrade.target_version = "6.2.0"
    upgrade.save(update_fields=["target_version"])
    client.force_login(users["sales"])
    html = client.get(reverse("fleet")).content.decode()

    def row(slug):
        return html.split(f'data-slug="{slug}"')[1].split("</tr>")[0]

    assert 'data-testid="latest-version">6.2.0<' in html
    assert "1 release behind (minor)" in row("acme") and 'data-releases="1"' in row("acme")
    assert "2 releases behind (minor)" in row("globex") and 'data-releases="2"' in row("globex")
    assert "3 releases behind (major)" in row("initech")
    assert "unknown" in row("stark")
    assert 'data-value="532"' in row("globex")  # n1-standard-8 194 + storage 282 + network 56
    assert 'data-value="726"' in row("acme")  # n1-standard-16 388 + 338
    assert 'data-value="13"' in row("initech")  # the snapshot only
    assert 'data-value="0"' in row("gone")
    assert 'data-value="2668"' in row("stark")  # n1-standard-96 2330 + 338
    assert 'data-testid="cost-total">$3,939<' in html
    assert html.index('data-slug="acme"') < html.index('data-slug="initech"')
    assert html.index('data-slug="initech"') < html.index('data-slug="gone"')


def test_an_instance_ahead_of_every_recorded_release_is_not_called_latest(client, users, now):
    """An adopted instance may run a version no recorded release names: it is ahead, and the
    newest recorded release stays the latest the others are measured against."""
    from releases.models import Release

    Release.objects.create(
        version="6.0.0", major=6, minor=0, patch=0, kind="monthly", published_at=now, created_at=now
    )
    make_instance("hooli", version="6.1.0")
    make_instance("globex", version="6.0.0")
    make_instance("acme", version="5.9.0")
    client.force_login(users["devops"])
    html = client.get(reverse("fleet")).content.decode()

    def row(slug):
        return html.split(f'data-slug="{slug}"')[1].split("</tr>")[0]

    assert 'data-testid="latest-version">6.0.0<' in html
    assert "ahead of the latest release" in row("hooli")
    assert "latest" in row("globex") and "ahead" not in row("globex")
    assert "releases behind (major)" in row("acme")


@pytest.mark.clock_once("no date arithmetic: paging and totals")
def test_the_fleet_pages_its_rows_and_totals_count_every_instance(client, users):
    """Issue 16: a page of FLEET_ROWS instances (status order, then name); the totals, the cost
    and the counts by status are of the whole fleet, whatever the page."""
    from dashboards.fleet import FLEET_ROWS
    from provisioning.models import Instance

    statuses = ["suspended"] * 30 + ["torn_down"] * 20 + ["active"] * (FLEET_ROWS + 50)
    Instance.objects.bulk_create(
        Instance(
            slug=f"fl{i:03d}",
            customer="Acme Corp",
            status=status,
            gcp_project=f"mi-fl{i:03d}",
            version="6.0.0",
            machine_type="n1-standard-8",
        )
        for i, status in enumerate(statuses)
    )
    client.force_login(users["sales"])
    pages = [client.get(reverse("fleet"), {"page": n}).content.decode() for n in (1, 2)]
    slugs = [re.findall(r'data-slug="([^"]+)" data-status="([^"]+)"', html) for html in pages]
    assert len(slugs[0]) == FLEET_ROWS and len(slugs[1]) == 100
    shown = slugs[0] + slugs[1]
    assert sorted(shown) == sorted((f"fl{i:03d}", s) for i, s in enumerate(statuses))
    order = ["active", "provisioning", "failed", "suspended", "torn_down"]
    assert shown == sorted(shown, key=lambda pair: (order.index(pair[1]), pair[0]))
    for html in pages:  # 150 active at $532, 30 suspended at $13, torn down at $0
        assert 'data-testid="cost-total">$80,190<' in html
        assert 'data-testid="live-count">180<' in html
        assert "Active: 150 · Suspended: 30 · Torn down: 20" in html
    assert "Instances 1–100 of 200" in pages[0] and "Page 2 of 2" in pages[1]
    assert "?page=2" in pages[0] and "?page=1" in pages[1]
    # A page that is not a number shows the first; one beyond the last shows the last.
    html = client.get(reverse("fleet"), {"page": "x"}).content.decode()
    assert re.findall(r'data-slug="([^"]+)" data-status="([^"]+)"', html) == slugs[0]
    assert 'data-slug="fl049"' in client.get(reverse("fleet"), {"page": 99}).content.decode()


@pytest.mark.clock_once("markup only")
def test_the_fleet_rows_escape_what_people_typed(client, users):
    """The fleet's rows are drawn in Python (dashboards/fleet.rows_html)."""
    make_instance(
        "acme-x",
        customer='<script>alert("x")</script>',
        drift={"problems": ["<b>disk</b> differs"]},
    )
    client.force_login(users["sales"])
    html = client.get(reverse("fleet")).content.decode()
    row = html.split('data-slug="acme-x"')[1].split("</tr>")[0]
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in row
    assert 'title="&lt;b&gt;disk&lt;/b&gt; differs">drift</span>' in row
    assert '<a href="/instances/acme-x/">acme-x</a>' in row


# -- navigation and query counts ------------------------------------------------------------------


def test_navigation_shows_the_dashboards_by_role(client, users):
    for who, expected in [
        ("manager", {"SLA dashboard", "Board", "Fleet"}),
        ("devops", {"SLA dashboard", "Board", "Fleet"}),
        ("ce", {"SLA dashboard", "Fleet"}),
    ]:
        client.force_login(users[who])
        html = client.get(reverse("home")).content.decode()
        nav = html.split('aria-label="Main"')[1].split("</nav>")[0]
        shown = {label for label in ("SLA dashboard", "Board", "Fleet") if f">{label}<" in nav}
        assert shown == expected, who


def test_query_counts_do_not_grow_with_rows(client, users, now):
    pages = [
        (users["manager"], reverse("sla_dashboard")),
        (users["manager"], reverse("sla_export")),
        (users["devops"], reverse("board")),
        (users["ce"], reverse("fleet")),
        (users["ce"], "/api/v1/sla/summary/"),
    ]

    def add(count, seed):
        engineers = [users["devops"], users["devops2"]]
        random_rows(users["ce"], engineers, now, count, seed=seed, days=80)
        for i in range(count // 10):
            make_instance(version=f"5.{i}.0")

    def measure():
        counts = {}
        for user, url in pages:
            client.force_login(user)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
                if response.streaming:
                    b"".join(response.streaming_content)
            assert response.status_code == 200, url
            counts[url] = len(queries)
        return counts

    add(10, seed=1)
    # Open work on the board (the few rows may have none): its cards' runs are one query.
    timed_request(users["ce"], queued=now - timedelta(hours=1))
    few = measure()
    add(200, seed=2)
    assert measure() == few


def test_fleet_counts_each_instances_open_requests(users):
    """The fleet's open requests per instance (a subquery over the open states): requests that
    ended do not count, an instance without requests shows 0."""
    from dashboards.fleet import fleet
    from requests_app.models import Request, State

    with time_machine.travel(datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        busy, idle = make_instance(), make_instance()
        first = file(users["ce"], "upgrade", instance=busy.slug)
        Request.objects.filter(pk=first.pk).update(state=State.DONE)
        file(users["ce"], "upgrade", instance=busy.slug)
        file(users["ce"], "feature", instance=busy.slug)
        rows, _, _, _ = fleet()
    counts = {row.instance.slug: row.instance.open_requests for row in rows}
    assert counts == {busy.slug: 2, idle.slug: 0}


def test_fleet_and_home_query_counts_do_not_grow_with_instances_or_requests(
    client, users, django_assert_max_num_queries
):
    """Issue 16: the fleet and the home page ask a fixed number of queries, whatever the size
    of the fleet and the number of requests."""
    client.force_login(users["manager"])

    def grow(count):
        for _ in range(count):
            instance = make_instance()
            file(users["ce"], "upgrade", instance=instance.slug)
            file(users["ce"], "feature", instance=instance.slug)

    with time_machine.travel(datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        grow(1)
        counted = {}
        for url in ("/dashboards/fleet/", "/"):
            with CaptureQueriesContext(connection) as few:
                assert client.get(url).status_code == 200
            counted[url] = len(few)
        grow(4)
        for url, count in counted.items():
            with django_assert_max_num_queries(count):
                assert client.get(url).status_code == 200
