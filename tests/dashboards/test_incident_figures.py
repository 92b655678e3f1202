"""The incidents on the SLA dashboard and in `GET /api/v1/sla/summary/`: per severity the
number opened in the period, how many are still open, time to acknowledge and to resolve
(median and 90th percentile) and % within target, by the one status rule; the period and
customer filters apply."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from dashboards import incident_figures
from dashboards.figures import Period
from incidents import workflow
from requests_app.sla import policies
from tests.incidents.factories import make_instance, open_incident

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 4, 30, 12, tzinfo=LA)
APRIL = Period(datetime(2026, 4, 1, tzinfo=LA), datetime(2026, 5, 1, tzinfo=LA))


def la(*args):
    return datetime(*args, tzinfo=LA)


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()


def run(users, incident, ack_after=None, resolve_after=None):
    """Acknowledge and resolve `incident` so many minutes after it opened."""
    opened = incident.created_at
    if ack_after is not None:
        workflow.perform(
            users["devops"], incident.pk, "ack", now=opened + timedelta(minutes=ack_after)
        )
    if resolve_after is not None:
        workflow.perform(
            users["devops"],
            incident.pk,
            "resolve",
            postmortem_url="https://example.com/pm",
            now=opened + timedelta(minutes=resolve_after),
        )


@pytest.fixture
def april(users):
    """sev1: acknowledged after 5, 10, 20 and 40 minutes (target 15: two met, two breached),
    resolved after 60, 120 and 300 minutes (target 4 h: two met, one breached), the fourth
    still open (breached too). sev2: one open since the 29th, ack due and passed. One sev1 in
    March (outside) and a sev3 on another customer's instance."""
    acme = make_instance("acme", customer="Acme Corp")
    other = make_instance("globex", customer="Globex")
    sev1 = [
        open_incident(users["ce"], acme, severity="sev1", at=la(2026, 4, day, 9))
        for day in (6, 7, 8, 9)
    ]
    run(users, sev1[0], 5, 60)
    run(users, sev1[1], 10, 120)
    run(users, sev1[2], 20, 300)
    run(users, sev1[3], 40)
    open_incident(users["ce"], acme, severity="sev2", at=la(2026, 4, 29, 9))
    run(users, open_incident(users["ce"], acme, severity="sev1", at=la(2026, 3, 20, 9)), 1, 2)
    run(users, open_incident(users["ce"], other, severity="sev3", at=la(2026, 4, 28, 9)), 60)
    return sev1


def test_the_figures_per_severity(users, april):
    result = incident_figures.summary_json(incident_figures.compute(APRIL, NOW))
    assert result["sev1"] == {
        "count": 4,
        "open": 1,
        "acknowledge_within_target_pct": 50.0,
        # Two met; one resolved late and one still open past its 4 hours: breached.
        "resolution_within_target_pct": 50.0,
        # 5, 10, 20, 40 minutes: the median between 10 and 20, p90 at 0.9 * 3 = 2.7 ranks.
        "median_acknowledge_seconds": 15 * 60,
        "p90_acknowledge_seconds": int((20 + 0.7 * 20) * 60),
        # 60, 120, 300 minutes
        "median_resolution_seconds": 120 * 60,
        "p90_resolution_seconds": int((120 + 0.8 * 180) * 60),
    }
    assert result["sev2"] == {
        "count": 1,
        "open": 1,
        "acknowledge_within_target_pct": 0.0,  # running past its hour: breached
        "resolution_within_target_pct": 0.0,  # 24 h passed too
        "median_acknowledge_seconds": None,
        "p90_acknowledge_seconds": None,
        "median_resolution_seconds": None,
        "p90_resolution_seconds": None,
    }
    assert result["sev3"]["count"] == 1 and result["sev3"]["acknowledge_within_target_pct"] == 100
    assert result["sev3"]["resolution_within_target_pct"] is None  # running, within target
    assert result["total"]["count"] == 6 and result["total"]["open"] == 3


def test_the_customer_filter_and_the_period(users, april):
    acme_only = Period(APRIL.since, APRIL.until, customer="acme corp")
    result = incident_figures.compute(acme_only, NOW)
    assert result["total"].count == 5 and result["sev3"].count == 0
    march = Period(la(2026, 3, 1), la(2026, 4, 1))
    assert (
        incident_figures.compute(march, NOW)["sev1"].as_json()["median_resolution_seconds"] == 120
    )


def test_the_api_and_the_dashboard_say_the_same(client, users, april):
    api = APIClient()
    api.force_authenticate(users["manager"])
    with time_machine.travel(NOW, tick=False):
        body = api.get("/api/v1/sla/summary/?since=2026-04-01&until=2026-04-30").json()
        client.force_login(users["manager"])
        page = client.get("/dashboards/sla/?since=2026-04-01&until=2026-04-30&kind=create")
    assert body["incidents"]["sev1"]["median_acknowledge_seconds"] == 900
    html = page.content.decode()
    section = html[html.index('data-testid="incidents"') :]
    section = section[: section.index("</section>")]
    shown = {
        (sev, field): value
        for sev, row in re.findall(r'<tr data-severity="([a-z0-9]+)">(.*?)</tr>', section, re.S)
        for field, value in re.findall(r'data-field="([a-z_0-9]+)" data-value="([^"]*)"', row)
    }
    for severity in ("sev1", "sev2", "sev3", "total"):
        for field, value in body["incidents"][severity].items():
            assert shown[(severity, field)] == ("" if value is None else str(value)), (
                severity,
                field,
            )
    # Durations people read: minutes under an hour.
    assert ">15 min<" in section and ">2.0 h<" in section
