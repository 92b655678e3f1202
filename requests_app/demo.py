"""Demo instances and requests in varied states, for `seed_demo`. Idempotent: instances are
looked up by slug and requests by their `demo-N` external id."""

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from provisioning import instances
from provisioning.models import Instance, InstanceStatus
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Request

INSTANCES = [
    ("acme", "Acme Corp", InstanceStatus.ACTIVE, "5.9.0", "n1-standard-16", False),
    ("globex", "Globex", InstanceStatus.ACTIVE, "6.0.0", "n1-standard-8", True),
    ("initech", "Initech", InstanceStatus.SUSPENDED, "5.8.2", "n1-standard-8", False),
]

# (external id, filed by, kind, fields, days ago, then: [(action, by, hours later, extra)])
Step = tuple[str, str, int, dict[str, Any]]
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
            ("complete", "devops", 72, {"comment": "Handed over the admin password reset."}),
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
]


def seed() -> str:
    now = timezone.now()
    users = {u.username: u for u in get_user_model().objects.all()}
    for slug, customer, status, version, machine_type, executors in INSTANCES:
        instances.get_or_create(
            slug,
            customer,
            status,
            version=version,
            machine_type=machine_type,
            executors_enabled=executors,
        )
    made = 0
    for external_id, by, kind, fields, days_ago, steps in REQUESTS:
        if Request.objects.filter(external_id=external_id).exists():
            continue
        filed_at = now - timedelta(days=days_ago)
        form = FORMS[kind](data=fields)
        if not form.is_valid():
            raise ValueError(f"demo request {external_id} is invalid: {form.errors.as_json()}")
        request = workflow.file_request(
            users[by],
            kind,
            form.cleaned_data,
            now=filed_at,
            notify=False,
            external_id=external_id,
        )
        for action, actor, hours, extra in steps:
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
        made += 1
    return f"{Instance.objects.count()} demo instances, {made} demo requests added"
