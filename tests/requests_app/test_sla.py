"""SLA timers walked through time: JSON of docs/sla.md field by field, with frozen
time, across weekends, holidays, pauses and DST changes; recomputation; the API filters."""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Closure, Request, SlaPolicy
from requests_app.sla import policies, status
from requests_app.sla import timers as sla_timers
from tests.factories import PASSWORD, apply_run_by_hand, make_instance

pytestmark = pytest.mark.clock

LA = ZoneInfo("America/Los_Angeles")
DAY, HOUR = 86400, 3600


def la(*args):
    return datetime(*args, tzinfo=LA)


def iso(instant):
    # The JSON shows instants in SLA_TIMEZONE (Los Angeles here), with the offset.
    return instant.astimezone(LA).isoformat()


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()
    yield
    policies.invalidate_cache()


def file(user, kind="create", at=None, **data):
    # The customer of an existing instance is the instance's: only a create names one.
    data = {"instance": "hooli", **({"customer": "Hooli"} if kind == "create" else {}), **data}
    form = FORMS[kind](data=data)
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data, now=at, notify=False)


def act(user, request, action, at, **extra):
    return workflow.perform(user, request.pk, action, now=at, notify=False, **extra)


def timers(request, at):
    request = Request.objects.get(pk=request.pk)
    with time_machine.travel(at, tick=False):
        return status.sla_json(request)


def test_a_create_request_from_filing_to_done(users):
    request = file(users["ce"], at=la(2026, 4, 6, 9))  # Monday
    assert timers(request, la(2026, 4, 6, 9, 30)) == {
        "response": {
            "started_at": None,
            "due_at": None,
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 0,
            "remaining_seconds": DAY,
            "status": "pending",
            "at_risk": False,
        },
        "resolution": {
            "started_at": None,
            "due_at": None,
            "stopped_at": None,
            "paused": False,
            "elapsed_seconds": 0,
            "remaining_seconds": 15 * DAY,
            "status": "pending",
            "at_risk": False,
        },
    }
    act(users["lead"], request, "approve", la(2026, 4, 6, 10))
    # 19 hours later: the 24 h response clock is at risk (>= 75%), not breached.
    at = la(2026, 4, 7, 5)
    response = timers(request, at)["response"]
    assert response == {
        "started_at": iso(la(2026, 4, 6, 10)),
        "due_at": iso(la(2026, 4, 7, 10)),
        "stopped_at": None,
        "paused": False,
        "elapsed_seconds": 19 * HOUR,
        "remaining_seconds": 5 * HOUR,
        "status": "running",
        "at_risk": True,
    }
    resolution = timers(request, at)["resolution"]
    assert resolution["due_at"] == iso(la(2026, 4, 27, 10))
    assert resolution["elapsed_seconds"] == 19 * HOUR
    assert resolution["status"] == "running" and resolution["at_risk"] is False

    act(users["devops"], request, "pick_up", la(2026, 4, 7, 12))  # two hours late
    response = timers(request, la(2026, 4, 8))["response"]
    assert response["stopped_at"] == iso(la(2026, 4, 7, 12))
    assert response["status"] == "breached" and response["remaining_seconds"] == -2 * HOUR
    assert response["elapsed_seconds"] == 26 * HOUR

    with time_machine.travel(la(2026, 4, 24, 10), tick=False):  # Friday of week three
        apply_run_by_hand(users["devops"], request.pk)  # its run applies: done
    resolution = timers(request, la(2026, 5, 1))["resolution"]
    assert resolution["status"] == "met" and resolution["stopped_at"] == iso(la(2026, 4, 24, 10))
    assert resolution["elapsed_seconds"] == 14 * DAY
    assert resolution["remaining_seconds"] == DAY


