"""`manage.py import_requests` (docs/api.md): history replayed through the live rules."""

import json
from datetime import datetime
from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command

from provisioning.models import Instance, InstanceStatus
from requests_app.models import Approval, Comment, Event, Notification, Request, State
from tests.factories import make_user

pytestmark = pytest.mark.clock


def at(day, hour=9, minute=0):
    return f"2024-03-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def ev(when, by, action, **extra):
    return {"at": when, "by": by, "action": action, **extra}


# Several records in various end states, with the states each event should move through.
HISTORY = [
    (
        {
            "external_id": "OPS-1",
            "kind": "create",
            "customer": "Acme",
            "instance": "acme",
            "requested_by": "ce",
            "non_standard_reasons": [],
            "events": [
                ev(at(1), "ce", "submit", comment="New customer."),
                ev(at(1, 11), "lead", "approve"),
                ev(at(2), "devops", "pick_up"),
                ev(at(2, 10), "devops", "comment", comment="Building it."),
                ev(at(4), "devops", "complete", comment="Handed over."),
            ],
        },
        ["pending_approval", "queued", "in_progress", "in_progress", "done"],
    ),
    (
        {
            "external_id": "OPS-2",
            "kind": "create",
            "customer": "Bigcorp",
            "instance": "bigcorp",
            "requested_by": "sales",
            "users": 5000,
            "repositories": 1000,
            "machine_type": "n1-standard-96",
            "events": [
                ev(at(3), "sales", "submit"),
                ev(at(3, 12), "lead", "approve"),
                ev(at(5), "reviewer", "tech_approve", comment="Two VMs later."),
                ev(at(6), "devops2", "pick_up"),
                ev(at(6, 15), "devops2", "wait_on_customer", comment="Need their SSO metadata."),
                ev(at(8), "devops2", "resume_work"),
            ],
        },
        [
            "pending_approval",
            "tech_review",
            "queued",
            "in_progress",
            "waiting_on_customer",
            "in_progress",
        ],
    ),
    (
        {
            "external_id": "OPS-3",
            "kind": "feature",
            "instance": "acme",
            "requested_by": "ce",
            "justification": "Custom SAML attribute mapping.",
            "events": [
                ev(at(5), "ce", "submit"),
                ev(at(5, 10), "lead", "approve"),
                ev(at(5, 11), "devops", "set_target", due_at=at(20)),
                ev(at(6), "devops", "pick_up"),
            ],
        },
        ["pending_approval", "queued", "queued", "in_progress"],
    ),
    (
        {
            "external_id": "OPS-4",
            "kind": "suspend",
            "customer": "Legacy Co",
            "instance": "legacy",
            "requested_by": "sales",
            "events": [
                ev(at(7), "sales", "submit"),
                ev(at(7, 13), "lead", "reject", comment="Contract runs to June."),
            ],
        },
        ["pending_approval", "rejected"],
    ),
    (
        {
            "external_id": "OPS-5",
            "kind": "upgrade",
            "instance": "acme",
            "requested_by": "ce",
            "target_version": "6.1.0",
            "events": [
                ev(at(9), "ce", "submit"),
                ev(at(9, 10), "ce", "cancel", comment="Wrong version."),
            ],
        },
        ["pending_approval", "cancelled"],
    ),
    (
        {
            "external_id": "OPS-6",
            "kind": "teardown",
            "instance": "legacy",
            "requested_by": "ce",
            "non_standard_reasons": ["security"],
            "events": [
                ev(at(10), "ce", "submit"),
                ev(at(10, 10), "lead", "approve"),
                ev(at(11), "reviewer", "tech_reject", comment="Keep the audit logs first."),
            ],
        },
        ["pending_approval", "tech_review", "rejected"],
    ),
    (
        {
            "external_id": "OPS-7",
            "kind": "enable_executors",
            "instance": "acme",
            "requested_by": "sales",
            "events": [ev(at(12), "sales", "submit")],
        },
        ["pending_approval"],
    ),
]
RECORDS = [record for record, _ in HISTORY]


