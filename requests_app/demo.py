"""Demo instances and requests in varied states, for `seed_demo`. Idempotent: instances are
looked up by slug and requests by their `demo-N` external id.

The demo fleet is real: each instance is built by runs of the same provisioning code that
serves requests (provisioning/fleet.py), on the sandbox Compute server, so every demo request
waiting on DevOps can be planned and applied, and the fleet page agrees with Compute."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from provisioning import fleet, instances, runs
from provisioning.execute import execute_run
from provisioning.models import Category, Instance, InstanceStatus
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Request

INSTANCES = [
    ("acme", "Acme Corp", InstanceStatus.ACTIVE, "5.9.0", "n1-standard-16", False),
    ("globex", "Globex", InstanceStatus.ACTIVE, "6.0.0", "n1-standard-8", True),
    ("initech", "Initech", InstanceStatus.SUSPENDED, "5.8.2", "n1-standard-8", False),
]
# The company's own instance among them (executors tried out there first).
INTERNAL = {"globex"}
# A step "apply_run" plans and applies the request's run now, in this process.
APPLY_RUN = "apply_run"

# (external id, filed by, kind, fields, days ago, then: [(action, by, hours later, extra)])
Step = tuple[str, str, int | None, dict[str, Any]]
REQUESTS: list[tuple[str, str, str, dict[str, Any], int, list[Step]]] = [
    (
        "demo-1",
        "ce",
        "create",
        {
            "instance": "hooli",
            "customer": "Hooli",
            "users": 400,
            "repositories": 3000,
            "justification": "Prospect trial; self-hosted ruled out (no Kubernetes team).",
        },
        1,
        [],
    ),
    (
        "demo-2",
        "sales",
        "create",
        {
            "instance": "umbrella",
            "customer": "Umbrella",
            "users": 4200,
            "repositories": 30000,
            "access": "ip_allowlist",
            "allowed_ip_ranges": "203.0.113.0/24",
            "justification": "Large enterprise; VPN-only access.",
        },
        3,
        [("approve", "lead", 5, {"comment": "Worth it; check the sizing."})],
    ),
    (
        "demo-3",
        "ce",
        "upgrade",
        {"instance": "acme", "target_version": "6.0.0", "justification": "Monthly release."},
        2,
        [("approve", "lead", 2, {})],
    ),
    (
        "demo-4",
        "ce",
        "resume",
        {"instance": "initech", "justification": "Customer is back from their budget freeze."},
        4,
        [("approve", "lead", 3, {}), ("pick_up", "devops", 20, {})],
    ),
    (
        "demo-5",
        "sales",
        "feature",
        {"instance": "globex", "justification": "SAML with their second IdP."},
        6,
        [
            ("approve", "lead", 1, {}),
            ("pick_up", "devops2", 10, {}),
            ("set_target", "devops2", 11, {"due_days": 20}),
            ("wait_on_customer", "devops2", 30, {"comment": "Waiting for their IdP metadata."}),
        ],
    ),
    (
        "demo-6",
        "ce",
        "create",
        {
            "instance": "stark",
            "customer": "Stark Industries",
            "users": 900,
            "justification": "Signed contract.",
        },
        20,
        [
            ("approve", "lead", 2, {}),
            ("pick_up", "devops", 8, {}),
            (APPLY_RUN, "devops", None, {}),
        ],
    ),
    (
        "demo-7",
        "sales",
        "teardown",
        {"instance": "globex", "confirm": "globex", "justification": "Trial ended?"},
        8,
        [("reject", "lead", 4, {"comment": "They renewed last week; keep it."})],
    ),
    (
        "demo-8",
        "ce",
        "access",
        {
            "person": "jordan@example.com",
            "scope": "gcp-managed",
            "category": "customer",
            "instance": "acme",
            "justification": "Jordan debugs Acme's slow searches on the VM this week.",
        },
        0,
        [],
    ),
    (
        "demo-9",
        "devops2",
        "access",
        {
            "person": "devops2",
            "scope": "vault",
            "category": "internal",
            "justification": "On call this quarter: secrets of our own instances.",
        },
        5,
        [
            ("approve", "manager", 1, {}),
            ("pick_up", "devops", 2, {}),
            ("complete", "devops", 3, {"comment": "Vault policy internal-oncall attached."}),
        ],
    ),
]


def seed(say: Callable[[str], None] = lambda text: None) -> str:
    users = {u.username: u for u in get_user_model().objects.all()}
    built = 0
    with fleet.compute_available():
        fleet.forget_legacy_states(say)
        for slug, customer, status, version, machine_type, executors in INSTANCES:
            instance, now_built = fleet.build(
                slug,
                customer,
                machine_type=machine_type,
                version=version,
                executors=executors,
                suspended=status == InstanceStatus.SUSPENDED,
                say=say,
            )
            built += now_built
            category = Category.INTERNAL if slug in INTERNAL else Category.CUSTOMER
            if instance.category != category:
                instances.update(instance, category=category)
        made = sum(_seed_request(users, *spec, say=say) for spec in REQUESTS)
    return (
        f"{Instance.objects.count()} demo instances ({built} built now), {made} demo requests added"
    )


def _seed_request(
    users: dict[str, Any],
    external_id: str,
    by: str,
    kind: str,
    fields: dict[str, Any],
    days_ago: int,
    steps: list[Step],
    say: Callable[[str], None],
) -> bool:
    if Request.objects.filter(external_id=external_id).exists():
        return False
    filed_at = timezone.now() - timedelta(days=days_ago)
    form = FORMS[kind](data=fields)
    if not form.is_valid():
        raise ValueError(f"demo request {external_id} is invalid: {form.errors.as_json()}")
    request = workflow.file_request(
        users[by], kind, form.cleaned_data, now=filed_at, notify=False, external_id=external_id
    )
    for action, actor, hours, extra in steps:
        if action == APPLY_RUN:
            say(f"{external_id}: plan and apply the {kind} of {request.instance_slug}")
            _apply_run_now(users[actor], request.pk)
            continue
        assert hours is not None
        due_at = filed_at + timedelta(days=extra["due_days"]) if "due_days" in extra else None
        workflow.perform(
            users[actor],
            request.pk,
            action,
            comment=extra.get("comment", ""),
            due_at=due_at,
            now=filed_at + timedelta(hours=hours),
            notify=False,
        )
    return True


def _apply_run_now(devops: Any, request_id: int) -> None:
    """Plan and confirm as DevOps would, executing the run here (no worker needed)."""
    workflow.perform(devops, request_id, "plan", notify=False, queue_jobs=False)
    run = runs.latest_run(request_id)
    assert run is not None
    execute_run(run.pk)
    workflow.perform(devops, request_id, "confirm", notify=False, queue_jobs=False)
    execute_run(run.pk)
    run.refresh_from_db()
    if run.state != "applied":
        raise fleet.FleetError(f"demo run #{run.pk} did not apply: {run.state} {run.error}")