def test_the_first_devops_comment_stops_the_response_clock(users):
    request = file(users["ce"], at=la(2026, 4, 6, 9))
    workflow.add_comment(users["devops"], request.pk, "Before the clock.", now=la(2026, 4, 6, 9, 5))
    act(users["lead"], request, "approve", la(2026, 4, 6, 10))
    workflow.add_comment(users["ce"], request.pk, "Any news?", now=la(2026, 4, 6, 11))
    assert timers(request, la(2026, 4, 6, 12))["response"]["status"] == "running"
    workflow.add_comment(users["devops2"], request.pk, "On it.", now=la(2026, 4, 6, 13))
    response = timers(request, la(2026, 4, 9))["response"]
    assert response["stopped_at"] == iso(la(2026, 4, 6, 13)) and response["status"] == "met"
    assert response["elapsed_seconds"] == 3 * HOUR


def test_waiting_on_the_customer_pauses_resolution_across_a_weekend(users):
    request = file(users["ce"], at=la(2026, 4, 6, 9))
    act(users["lead"], request, "approve", la(2026, 4, 6, 10))
    act(users["devops"], request, "pick_up", la(2026, 4, 6, 11))
    act(users["devops"], request, "wait_on_customer", la(2026, 4, 10, 12))  # Friday noon
    paused = timers(request, la(2026, 4, 13, 9))["resolution"]  # Monday 09:00
    assert paused["paused"] is True and paused["status"] == "paused"
    assert paused["due_at"] is None
    worked = 3 * DAY + 14 * HOUR + 12 * HOUR  # Mon 10:00 -> Fri 12:00
    assert paused["elapsed_seconds"] == worked
    assert paused["remaining_seconds"] == 15 * DAY - worked
    act(users["devops"], request, "resume_work", la(2026, 4, 13, 12))  # Monday noon
    running = timers(request, la(2026, 4, 13, 18))["resolution"]
    assert running["paused"] is False and running["status"] == "running"
    # Friday noon to Monday noon paused = 24 h of working time: due one working day later.
    assert running["due_at"] == iso(la(2026, 4, 28, 10))
    assert running["elapsed_seconds"] == worked + 6 * HOUR


def test_holidays_and_dst_on_the_way(users):
    request = file(users["ce"], at=la(2026, 11, 2, 8))
    act(users["lead"], request, "approve", la(2026, 11, 2, 10))
    # Veterans Day (Wed 11th) and Thanksgiving (26th) are not working days.
    assert timers(request, la(2026, 11, 3))["resolution"]["due_at"] == iso(la(2026, 11, 24, 10))
    spring = file(users["ce"], at=la(2026, 3, 2, 8), instance="spring")
    act(users["lead"], spring, "approve", la(2026, 3, 2, 10))
    # DST starts Sunday 2026-03-08: still 10:00 local three weeks later.
    assert timers(spring, la(2026, 3, 3))["resolution"]["due_at"] == iso(la(2026, 3, 23, 10))
    # The 24 h response clock is calendar time: 24 real hours.
    late = file(users["ce"], at=la(2026, 3, 7, 8), instance="late")
    act(users["lead"], late, "approve", la(2026, 3, 7, 12))
    assert timers(late, la(2026, 3, 7, 13))["response"]["due_at"] == iso(la(2026, 3, 8, 13))


def test_an_upgrade_counts_from_the_release(users):
    make_instance("acme")
    published = la(2026, 4, 1, 9)
    request = file(
        users["ce"],
        kind="upgrade",
        at=la(2026, 4, 3, 9),
        instance="acme",
        target_version="5.1.0",
        release_published_at=published.isoformat(),
    )
    assert timers(request, la(2026, 4, 6, 9))["resolution"]["at_risk"] is False  # 71%
    found = timers(request, la(2026, 4, 6, 16))  # 5 days 7 hours: 76%
    assert found["response"] is None
    assert found["resolution"]["started_at"] == iso(published)
    assert found["resolution"]["due_at"] == iso(published + timedelta(days=7))
    assert found["resolution"]["elapsed_seconds"] == 5 * DAY + 7 * HOUR
    assert found["resolution"]["at_risk"] is True
    assert timers(request, la(2026, 4, 9, 9))["resolution"]["status"] == "breached"