def write(tmp_path, records, name="history.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records) if not isinstance(records, str) else records)
    return str(path)


def run(path, *args):
    out, err = StringIO(), StringIO()
    call_command("import_requests", path, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(path, *args):
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("import_requests", path, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), str(raised.value)


def snapshot():
    """Every row the import may touch, as plain values."""
    return {
        "requests": list(
            Request.objects.order_by("pk").values_list(
                "pk", "external_id", "kind", "state", "standard", "instance_id", "updated_at"
            )
        ),
        "events": list(Event.objects.order_by("pk").values()),
        "comments": list(Comment.objects.order_by("pk").values()),
        "approvals": list(Approval.objects.order_by("pk").values()),
        "instances": list(Instance.objects.order_by("pk").values()),
        "notifications": Notification.objects.count(),
    }


def parse(text):
    return datetime.fromisoformat(text)


def no_provisioning_runs():
    for model in apps.get_app_config("provisioning").get_models():
        if model is not Instance:
            assert model.objects.count() == 0, model.__name__


@pytest.fixture
def history(tmp_path, users):
    return write(tmp_path, RECORDS)


def test_loads_records_in_their_end_states(history):
    out, err = run(history)

    assert err == ""
    assert "loaded 7, skipped 0 already imported, rejected 0" in out
    states = {r.external_id: r.state for r in Request.objects.all()}
    assert states == {record["external_id"]: steps[-1] for record, steps in HISTORY}
    assert Notification.objects.count() == 0
    no_provisioning_runs()


def test_history_is_the_events_given(history):
    run(history)

    for record, steps in HISTORY:
        request = Request.objects.get(external_id=record["external_id"])
        events = list(request.events.order_by("at", "pk").select_related("by"))
        got = [(e.at, e.by.username, e.action, e.from_state, e.to_state) for e in events]
        from_states = ["", *steps[:-1]]
        want = [
            (parse(given["at"]), given["by"], given["action"], old, new)
            for given, old, new in zip(record["events"], from_states, steps, strict=True)
        ]
        assert got == want, record["external_id"]
        assert request.created_at == parse(record["events"][0]["at"])
        assert request.requested_by.username == record["requested_by"]


def test_fields_take_their_defaults_and_scale_makes_non_standard(history):
    run(history)

    acme = Request.objects.get(external_id="OPS-1")
    assert (acme.machine_type, acme.zone, acme.access) == (
        "n1-standard-8",
        "us-central1-f",
        "public_sso",
    )
    assert acme.target_version == settings.INSTANCE_DEFAULT_VERSION
    assert acme.standard and acme.non_standard_reasons == []
    assert acme.justification == "New customer."

    big = Request.objects.get(external_id="OPS-2")
    assert big.non_standard_reasons == ["scale"] and not big.standard
    assert big.machine_type == "n1-standard-96"
    assert big.assignee.username == "devops2"

    feature = Request.objects.get(external_id="OPS-3")
    assert feature.customer == "Acme"  # from the instance OPS-1 created
    assert feature.target_due_at == parse(at(20))

    upgrade = Request.objects.get(external_id="OPS-5")
    assert upgrade.release_published_at == parse(at(9))  # default: when it was filed

    teardown = Request.objects.get(external_id="OPS-6")
    assert teardown.non_standard_reasons == ["security"]


def test_outcomes_reach_instances_and_approvals_are_recorded(history):
    run(history)

    acme = Instance.objects.get(slug="acme")
    assert acme.status == InstanceStatus.ACTIVE and acme.customer == "Acme"
    assert acme.version == settings.INSTANCE_DEFAULT_VERSION
    # The portal had never heard of "legacy": the suspend record made it, active.
    legacy = Instance.objects.get(slug="legacy")
    assert (legacy.status, legacy.customer) == (InstanceStatus.ACTIVE, "Legacy Co")
    assert legacy.gcp_project.endswith("-legacy") and legacy.url.startswith("https://legacy.")
    assert not Instance.objects.filter(slug="bigcorp").exists()  # still in progress
    decisions = {
        (a.request.external_id, a.stage, a.approver.username, a.approved)
        for a in Approval.objects.select_related("request", "approver")
    }
    assert decisions == {
        ("OPS-1", "leadership", "lead", True),
        ("OPS-2", "leadership", "lead", True),
        ("OPS-2", "tech_review", "reviewer", True),
        ("OPS-3", "leadership", "lead", True),
        ("OPS-4", "leadership", "lead", False),
        ("OPS-6", "leadership", "lead", True),
        ("OPS-6", "tech_review", "reviewer", False),
    }
    comment = Comment.objects.get()
    assert (comment.author.username, comment.body, comment.created_at) == (
        "devops",
        "Building it.",
        parse(at(2, 10)),
    )


def test_importing_again_changes_nothing(history):
    run(history)
    before = snapshot()

    out, err = run(history)

    assert "loaded 0, skipped 7 already imported, rejected 0" in out
    assert "skipped OPS-1: already imported" in out
    assert err == ""
    assert snapshot() == before


def test_records_are_replayed_in_the_order_they_were_filed(tmp_path, users):
    # OPS-7 needs the instance that OPS-1 creates; the file lists it first.
    path = write(tmp_path, list(reversed(RECORDS)))

    out, _ = run(path)

    assert "rejected 0" in out
    assert Request.objects.get(external_id="OPS-7").instance.slug == "acme"


def good(external_id="GOOD-1", instance="good", day=1):
    return {
        "external_id": external_id,
        "kind": "create",
        "customer": "Good Co",
        "instance": instance,
        "requested_by": "ce",
        "events": [
            ev(at(day), "ce", "submit"),
            ev(at(day, 10), "lead", "approve"),
            ev(at(day, 11), "devops", "pick_up"),
        ],
    }


def bad(events, **fields):
    record = {
        "external_id": "BAD-1",
        "kind": "suspend",
        "customer": "Bad Co",
        "instance": "badco",
        "requested_by": "sales",
        "events": events,
    }
    record.update(fields)
    return record


BROKEN = {
    "ce approves": (
        bad([ev(at(2), "sales", "submit"), ev(at(2, 10), "ce", "approve")]),
        "events[1] (approve)",
        "Your role may not approve",
    ),
    "requester approves own request": (
        bad(
            [ev(at(2), "celead", "submit"), ev(at(2, 10), "celead", "approve")],
            requested_by="celead",
        ),
        "events[1] (approve)",
        "You filed request",
    ),
    "superuser approves own request": (
        bad(
            [ev(at(2), "admin", "submit"), ev(at(2, 10), "admin", "approve")], requested_by="admin"
        ),
        "events[1] (approve)",
        "You filed request",
    ),
    "pick_up before approve": (
        bad([ev(at(2), "sales", "submit"), ev(at(2, 10), "devops", "pick_up")]),
        "events[1] (pick_up)",
        "pick_up is not possible now",
    ),
    "unknown user": (
        bad([ev(at(2), "sales", "submit"), ev(at(2, 10), "ghost", "approve")]),
        "events[1] (approve)",
        "unknown user 'ghost'",
    ),
    "unknown requester": (
        bad([ev(at(2), "nobody", "submit")], requested_by="nobody"),
        "events[0] (submit)",
        "unknown user 'nobody'",
    ),
    "first event not submit": (
        bad([ev(at(2), "lead", "approve")]),
        "events[0] (approve)",
        "the first event must be submit",
    ),
    "submit by someone else": (
        bad([ev(at(2), "ce", "submit")]),
        "events[0] (submit)",
        "submit must be by the requester 'sales'",
    ),
    "lead files": (
        bad([ev(at(2), "lead", "submit")], requested_by="lead"),
        "events[0] (submit)",
        "Only CE and Sales file requests",
    ),
    "events out of order": (
        bad(
            [
                ev(at(2), "sales", "submit"),
                ev(at(3), "lead", "approve"),
                ev(at(2, 12), "devops", "pick_up"),
            ]
        ),
        "events[2] (pick_up)",
        "earlier than the event before it",
    ),
    "an instance the naming rules refuse": (
        bad([ev(at(2), "sales", "submit")], instance="Bad_Co"),
        "instance",
        "would be invalid",
    ),
    "bad timestamp": (
        bad([ev(at(2), "sales", "submit"), ev("yesterday", "lead", "approve")]),
        "events[1] (approve)",
        "is not an ISO 8601 timestamp",
    ),
    "unknown action": (
        bad([ev(at(2), "sales", "submit"), ev(at(2, 10), "lead", "bless")]),
        "events[1] (bless)",
        "unknown action 'bless'",
    ),
    "provisioning run action": (
        bad(
            [
                ev(at(2), "sales", "submit"),
                ev(at(2, 10), "lead", "approve"),
                ev(at(2, 11), "devops", "plan"),
            ]
        ),
        "events[2] (plan)",
        "provisioning runs are not imported",
    ),
    "manager comments": (
        bad([ev(at(2), "sales", "submit"), ev(at(2, 10), "manager", "comment", comment="hm")]),
        "events[1] (comment)",
        "Managers read requests",
    ),
    "set_target on a suspend": (
        bad(
            [
                ev(at(2), "sales", "submit"),
                ev(at(2, 10), "lead", "approve"),
                ev(at(2, 11), "devops", "set_target", due_at=at(9)),
            ]
        ),
        "events[2] (set_target)",
        "set_target does not apply to suspend requests",
    ),
    "action after a final state": (
        bad(
            [
                ev(at(2), "sales", "submit"),
                ev(at(2, 10), "lead", "reject"),
                ev(at(2, 11), "lead", "approve"),
            ]
        ),
        "events[2] (approve)",
        "is rejected; approve is not possible now",
    ),
    "late rule break undoes the whole record": (
        bad(
            [
                ev(at(2), "sales", "submit"),
                ev(at(2, 10), "lead", "approve"),
                ev(at(2, 11), "devops", "pick_up"),
                ev(at(3), "devops", "complete"),
                ev(at(3, 12), "devops", "resume_work"),
            ]
        ),
        "events[4] (resume_work)",
        "is done; resume_work is not possible now",
    ),
}


@pytest.mark.parametrize("case", BROKEN.keys())
def test_a_record_that_breaks_a_rule_is_rejected_whole(tmp_path, users, case):
    make_user("celead", "CE", "CE Leadership")
    record, where, why = BROKEN[case]
    path = write(tmp_path, [good("GOOD-1", "good1", 1), record, good("GOOD-2", "good2", 3)])

    out, err, error = run_failing(path)

    assert f"rejected BAD-1: {where}" in err
    assert why in err
    assert "loaded 2, skipped 0 already imported, rejected 1" in out
    assert "BAD-1" in error
    assert set(Request.objects.values_list("external_id", flat=True)) == {"GOOD-1", "GOOD-2"}
    # Nothing of the rejected record stays: no request, events, or the instance it would make.
    assert not Instance.objects.filter(slug="badco").exists()
    assert Event.objects.filter(request__external_id=None).count() == 0
    assert Notification.objects.count() == 0


def test_a_fixed_record_loads_on_the_next_run(tmp_path, users):
    broken = bad([ev(at(2), "sales", "submit"), ev(at(2, 10), "ce", "approve")])
    path = write(tmp_path, [good(), broken])
    run_failing(path)
    first = snapshot()

    broken["events"][1]["by"] = "lead"
    out, err = run(write(tmp_path, [good(), broken]))

    assert "loaded 1, skipped 1 already imported, rejected 0" in out
    assert Request.objects.get(external_id="BAD-1").state == State.QUEUED
    assert Request.objects.get(external_id="GOOD-1").events.count() == len(first["events"])


def test_record_level_problems_name_the_record(tmp_path, users):
    records = [
        good(),
        {"kind": "create", "instance": "x", "events": [ev(at(2), "ce", "submit")]},
        bad([ev(at(2), "sales", "submit")], external_id="BAD-KIND", kind="rebuild"),
        bad([], external_id="BAD-EVENTS"),
        bad(
            [ev(at(2), "sales", "submit")], external_id="BAD-REASON", non_standard_reasons=["vibes"]
        ),
        bad(
            [ev(at(2), "sales", "submit")],
            external_id="NO-CUSTOMER",
            customer=None,
            instance="unknown-slug",
        ),
        bad(
            [ev(at(2), "sales", "submit")],
            external_id="BAD-UPGRADE",
            kind="upgrade",
            instance="good",
        ),
        good("GOOD-1", "other"),
        "not an object",
    ]

    out, err, _ = run_failing(write(tmp_path, records))

    assert "rejected record 1 (no external_id): external_id:" in err
    assert "rejected BAD-KIND: kind: 'rebuild' is not one of" in err
    assert "rejected BAD-EVENTS: events:" in err
    assert "rejected BAD-REASON: non_standard_reasons:" in err
    assert "rejected NO-CUSTOMER: customer:" in err
    assert "rejected BAD-UPGRADE: target_version:" in err
    assert "rejected GOOD-1: external_id: 'GOOD-1' appears more than once" in err
    assert "rejected record 8 (no external_id): record: must be a JSON object" in err
    assert "loaded 1, skipped 0 already imported, rejected 8" in out


def test_overlapping_provisioning_requests_break_the_one_open_rule(tmp_path, users):
    first = bad(
        [
            ev(at(2), "sales", "submit"),
            ev(at(2, 10), "lead", "approve"),
            ev(at(3), "devops", "pick_up"),
            ev(at(9), "devops", "complete"),
        ],
        external_id="SUSPEND-1",
    )
    # Filed while SUSPEND-1 was still open: live, the portal would have refused it.
    second = bad(
        [ev(at(4), "ce", "submit")], external_id="RESUME-1", kind="resume", requested_by="ce"
    )
    later = bad(
        [ev(at(10), "ce", "submit")], external_id="RESUME-2", kind="resume", requested_by="ce"
    )

    out, err, _ = run_failing(write(tmp_path, [second, first, later]))

    assert "rejected RESUME-1: events[0] (submit)" in err
    assert "SUSPEND-1" in err and "one open provisioning request at a time" in err
    assert "loaded 2, skipped 0 already imported, rejected 1" in out
    assert Instance.objects.get(slug="badco").status == InstanceStatus.SUSPENDED


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"external_id": "X"}', "must hold a JSON list of request records, not a JSON object"),
        ("", "is not valid JSON"),
    ],
)
def test_a_file_that_is_not_a_json_list_is_refused(tmp_path, users, content, message):
    path = write(tmp_path, content)

    with pytest.raises(CommandError, match=message):
        run(path)
    assert Request.objects.count() == 0


def test_a_missing_file_is_refused(tmp_path, db):
    with pytest.raises(CommandError, match="Cannot read"):
        run(str(tmp_path / "nope.json"))


def test_dry_run_saves_nothing(history):
    out, _ = run(history, "--dry-run")

    assert "dry run, nothing saved: loaded 7" in out
    assert Request.objects.count() == Event.objects.count() == Instance.objects.count() == 0


def test_future_events_are_refused(tmp_path, users):
    record = bad([ev("2999-01-01T00:00:00Z", "sales", "submit")])

    _, err, _ = run_failing(write(tmp_path, [record]))

    assert "rejected BAD-1: events[0] (submit)" in err and "in the future" in err


def test_a_timestamp_without_an_offset_is_read_in_the_sla_time_zone(tmp_path, users):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    record = good("NAIVE-1", "naive", 1)
    record["events"][1]["at"] = "2024-03-01T02:00:00"  # typed in Los Angeles, no offset
    run(write(tmp_path, [record]))
    approved = Request.objects.get(external_id="NAIVE-1").events.get(action="approve")
    assert approved.at == datetime(2024, 3, 1, 2, tzinfo=ZoneInfo("America/Los_Angeles"))
