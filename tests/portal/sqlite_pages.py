"""Run by tests/portal/test_sqlite_pages.py in a process of its own, with make run's embedded
SQLite database: every main page as each role, on a database holding requests with runs,
releases, a wave and an incident. Prints one line per page; exits non-zero on the first page
that fails."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from incidents import workflow as incident_workflow  # noqa: E402
from provisioning import runs  # noqa: E402
from releases import opening, waves  # noqa: E402
from requests_app import workflow  # noqa: E402
from requests_app.forms import FORMS  # noqa: E402
from tests.factories import make_instance, make_user  # noqa: E402

call_command("migrate", verbosity=0)
people = {
    "ce": make_user("ce", "CE"),
    "lead": make_user("lead", "CE Leadership"),
    "devops": make_user("devops", "DevOps"),
    "manager": make_user("manager", "Managers"),
}
acme = make_instance("acme", version="6.0.0")
make_instance("initech", version="5.9.0", status="suspended")
form = FORMS["suspend"](data={"instance": "acme", "justification": "budget freeze"})
assert form.is_valid(), form.errors
suspend = workflow.file_request(people["ce"], "suspend", form.cleaned_data, notify=False)
workflow.perform(people["lead"], suspend.pk, "approve", notify=False)
workflow.perform(people["devops"], suspend.pk, "pick_up", notify=False, queue_jobs=False)
workflow.perform(people["devops"], suspend.pk, "plan", notify=False, queue_jobs=False)
workflow.add_comment(people["devops"], suspend.pk, "Snapshot first.", notify=False)
# An access to every internal instance, granted, and one to acme waiting for a manager.
form = FORMS["access"](
    data={"person": "jo", "scope": "vault", "category": "internal", "justification": "on call"}
)
assert form.is_valid(), form.errors
grant = workflow.file_request(people["ce"], "access", form.cleaned_data, notify=False)
workflow.perform(people["manager"], grant.pk, "approve", notify=False)
workflow.perform(people["devops"], grant.pk, "pick_up", notify=False)
workflow.perform(people["devops"], grant.pk, "complete", notify=False)
form = FORMS["access"](
    data={
        "person": "jo@example.com",
        "scope": "gcp-managed",
        "category": "customer",
        "instance": "acme",
        "justification": "debug",
    }
)
assert form.is_valid(), form.errors
asked = workflow.file_request(people["ce"], "access", form.cleaned_data, notify=False)
release, _ = opening.record("6.1.0", timezone.now(), open_requests=False)
incident = incident_workflow.open_incident(
    people["ce"], title="Search is slow", severity="sev2", instances=[acme], notify=False
)
incident_workflow.perform(people["devops"], incident.pk, "ack")
incident_workflow.add_update(people["devops"], incident.pk, "Reindexing.")
pages = {
    "ce": [
        "/",
        "/requests/mine/",
        "/requests/new/",
        "/requests/new/create/",
        "/requests/new/suspend/",
        "/requests/new/access/",
        f"/requests/{suspend.pk}/",
        f"/requests/{grant.pk}/",
        "/instances/acme/",
        "/releases/",
        "/incidents/new/",
        f"/incidents/{incident.pk}/",
    ],
    "lead": ["/approvals/", f"/requests/{suspend.pk}/"],
    "devops": [
        "/queue/",
        "/requests/",
        "/requests/?q=acm",
        "/requests/?customer=ac&state=in_progress",
        f"/requests/{suspend.pk}/",
        "/instances/",
        "/instances/acme/",
        "/instances/initech/",
        "/dashboards/board/",
        "/dashboards/fleet/",
        "/dashboards/fleet/?category=internal",
        "/dashboards/sla/",
        "/dashboards/sla/?category=internal",
        "/access/",
        "/access/?expired=true&category=internal",
        "/api/v1/access/",
        "/api/v1/instances/?category=Internal",
        "/api/v1/requests/?category=internal",
        "/releases/",
        "/releases/6.1.0/",
        "/audit/",
        "/api/v1/requests/?q=acme",
        "/api/v1/releases/6.1.0/",
        "/api/v1/sla/summary/",
        "/incidents/",
        "/incidents/?state=acknowledged&severity=sev2&instance=acme",
        f"/incidents/{incident.pk}/",
        "/api/v1/incidents/?instance=ACME",
        f"/api/v1/incidents/{incident.pk}/",
    ],
    "manager": [
        "/approvals/",
        f"/requests/{asked.pk}/",
        "/access/",
        "/dashboards/sla/",
        "/dashboards/sla/export.csv",
        "/dashboards/sla/export.csv?category=internal",
        "/dashboards/board/",
        "/requests/",
        "/incidents/",
        f"/incidents/{incident.pk}/",
    ],
}
assert runs.latest_run(suspend.pk) is not None
failed = False
for who, urls in pages.items():
    client = Client()
    client.force_login(people[who])
    for url in urls:
        status = client.get(url).status_code
        print(f"{who:8} {status} {url}")
        failed |= status != 200
# A wave on SQLite too (its planning waits for a worker; the page and API must render).
wave = None
try:
    opening.open_upgrades()
    wave = waves.create(release, ["acme"], people["devops"])
except workflow.WorkflowError as exc:
    print("wave refused:", exc.message)
client = Client()
client.force_login(people["devops"])
status = client.get("/releases/6.1.0/").status_code
print(f"devops   {status} /releases/6.1.0/ (with a wave: {wave is not None})")
failed |= status != 200
sys.exit(1 if failed else 0)