def test_a_feature_runs_until_the_target_date_devops_sets(users):
    make_instance("acme")
    request = file(
        users["sales"], kind="feature", at=la(2026, 4, 6, 9), instance="acme", justification="SAML"
    )
    act(users["lead"], request, "approve", la(2026, 4, 6, 10))
    before = timers(request, la(2026, 4, 6, 11))["resolution"]
    assert before["status"] == "running" and before["due_at"] is None
    assert before["remaining_seconds"] is None
    act(users["devops"], request, "set_target", la(2026, 4, 6, 12), due_at=la(2026, 4, 16, 10))
    after = timers(request, la(2026, 4, 7, 10))["resolution"]
    assert after["due_at"] == iso(la(2026, 4, 16, 10))
    assert after["elapsed_seconds"] == DAY and after["remaining_seconds"] == 9 * DAY


def test_cancelled_and_rejected_requests_cancel_their_timers(users):
    rejected = file(users["ce"], at=la(2026, 4, 6, 9))
    act(users["lead"], rejected, "reject", la(2026, 4, 6, 10), comment="Not viable.")
    found = timers(rejected, la(2026, 4, 7))
    assert found["response"]["status"] == found["resolution"]["status"] == "cancelled"
    cancelled = file(users["ce"], at=la(2026, 4, 6, 9), instance="other")
    act(users["lead"], cancelled, "approve", la(2026, 4, 6, 10))
    act(users["ce"], cancelled, "cancel", la(2026, 4, 6, 16))
    found = timers(cancelled, la(2026, 4, 20))["resolution"]
    assert found["status"] == "cancelled" and found["elapsed_seconds"] == 6 * HOUR


def test_changing_a_policy_or_adding_a_closure_recomputes_open_timers(users):
    request = file(users["ce"], at=la(2026, 4, 6, 9))
    act(users["lead"], request, "approve", la(2026, 4, 6, 10))
    act(users["devops"], request, "pick_up", la(2026, 4, 6, 11))
    act(users["devops"], request, "wait_on_customer", la(2026, 4, 7, 10))
    act(users["devops"], request, "resume_work", la(2026, 4, 8, 10))
    before = Request.objects.get(pk=request.pk)
    assert before.resolution_due_at == la(2026, 4, 28, 10)
    # An upgrade (no response timer, calendar time) is open too: the closure does not move it.
    make_instance("acme")
    upgrade = file(
        users["ce"], kind="upgrade", at=la(2026, 4, 6, 9), instance="acme", target_version="5.1.0"
    )
    upgrade_due = Request.objects.get(pk=upgrade.pk).resolution_due_at
    Closure.objects.create(date=la(2026, 4, 9).date(), reason="Company offsite")
    assert sla_timers.recompute_open() == 1
    assert Request.objects.get(pk=upgrade.pk).resolution_due_at == upgrade_due
    after = Request.objects.get(pk=request.pk)
    assert after.resolution_due_at == la(2026, 4, 29, 10)
    # Elapsed and paused time are kept: 1 day before the pause, the rest after it.
    at = la(2026, 4, 10, 10)
    assert timers(after, at)["resolution"]["elapsed_seconds"] == DAY + 2 * DAY - DAY
    SlaPolicy.objects.filter(kind="create").update(resolution_target=timedelta(days=5))
    sla_timers.recompute_open()
    assert Request.objects.get(pk=request.pk).resolution_due_at == la(2026, 4, 15, 10)


