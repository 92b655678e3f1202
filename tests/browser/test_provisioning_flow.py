"""DevOps provisions an instance by hand in the pages: Plan, read the plan, Confirm, done."""

import signal

import pytest
from django.conf import settings
from django.utils import timezone

from provisioning.compute import Compute
from provisioning.models import Instance, Run
from provisioning.sandbox.server import start_in_thread
from requests_app import workflow
from requests_app.forms import FORMS
from tests.browser.conftest import CHROMIUM_KEEPS_REAL_TIME, sign_in
from tests.factories import PASSWORD, make_instance, make_user
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


BACKGROUND = "el => getComputedStyle(el).backgroundColor"
GREEN, AMBER, PURPLE, RED = (
    "rgb(230, 246, 236)",
    "rgb(255, 244, 214)",
    "rgb(241, 232, 255)",
    "rgb(253, 232, 232)",
)


def assert_no_local_paths(page):
    html = page.content()
    for local in ("/tmp", "python_bin", "pythonpath", str(settings.BASE_DIR)):
        assert local not in html, local


def adds_count(slug):
    return Instance.objects.get(slug=slug).runs.get().plan_summary["add"]


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
    # The plan as a table: a green row per resource to add, nothing of this machine in it.
    table = page.locator("[data-testid=plan-table]")
    adds = table.locator("tr[data-plan-action=add]")
    assert adds.count() == Instance.objects.get(slug="clicky").runs.get().plan_summary["add"]
    assert 'terraform_data.vm["blue"]' in table.inner_text()
    assert adds.first.locator(".plan-action").evaluate(BACKGROUND) == GREEN
    assert not page.locator("details.plan-text").evaluate("el => el.open")  # folded
    assert_no_local_paths(page)
    screenshot("1-planned")
    page.click("button[data-action=confirm]")
    page.wait_for_selector("[data-testid=request-state]:has-text('Done')", timeout=180_000)
    # Applied: the plan stays, and the outputs are there.
    assert page.locator("[data-testid=plan-table] tr[data-plan-action=add]").count() == adds_count(
        "clicky"
    )
    outputs = page.locator("[data-testid=run-outputs]")
    assert "https://clicky.managed.example.com" in outputs.inner_text()
    assert outputs.locator("[data-output=instance_ip]").inner_text().startswith("203.0.113.")
    assert_no_local_paths(page)
    screenshot("2-applied")
    assert Instance.objects.get(slug="clicky").status == "active"
    status = Compute(sandbox_and_worker, timeout=30).get_instance_status(
        "mi-clicky", "us-central1-f", "clicky-blue"
    )
    assert status == "RUNNING"

    # The instance page: its run, its outputs, the console, and Compute's view after load.
    page.click("a[href='/instances/clicky/']")
    page.wait_for_selector("#live-view[data-state=loaded]", timeout=30_000)
    assert "clicky-blue RUNNING" in page.locator("[data-testid=live-vms]").inner_text()
    assert "as recorded" in page.locator("[data-testid=live-status]").inner_text()
    run = page.locator("[data-testid=instance-runs] tr[data-run-state=applied]")
    assert run.count() == 1 and "devops" in run.inner_text() and "Create" in run.inner_text()
    assert run.locator(f"a[href='/requests/{request.pk}/']").count() == 1
    console = page.locator("[data-testid=console-link]").get_attribute("href")
    assert console == "https://console.cloud.google.com/home/dashboard?project=mi-clicky"
    assert "203.0.113." in page.locator("[data-testid=outputs]").inner_text()
    assert_no_local_paths(page)
    screenshot("3-instance")


def change(address, actions, **body):
    kind, _, name = address.removeprefix("module.instance.").partition(".")
    return {
        "address": address,
        "mode": "managed",
        "type": kind,
        "name": name.split("[")[0],
        "change": {"actions": actions, "before": None, "after": None, **body},
    }


