"""The instance page (status, outputs, runs, cost, console links, request buttons, Compute's live
view) and the plan on the request page, which stays on the run after it applies."""

import re
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from provisioning.models import Run
from provisioning.verify import Observation
from requests_app import workflow
from requests_app.forms import FORMS
from tests.factories import PASSWORD, make_instance, make_user

pytestmark = pytest.mark.clock

TERRAFORM_OUTPUTS = {
    "url": "https://acme.managed.example.com",
    "instance_ip": "203.0.113.42",
    "instance_name": "acme-blue",
    "deployments": {"blue": "acme-blue"},
    "data_disk": "acme-blue-data",
    "project_id": "mi-acme",
    "zone": "us-central1-f",
}
PLAN = {
    "format_version": "1.2",
    "resource_changes": [
        {
            "address": "module.instance.terraform_data.project",
            "mode": "managed",
            "type": "terraform_data",
            "name": "project",
            "change": {"actions": ["no-op"]},
        },
        {
            "address": 'module.instance.terraform_data.vm["blue"]',
            "mode": "managed",
            "type": "terraform_data",
            "name": "vm",
            "change": {"actions": ["create"], "before": None, "after": {}},
        },
        {
            "address": "module.instance.terraform_data.network_endpoint_group",
            "mode": "managed",
            "type": "terraform_data",
            "name": "network_endpoint_group",
            "change": {
                "actions": ["update"],
                "before": {"input": {"endpoint": ""}},
                "after": {"input": {}},
                "after_unknown": {"input": {"endpoint": True}},
            },
        },
    ],
}


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


def file(user, kind, slug, **data):
    form = FORMS[kind](data={"instance": slug, "customer": "Acme", **data})
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data, notify=False)


def applied_run(instance, request=None, by=None, kind="create", **fields):
    now = timezone.now()
    return Run.objects.create(
        instance=instance,
        request_id=request.pk if request else None,
        kind=kind,
        state="applied",
        created_by=by,
        confirmed_by=by,
        created_at=now,
        finished_at=now,
        **fields,
    )


def test_the_instance_page_shows_outputs_runs_console_and_the_fleets_cost(client, users):
    instance = make_instance(
        "acme",
        status="suspended",
        outputs={"terraform": {**TERRAFORM_OUTPUTS, "instance_name": ""}, "snapshot": "acme-s1"},
    )
    request = file(users["ce"], "feature", "acme", justification="SAML help")
    seeded = applied_run(instance)
    suspend = applied_run(instance, request, users["devops"], kind="suspend")
    login(client, users["ce"])
    html = client.get(reverse("instance_detail", args=["acme"])).content.decode()

    assert 'href="https://console.cloud.google.com/home/dashboard?project=mi-acme"' in html
    assert 'href="https://console.cloud.google.com/logs/query?project=mi-acme"' in html
    # The same cost as the fleet page: a suspended instance costs its snapshot.
    assert re.search(r'data-testid="monthly-cost">\$13\b', html)
    login(client, users["manager"])
    fleet = client.get(reverse("fleet")).content.decode()
    assert re.search(r'data-slug="acme".*?data-field="cost" data-value="13">\$13<', fleet, re.S)

    runs = re.findall(r'<tr data-run-id="(\d+)" data-run-state="(\w+)">', html)
    assert runs == [(str(suspend.pk), "applied"), (str(seeded.pk), "applied")]  # newest first
    row = html[html.index(f'data-run-id="{suspend.pk}"') :].split("</tr>")[0]
    assert "Suspend" in row and "devops" in row
    assert f'href="/requests/{request.pk}/"' in row
    seeded_row = html.split(f'data-run-id="{seeded.pk}"')[1].split("</tr>")[0]
    assert "none (the portal’s own run)" in seeded_row

    assert 'data-output="instance_ip">203.0.113.42' in html
    assert 'data-output="instance_name"' not in html  # empty while suspended
    assert 'data-output="snapshot"><code>acme-s1' in html
    assert 'data-url="/instances/acme/live/"' in html and "portal/instance_live.js" in html


