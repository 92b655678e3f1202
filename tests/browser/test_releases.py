"""The Releases pages in Chromium: DevOps record a release, the fleet's upgrades appear on its
page with the week's clock, a wave is planned from the checkboxes; other roles only read."""

import pytest

from provisioning import runs
from requests_app.models import Kind, Request
from tests.browser.conftest import ARTIFACTS, READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_instance, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


def test_devops_record_a_release_and_plan_a_wave_from_its_page(page, browser, live_server):
    make_user("devops", "DevOps")
    make_user("ce", "CE")
    make_instance("acme", version="6.1.0")
    make_instance("globex", version="6.1.0")
    make_instance("stark", version="6.2.0")

    ce_context = browser.new_context(base_url=live_server.url)
    ce_page = ce_context.new_page()
    sign_in(ce_page, "ce", PASSWORD)
    ce_page.goto("/releases/")
    assert "Releases feed" in ce_page.content()
    assert ce_page.get_by_test_id("record-release").count() == 0  # CE reads only
    ce_context.close()

    sign_in(page, "devops", PASSWORD)
    page.goto("/releases/")
    page.fill("#id_version", "6.2")
    page.get_by_role("button", name="Record release").click()
    assert "A version such as 6.2.0" in page.get_by_test_id("record-release").inner_text()
    page.fill("#id_version", "v6.2.0")
    page.get_by_role("button", name="Record release").click()
    page.wait_for_url("**/releases/6.2.0/")
    assert "2 upgrade requests open" in page.locator(".messages").inner_text()
    table = page.get_by_test_id("release-instances").inner_text()
    assert "acme" in table and "globex" in table and "stark" not in table
    assert "left" in page.get_by_test_id("release-clock").inner_text()
    assert "canary first (acme)" in page.get_by_test_id("suggested-waves").inner_text()

    page.check("input[name=instances][value=acme]")
    page.get_by_test_id("plan-wave").click()
    page.wait_for_url("**/releases/6.2.0/")
    assert "Wave 1" in page.get_by_test_id("wave-1").inner_text()
    upgrade = Request.objects.get(kind=Kind.UPGRADE, instance_slug="acme")
    assert upgrade.state == "in_progress" and upgrade.assignee.username == "devops"
    assert runs.latest_run(upgrade.pk).state == "queued"  # a worker plans it
    page.screenshot(path=str(ARTIFACTS / "release-page.png"), full_page=True)
