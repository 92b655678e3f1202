"""Requests for the dashboard tests: through the workflow (a few, at chosen instants) or as rows
whose clocks are set the way the SLA engine sets them (many, quickly)."""

import itertools
import random
from datetime import timedelta

import time_machine

from provisioning.models import Instance
from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import PROVISIONING_KINDS, Kind, Request, State
from requests_app.sla import timers
from tests.factories import apply_run_by_hand

_slugs = itertools.count(1)


def make_instance(slug=None, *, status="active", version="5.2.0", **fields):
    slug = slug or f"inst{next(_slugs)}"
    fields = {"customer": "Acme Corp", "machine_type": "n1-standard-8", **fields}
    if status == "suspended":
        fields.setdefault("outputs", {"snapshot": f"{slug}-blue-s1"})
    return Instance.objects.create(
        slug=slug, status=status, gcp_project=f"mi-{slug}", version=version, **fields
    )


def file(user, kind="create", at=None, **data):
    """File a request through the workflow at `at`."""
    if kind == "create":
        data = {"instance": f"new{next(_slugs)}", "users": 100, "repositories": 100, **data}
    elif "instance" not in data:
        status = "suspended" if kind == "resume" else "active"
        data["instance"] = make_instance(status=status).slug
    if kind == "teardown":
        data.setdefault("confirm", data["instance"])
    if kind == "upgrade":
        data.setdefault("target_version", "6.1.0")
    data.setdefault("customer", "Acme Corp")
    data.setdefault("justification", "The customer asked for it.")
    form = FORMS[kind](data=data)
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data, now=at, notify=False)


def act(user, request, action, at, **extra):
    if action == "complete" and request.kind in PROVISIONING_KINDS:
        # A provisioning request is done when its run applies.
        with time_machine.travel(at, tick=False):
            apply_run_by_hand(user, request.pk)
        return Request.objects.get(pk=request.pk)
    return workflow.perform(user, request.pk, action, now=at, notify=False, **extra)


def queued(users, kind="create", at=None, **data):
    """Filed at `at` and approved a minute later: queued, both clocks running."""
    request = file(users["ce"], kind, at=at, **data)
    return act(users["lead"], request, "approve", at + timedelta(minutes=1))


def timed_request(
    requester,
    kind="create",
    *,
    queued,
    picked=None,
    pauses=(),
    done=None,
    cancelled=None,
    assignee=None,
    customer="Acme Corp",
    target_days=None,
):
    """A request row whose clocks follow the given instants, stored as the SLA engine stores
    them (timers.recompute); `pauses` are (begin, end or None) pairs."""
    request = Request(
        kind=kind,
        customer=customer,
        instance_slug=f"row{next(_slugs)}",
        requested_by=requester,
        created_at=queued - timedelta(hours=2),
        machine_type="n1-standard-8",
    )
    if kind == Kind.UPGRADE:
        request.release_published_at = queued - timedelta(hours=3)
        request.resolution_started_at = request.release_published_at
        request.target_version = "6.1.0"
    else:
        request.resolution_started_at = queued
        request.response_started_at = queued
        request.response_stopped_at = picked
    if kind == Kind.FEATURE and target_days is not None:
        request.target_due_at = queued + timedelta(days=target_days)
    request.resolution_pauses = [
        [begin.isoformat(), end.isoformat() if end else None] for begin, end in pauses
    ]
    if pauses and pauses[-1][1] is None:
        request.resolution_paused_at = pauses[-1][0]
    state = State.QUEUED
    if picked is not None:
        state = State.WAITING_ON_CUSTOMER if request.resolution_paused_at else State.IN_PROGRESS
        request.assignee = assignee
    if done is not None:
        state, request.resolution_stopped_at, request.ended_at = State.DONE, done, done
    elif cancelled is not None:
        state, request.ended_at = State.CANCELLED, cancelled
    request.state = state
    timers.recompute(request)
    request.save(force_insert=True)
    return request


def random_rows(requester, engineers, now, count, seed=1, days=120):
    """`count` requests of every kind over the `days` before `now`: met, breached, running, at
    risk, paused (before and after due), cancelled, across weekends, holidays and DST."""
    rng = random.Random(seed)
    kinds = list(Kind.values)
    customers = ["Acme Corp", "Globex", "Initech", "Umbrella"]
    made = []
    for _ in range(count):
        kind = rng.choice(kinds)
        start = now - timedelta(seconds=rng.uniform(0, days * 86400))
        picked = start + timedelta(hours=rng.lognormvariate(1.5, 1.2))
        if picked > now or rng.random() < 0.05:
            picked = None
        pauses, done, cancelled = [], None, None
        if picked is not None:
            cursor = picked
            if rng.random() < 0.3:
                begin = picked + timedelta(hours=rng.uniform(1, 200))
                end = begin + timedelta(hours=rng.uniform(1, 150))
                if begin < now:
                    pauses.append((begin, end if end < now else None))
                    cursor = end
            finish = cursor + timedelta(days=rng.lognormvariate(2.0, 0.7))
            if finish < now and (not pauses or pauses[-1][1] is not None):
                done = finish
        if done is None and rng.random() < 0.08:
            cancelled = min(now, start + timedelta(days=rng.uniform(0, 10)))
            pauses = [(b, e) for b, e in pauses if e is not None and e < cancelled]
        made.append(
            timed_request(
                requester,
                kind,
                queued=start,
                picked=picked,
                pauses=pauses,
                done=done,
                cancelled=cancelled,
                assignee=rng.choice(engineers),
                customer=rng.choice(customers),
                target_days=rng.choice([None, 5, 20]) if kind == Kind.FEATURE else None,
            )
        )
    return made