@pytest.mark.parametrize(
    "status, executors, offered",
    [
        ("active", False, ["suspend", "upgrade", "enable_executors", "teardown"]),
        ("active", True, ["suspend", "upgrade", "teardown"]),
        ("suspended", False, ["resume", "teardown"]),
        ("failed", False, []),
    ],
)
def test_request_buttons_open_the_right_form_prefilled(client, users, status, executors, offered):
    make_instance("acme", status=status, executors_enabled=executors)
    login(client, users["sales"])
    html = client.get(reverse("instance_detail", args=["acme"])).content.decode()
    links = re.findall(r'href="/requests/new/(\w+)/\?instance=acme" data-request-kind="\1"', html)
    assert links == offered
    if offered:
        form = client.get(f"/requests/new/{offered[0]}/?instance=acme").content.decode()
        assert re.search(r'name="instance"[^>]*value="acme"', form)


def test_no_buttons_for_those_who_cannot_file_or_while_a_request_is_open(client, users):
    make_instance("acme")
    login(client, users["devops"])
    assert b"data-request-kind" not in client.get("/instances/acme/").content
    request = file(users["ce"], "suspend", "acme")
    login(client, users["ce"])
    html = client.get("/instances/acme/").content.decode()
    assert "data-request-kind" not in html
    assert f'href="/requests/{request.pk}/">#{request.pk}</a> (suspend' in html


def test_a_torn_down_instance_links_to_nothing_it_had(client, users):
    instance = make_instance(
        "gone", status="torn_down", url="https://gone.managed.example.com", outputs={}
    )
    applied_run(instance, kind="teardown")
    login(client, users["ce"])
    html = client.get("/instances/gone/").content.decode()
    assert 'href="https://gone.managed.example.com"' not in html
    assert "https://gone.managed.example.com (torn down)" in html
    assert "console.cloud.google.com" not in html and "data-request-kind" not in html
    assert 'data-testid="monthly-cost">$0' in html
    assert "instance_live.js" not in html and 'data-run-state="applied"' in html


def test_the_live_view_is_a_fragment_of_what_compute_shows(client, users, settings):
    make_instance("acme", outputs={"color": "blue"})
    reading = Observation(
        project="mi-acme",
        zone="us-central1-f",
        vms={"acme-blue": "RUNNING"},
        versions={"acme-blue": "5.0.0"},
        disks=["acme-blue-data"],
    )
    login(client, users["ce"])
    with mock.patch("requests_app.views.observe_instance", return_value=reading) as observe:
        with mock.patch("requests_app.views.compute_client"):
            response = client.get("/instances/acme/live/")
    assert observe.call_count == 1 and response["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    assert "<html" not in html and 'data-shown="Active"' in html
    assert "<code>acme-blue</code>" in html and "runs 5.0.0" in html and "as recorded" in html

    settings.PROVISIONING_BACKEND, settings.SANDBOX_COMPUTE_URL = "sandbox", None
    html = client.get("/instances/acme/live/").content.decode()
    assert 'data-testid="live-error"' in html and "SANDBOX_COMPUTE_URL is not set" in html

    client.logout()
    assert client.get("/instances/acme/live/").status_code in (302, 403)
    login(client, make_user("nobody"))
    assert client.get("/instances/acme/live/").status_code == 403
    login(client, users["ce"])
    assert client.get("/instances/nope/live/").status_code == 404


def test_the_plan_stays_on_the_run_after_apply_with_its_outputs(client, users):
    instance = make_instance("acme")
    request = file(users["ce"], "feature", "acme", justification="x")
    run = applied_run(
        instance,
        request,
        users["devops"],
        plan_json=PLAN,
        plan_text="Terraform will perform the following actions: ...",
        plan_summary={"add": 1, "change": 1, "destroy": 0},
        outputs=TERRAFORM_OUTPUTS,
    )
    login(client, users["devops"])
    html = client.get(reverse("request_runs", args=[request.pk])).content.decode()
    rows = re.findall(r'<tr class="plan-row plan-row-(\w+)" data-plan-action="\1">', html)
    assert rows == ["change", "add"]  # no-op left out
    assert 'terraform_data.vm["blue"]' in html.replace("&quot;", '"')
    assert "input.endpoint" in html and "(known after apply)" in html
    assert '<details class="plan-text"><summary>' in html  # folded
    assert 'data-output="url"><a href="https://acme.managed.example.com">' in html
    assert f'data-testid="run-{run.pk}"' in html
