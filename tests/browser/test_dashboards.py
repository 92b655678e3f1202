"""The dashboards in Chromium, on seed_demo's data plus three months of requests: the managers'
SLA dashboard (its figures are the API's, its CSV holds the same rows), the DevOps board (its
timers count down), the fleet. Screenshots go to test-artifacts/."""

import csv
import io
import json
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from portal import roles
from provisioning.models import Instance
from requests_app.models import Request
from requests_app.sla import policies
from tests.browser.conftest import READS_THE_CLOCK, sign_in
from tests.dashboards.factories import random_rows

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    *READS_THE_CLOCK,
]


@pytest.fixture
def seeded():
    # Transactional tests flush the groups that the data migration made.
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    # The demo people and instances as seed_demo makes them, without building the instances'
    # infrastructure (these pages read the records; tests/portal/test_demo_fleet.py builds it).
    from portal.management.commands.seed_demo import Command
    from requests_app.demo import INSTANCES
    from tests.dashboards.factories import make_instance

    Command().seed_users(settings.DEMO_PASSWORD)
    for slug, customer, status, version, machine_type, executors in INSTANCES:
        make_instance(
            slug,
            customer=customer,
            status=status,
            version=version,
            machine_type=machine_type,
            executors_enabled=executors,
        )
    policies.invalidate_cache()
    people = {u.username: u for u in get_user_model().objects.all()}
    random_rows(
        people["ce"], [people["devops"], people["devops2"]], timezone.now(), 80, seed=21, days=85
    )
    return people


def shown_figures(page):
    figures = {}
    for row in page.locator("[data-testid=kind-table] tr[data-kind]").all():
        cells = row.locator("[data-field]").all()
        values = {c.get_attribute("data-field"): c.get_attribute("data-value") for c in cells}
        figures[row.get_attribute("data-kind")] = {
            field: None if value == "" else json.loads(value) for field, value in values.items()
        }
    return figures


def test_a_manager_reads_the_sla_dashboard(page, screenshot, seeded):
    sign_in(page, "manager", settings.DEMO_PASSWORD)
    page.click("nav >> text=SLA dashboard")
    page.wait_for_selector("[data-testid=kind-table]")
    assert page.locator("[data-testid=trend-chart] polyline").count() >= 1
    assert page.locator("[data-testid=load-chart] rect[data-engineer=devops]").count() == 2
    screenshot("1-dashboard")

    api = page.request.get("/api/v1/sla/summary/").json()
    shown = shown_figures(page)
    assert shown.pop("total") == api["total"]
    assert shown == api["kinds"]
    assert api["total"]["count"] >= 80
    assert page.locator("[data-testid=total-count]").inner_text() == str(api["total"]["count"])

    page.select_option("select[name=kind]", "create")
    page.click(".period-form button[type=submit]")
    page.wait_for_url(re.compile(r"kind=create"))
    only = page.request.get("/api/v1/sla/summary/?kind=create").json()
    shown = shown_figures(page)
    assert list(shown) == ["create", "total"]
    assert shown["create"] == only["kinds"]["create"]
    screenshot("2-creates-only")

    with page.expect_download() as download:
        page.click("[data-testid=csv-link]")
    lines = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert len(lines) == only["kinds"]["create"]["count"]
    assert {line["kind"] for line in lines} == {"create"}
    met = sum(line["resolution_status"] == "met" for line in lines)
    breached = sum(line["resolution_status"] == "breached" for line in lines)
    if met + breached:
        expected = round(100 * met / (met + breached), 1)
        assert only["kinds"]["create"]["resolution_met_pct"] == expected


def test_devops_watch_the_board_count_down(page, screenshot, seeded):
    sign_in(page, "devops", settings.DEMO_PASSWORD)
    page.click('nav >> text="Board"')
    page.wait_for_selector("[data-testid=board]")
    for state in ("queued", "in_progress", "waiting_on_customer"):
        count = Request.objects.filter(state=state).count()
        assert page.locator(f"[data-testid=count-{state}]").inner_text() == str(count)
    screenshot("1-board")
    live = page.locator(".timer[data-live][data-working='0']").first
    live.wait_for()
    first = int(live.get_attribute("data-left"))
    text = live.locator(".timer-text").inner_text()
    page.wait_for_timeout(2500)
    later = int(live.get_attribute("data-left"))
    assert 1 <= first - later <= 4
    assert live.locator(".timer-text").inner_text() != text
    screenshot("2-board-later")


def test_anyone_reads_the_fleet(page, screenshot, seeded):
    sign_in(page, "sales", settings.DEMO_PASSWORD)
    page.click("nav >> text=Fleet")
    page.wait_for_selector("[data-testid=fleet-table]")
    rows = page.locator("[data-testid=fleet-table] tbody tr[data-slug]")
    assert rows.count() == Instance.objects.count() >= 3
    assert page.locator("[data-testid=latest-version]").inner_text() == "6.1.0"
    acme = page.locator("tr[data-slug=acme]")
    assert "2 releases behind (major)" in acme.inner_text()
    costs = [int(c.get_attribute("data-value")) for c in page.locator("td[data-field=cost]").all()]
    total = page.locator("[data-testid=cost-total]").inner_text()
    assert total == f"${sum(costs):,}"
    screenshot("1-fleet")
