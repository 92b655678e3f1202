"""DevOps provisions an instance by hand in the pages: Plan, read the plan, Confirm, done."""

import signal

import pytest

from provisioning.compute import Compute
from provisioning.models import Instance
from provisioning.sandbox.server import start_in_thread
from requests_app import workflow
from requests_app.forms import FORMS
from tests.browser.conftest import CHROMIUM_KEEPS_REAL_TIME, sign_in
from tests.factories import PASSWORD, make_user
from tests.provisioning.test_engine import Worker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.clock,
    pytest.mark.clock_real(f"{CHROMIUM_KEEPS_REAL_TIME}; so does its RQ worker subprocess"),
]


@pytest.fixture
def sandbox_and_worker(settings, tmp_path, transactional_db):
    # transactional_db first: the worker must be pointed at the test database.
    url, server = start_in_thread(port=0)
    settings.SANDBOX_COMPUTE_URL = url
    settings.VAR_DIR = tmp_path / "var"
    worker = Worker(url, settings.VAR_DIR).start()
    yield url
    worker.kill(signal.SIGTERM)
    server.stop()


def test_devops_plans_confirms_and_the_vm_runs(page, screenshot, sandbox_and_worker):
    ce, lead = make_user("ce", "CE"), make_user("lead", "CE Leadership")
    make_user("devops", "DevOps")
    form = FORMS["create"](data={"instance": "clicky", "customer": "Clicky"})
    assert form.is_valid()
    request = workflow.file_request(ce, "create", form.cleaned_data, notify=False)
    workflow.perform(lead, request.pk, "approve", notify=False)

    sign_in(page, "devops", PASSWORD)
    page.goto(f"/requests/{request.pk}/")
    page.click("button[data-action=pick_up]")
    page.wait_for_selector("button[data-action=plan]")
    page.click("button[data-action=plan]")
    # The panel refreshes itself; the page reloads when the plan is ready.
    page.wait_for_selector(
        "#runs-panel[data-active='0'] [data-testid=plan-summary]", timeout=120_000
    )
    page.wait_for_load_state()
    assert "to add" in page.locator("[data-testid=plan-summary]").inner_text()
    screenshot("1-planned")
    page.click("button[data-action=confirm]")
    page.wait_for_selector("[data-testid=request-state]:has-text('Done')", timeout=180_000)
    screenshot("2-applied")
    assert Instance.objects.get(slug="clicky").status == "active"
    status = Compute(sandbox_and_worker, timeout=30).get_instance_status(
        "mi-clicky", "us-central1-f", "clicky-blue"
    )
    assert status == "RUNNING"