def test_every_action_has_its_colour_and_replaces_say_why(page, screenshot):
    make_user("devops", "DevOps")
    ce, lead = make_user("ce", "CE"), make_user("lead", "CE Leadership")
    instance = make_instance("hues", version="6.0.0", url="https://hues.managed.example.com")
    form = FORMS["upgrade"](data={"instance": "hues", "target_version": "6.1.0"})
    assert form.is_valid(), form.errors
    request = workflow.file_request(ce, "upgrade", form.cleaned_data, notify=False)
    workflow.perform(lead, request.pk, "approve", notify=False)
    vm = {"input": {"machine_type": "n1-standard-8", "version": "6.0.0"}}
    plan = {
        "resource_changes": [
            change('module.instance.terraform_data.vm["green"]', ["create"]),
            change(
                "module.instance.terraform_data.network_endpoint_group",
                ["update"],
                before={"input": {"endpoint": "hues-blue"}},
                after={"input": {}},
                after_unknown={"input": {"endpoint": True}},
            ),
            change(
                'module.instance.terraform_data.data_disk["green"]',
                ["delete", "create"],
                before={"triggers_replace": ["hues-blue-s1"]},
                after={"triggers_replace": ["hues-green-r9"]},
                after_unknown={},
                replace_paths=[["triggers_replace"]],
            ),
            change('module.instance.terraform_data.vm["blue"]', ["delete"], before=vm),
            change("module.instance.terraform_data.project", ["no-op"]),
        ]
    }
    now = timezone.now()
    Run.objects.create(
        instance=instance,
        request_id=request.pk,
        kind="upgrade",
        state="applied",
        created_at=now,
        finished_at=now,
        plan_json=plan,
        plan_text="Terraform will perform the following actions: (the plan text)",
        plan_summary={"add": 2, "change": 1, "destroy": 2},
        outputs={"url": "https://hues.managed.example.com", "instance_ip": "203.0.113.9"},
    )
    sign_in(page, "devops", PASSWORD)
    page.goto(f"/requests/{request.pk}/")
    rows = page.locator("[data-testid=plan-table] tbody tr")
    assert [r.get_attribute("data-plan-action") for r in rows.all()] == [
        "destroy",
        "replace",
        "change",
        "add",
    ]
    for action, colour in (
        ("add", GREEN),
        ("change", AMBER),
        ("replace", PURPLE),
        ("destroy", RED),
    ):
        badge = page.locator(f"tr[data-plan-action={action}] .plan-action")
        assert badge.evaluate(BACKGROUND) == colour, action
        assert badge.inner_text().lower() == action  # the word too, not the colour alone
    replace = page.locator("tr[data-plan-action=replace]").inner_text()
    assert "triggers_replace[0]" in replace and "forces replacement" in replace
    assert "(known after apply)" in page.locator("tr[data-plan-action=change]").inner_text()
    page.click("details.plan-text summary")
    assert "(the plan text)" in page.locator("[data-testid=plan-text]").inner_text()
    assert page.locator("[data-testid=run-outputs] a").get_attribute("href") == (
        "https://hues.managed.example.com"
    )
    assert_no_local_paths(page)
    screenshot("plan-table")


def test_the_instance_page_costs_what_the_fleet_says_and_forgets_a_torn_down_url(page, screenshot):
    make_user("ce", "CE")
    frozen = make_instance(
        "frozen",
        status="suspended",
        machine_type="n1-standard-16",
        outputs={"terraform": {"instance_ip": "203.0.113.7"}, "snapshot": "frozen-blue-s4"},
    )
    now = timezone.now()
    Run.objects.create(
        instance=frozen, kind="suspend", state="applied", created_at=now, finished_at=now
    )
    make_instance("gone", status="torn_down", url="https://gone.managed.example.com")
    sign_in(page, "ce", PASSWORD)
    page.goto("/instances/frozen/")
    assert page.locator("[data-testid=monthly-cost]").inner_text().startswith("$13 ")
    assert [a.inner_text() for a in page.locator("[data-request-kind]").all()] == [
        "Resume",
        "Tear down",
    ]
    assert page.locator("[data-testid=logs-link]").get_attribute("href") == (
        "https://console.cloud.google.com/logs/query?project=mi-frozen"
    )
    assert page.locator("[data-testid=instance-runs] tr[data-run-state=applied]").count() == 1
    page.wait_for_selector("#live-view[data-state=loaded]")  # no Compute here: it says so
    screenshot("1-suspended")
    page.click("[data-request-kind=resume]")
    assert page.locator("input[name=instance]").input_value() == "frozen"

    page.goto("/dashboards/fleet/")
    assert page.locator("tr[data-slug=frozen] td[data-field=cost]").inner_text() == "$13"

    page.goto("/instances/gone/")
    assert page.locator("a[href='https://gone.managed.example.com']").count() == 0
    assert "(torn down)" in page.locator("[data-testid=instance-url]").inner_text()
    assert page.locator("[data-testid=console-link], [data-request-kind]").count() == 0
    screenshot("2-torn-down")
