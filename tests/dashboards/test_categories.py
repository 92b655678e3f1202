"""The fleet page and the SLA dashboard (page, CSV, JSON summary) for one category of instances:
a select whose choice stays in the URL, the same figures everywhere."""

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from dashboards import figures
from requests_app.models import Request
from requests_app.sla import policies
from tests.dashboards.factories import make_instance, timed_request
from tests.dashboards.test_pages import page_figures
from tests.requests_app.test_api import api

pytestmark = pytest.mark.clock

NOW = datetime(2026, 3, 25, 15, tzinfo=ZoneInfo("America/Los_Angeles"))


@pytest.fixture
def now():
    policies.invalidate_cache()
    with time_machine.travel(NOW, tick=False):
        yield NOW
    policies.invalidate_cache()


def test_the_fleet_page_shows_one_category(client, users, now):
    make_instance("acme", customer="Acme Corp")
    make_instance("dogfood", customer="Us", category="internal", machine_type="n1-standard-16")
    client.force_login(users["manager"])
    everything = client.get(reverse("fleet")).content.decode()
    assert 'data-slug="acme"' in everything and 'data-slug="dogfood"' in everything
    internal = client.get(reverse("fleet"), {"category": "internal"}).content.decode()
    assert 'data-slug="dogfood"' in internal and 'data-slug="acme"' not in internal
    assert 'data-testid="monthly-total">$726<' in internal  # the category's own total
    assert '<option value="internal" selected>' in internal
    customer = client.get(reverse("fleet"), {"category": "CUSTOMER"}).content.decode()
    assert 'data-slug="acme"' in customer and 'data-slug="dogfood"' not in customer
    assert client.get(reverse("fleet"), {"category": "partner"}).status_code == 400


def test_the_sla_figures_page_csv_and_summary_follow_the_category(client, users, now):
    ours = [timed_request(users["ce"], queued=now - timedelta(days=d)) for d in (3, 4)]
    theirs = timed_request(users["ce"], queued=now - timedelta(days=5))
    Request.objects.filter(pk__in=[r.pk for r in ours]).update(category="internal")

    summary = api(users["manager"]).get("/api/v1/sla/summary/", {"category": "internal"}).json()
    assert summary["category"] == "internal"
    assert summary["total"]["count"] == 2
    everything = api(users["manager"]).get("/api/v1/sla/summary/").json()
    assert (everything["category"], everything["total"]["count"]) == (None, 3)
    response = api(users["manager"]).get("/api/v1/sla/summary/", {"category": "partner"})
    assert response.status_code == 400 and "category" in response.json()

    client.force_login(users["manager"])
    page = client.get(reverse("sla_dashboard"), {"category": "internal"}).content.decode()
    assert page_figures(page)["total"]["count"] == 2
    assert "internal instances only" in page and '<option value="internal" selected>' in page
    assert "category=internal" in page  # the CSV link keeps the filter
    export = client.get(reverse("sla_export"), {"category": "internal"})
    text = b"".join(export.streaming_content).decode()
    lines = list(csv.DictReader(io.StringIO(text)))
    assert sorted(int(line["id"]) for line in lines) == sorted(r.pk for r in ours)
    assert {line["category"] for line in lines} == {"internal"}
    assert theirs.pk not in {int(line["id"]) for line in lines}


@pytest.mark.parametrize("engine", ["sql", "python"])
def test_both_engines_filter_the_category_alike(users, now, engine):
    ours = timed_request(users["ce"], queued=now - timedelta(days=2), picked=now)
    timed_request(users["ce"], queued=now - timedelta(days=2))
    Request.objects.filter(pk=ours.pk).update(category="internal")
    period = figures.default_period(now)
    internal = figures.Period(period.since, period.until, category="internal")
    result = figures.compute(internal, now, engine=engine)
    assert result.total.count == 1 and result.kinds["create"].count == 1
    [row] = list(figures.csv_rows(internal, now, engine=engine))
    assert row[figures.CSV_COLUMNS.index("category")] == "internal"


def test_the_csv_gives_instants_with_microseconds_alike_in_both_engines(users, now):
    """PostgreSQL formats the export's instants (no round trip through Python): as isoformat
    does, with the fraction only when there is one."""
    fraction = timed_request(users["ce"], queued=now - timedelta(days=2), picked=now)
    Request.objects.filter(pk=fraction.pk).update(
        created_at=now - timedelta(days=3, microseconds=1234)
    )
    timed_request(users["ce"], queued=now - timedelta(days=2))
    period = figures.default_period(now)
    rows = {
        engine: list(figures.csv_rows(period, now, engine=engine)) for engine in ("sql", "python")
    }
    assert rows["sql"] == rows["python"]
    created = [row[figures.CSV_COLUMNS.index("created_at")] for row in rows["sql"]]
    assert any("." in text for text in created) and any("." not in text for text in created)