def test_imported_history_gives_the_timers_live_use_gives(users, tmp_path):
    record = {
        "external_id": "OPS-7",
        "kind": "create",
        "customer": "Hooli",
        "instance": "hooli",
        "requested_by": "ce",
        "non_standard_reasons": [],
        "events": [
            {"at": la(2026, 4, 6, 9).isoformat(), "by": "ce", "action": "submit"},
            {"at": la(2026, 4, 6, 10).isoformat(), "by": "lead", "action": "approve"},
            {"at": la(2026, 4, 7, 12).isoformat(), "by": "devops", "action": "pick_up"},
            {"at": la(2026, 4, 10, 12).isoformat(), "by": "devops", "action": "wait_on_customer"},
            {"at": la(2026, 4, 13, 12).isoformat(), "by": "devops", "action": "resume_work"},
        ],
    }
    path = tmp_path / "history.json"
    path.write_text(json.dumps([record]))
    call_command("import_requests", str(path))
    imported = Request.objects.get(external_id="OPS-7")
    live = file(users["ce"], at=la(2026, 4, 6, 9), instance="live")
    act(users["lead"], live, "approve", la(2026, 4, 6, 10))
    act(users["devops"], live, "pick_up", la(2026, 4, 7, 12))
    act(users["devops"], live, "wait_on_customer", la(2026, 4, 10, 12))
    act(users["devops"], live, "resume_work", la(2026, 4, 13, 12))
    at = la(2026, 4, 20, 9)
    assert timers(imported, at) == timers(live, at)


def test_the_api_shows_timers_and_filters_breached_and_at_risk(client, users):
    ok = file(users["ce"], at=la(2026, 4, 6, 9), instance="fine")
    risky = file(users["ce"], at=la(2026, 4, 6, 9), instance="risky")
    late = file(users["ce"], at=la(2026, 4, 6, 9), instance="late")
    act(users["lead"], risky, "approve", la(2026, 4, 6, 10))
    act(users["lead"], late, "approve", la(2026, 4, 5, 10))
    act(users["devops"], late, "pick_up", la(2026, 4, 5, 11))
    client.login(username="manager", password=PASSWORD)
    with time_machine.travel(la(2026, 4, 7, 5), tick=False):
        body = client.get(f"/api/v1/requests/{risky.pk}/").json()
        assert body["sla"]["response"]["at_risk"] is True
        assert body["sla"]["response"]["due_at"] == iso(la(2026, 4, 7, 10))

        def ids(query):
            return {r["id"] for r in client.get(f"/api/v1/requests/?{query}").json()["results"]}

        assert ids("at_risk=true") == {risky.pk}
        assert ids("breached=true") == set()
        assert ids("at_risk=false") == {ok.pk, late.pk}
        assert client.get("/api/v1/requests/?breached=maybe").status_code == 400
    with time_machine.travel(la(2026, 4, 8, 5), tick=False):
        assert ids("breached=true") == {risky.pk}
    with time_machine.travel(la(2026, 4, 28, 5), tick=False):
        assert ids("breached=true") == {risky.pk, late.pk}


def test_adding_a_closure_in_the_admin_recomputes_open_timers(
    client, users, django_capture_on_commit_callbacks
):
    import django_rq
    from rq import SimpleWorker

    request = file(users["ce"], at=la(2026, 4, 6, 9))
    act(users["lead"], request, "approve", la(2026, 4, 6, 10))
    assert Request.objects.get(pk=request.pk).resolution_due_at == la(2026, 4, 27, 10)
    client.force_login(users["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/requests_app/closure/add/", {"date": "2026-04-08", "reason": "Offsite"}
        )
    assert response.status_code == 302
    # The recompute runs as a job after the admin's transaction commits.
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert Request.objects.get(pk=request.pk).resolution_due_at == la(2026, 4, 28, 10)


def test_policies_are_editable_in_the_admin(client, users):
    client.force_login(users["admin"])
    policy = SlaPolicy.objects.get(kind="suspend")
    page = client.get(f"/admin/requests_app/slapolicy/{policy.pk}/change/")
    assert page.status_code == 200 and b"resolution_target" in page.content
