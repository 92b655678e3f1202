"""What the request workflow may ask of provisioning: start a run (plan), confirm, discard,
retry, and read runs. Each writes the run row first and enqueues its job after commit; the relay
(`relay_runs`) enqueues again what never reached Redis, the reconciler (`reconcile_runs`) ends
runs whose worker died."""

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import django_rq
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning import instances, outcomes, signals, workspace
from provisioning.models import (
    ACTIVE_RUN_STATES,
    Instance,
    InstanceStatus,
    Run,
    RunState,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)
PROVISIONING_KINDS = ("create", "suspend", "resume", "teardown", "upgrade", "enable_executors")


class RunRefused(Exception):
    """The run cannot start or move now (another run is active, no planned run, ...)."""


def instance_has_applying_run(instance_id: int, request_id: int) -> bool:
    return Run.objects.filter(
        instance_id=instance_id, request_id=request_id, state=RunState.APPLYING
    ).exists()


def active_run(instance_id: int) -> Run | None:
    return Run.objects.filter(instance_id=instance_id, state__in=ACTIVE_RUN_STATES).first()


def latest_run(request_id: int) -> Run | None:
    return Run.objects.filter(request_id=request_id).order_by("-created_at", "-id").first()


def runs_for(request_id: int) -> list[Run]:
    return list(Run.objects.filter(request_id=request_id).order_by("created_at", "id"))


def runs_for_many(request_ids: list[int]) -> dict[int, list[Run]]:
    found: dict[int, list[Run]] = {}
    for run in Run.objects.filter(request_id__in=request_ids).order_by("created_at", "id"):
        found.setdefault(run.request_id, []).append(run)
    return found


def instance_for_create(slug: str, customer: str, settings_of_request: dict[str, Any]) -> Instance:
    """The instance a create request provisions, made (status provisioning) when it is planned."""
    instance = instances.live(slug)
    if instance is not None:
        if (
            instance.status != InstanceStatus.PROVISIONING
            and instance.runs.filter(state=RunState.APPLIED).exists()
        ):
            raise RunRefused(f"An instance {slug!r} already exists.")
        if instance.status == InstanceStatus.FAILED:
            instance.status = InstanceStatus.PROVISIONING
            instance.save(update_fields=["status", "updated_at"])
        return instance
    try:
        return instances.create(slug, customer, InstanceStatus.PROVISIONING, **settings_of_request)
    except instances.InstanceExists as exc:
        raise RunRefused(str(exc)) from None


def start(
    instance: Instance,
    request_id: int,
    kind: str,
    user: "User | None",
    changes: dict[str, Any],
    now: datetime,
) -> Run:
    """`plan`: a new run for the request, queued for a worker to plan."""
    if kind not in PROVISIONING_KINDS:
        raise RunRefused(f"{kind} requests have no provisioning run.")
    busy = active_run(instance.pk)
    if busy is not None:
        raise RunRefused(
            f"Run #{busy.pk} is still {busy.get_state_display().lower()} on "
            f"{instance.slug}; confirm, discard or wait for it first."
        )
    run = Run(
        instance=instance,
        request_id=request_id,
        kind=kind,
        state=RunState.QUEUED,
        job_wanted="plan",
        created_by=user,
        created_at=now,
        destroy=kind == "teardown",
        steps=outcomes.initial_steps(kind),
    )
    try:
        with transaction.atomic():
            run.save()
            run.params = workspace.desired_variables(instance, kind, changes, run.pk)
            run.save(update_fields=["params"])
    except IntegrityError:
        raise RunRefused(f"Another run started on {instance.slug} at the same moment.") from None
    signals.run_event.send(Run, run=run, action="run_queued", comment="", at=now, user=user)
    transaction.on_commit(lambda: enqueue(run.pk))
    return run


def confirm(run: Run, user: "User | None", now: datetime) -> None:
    """Apply exactly the saved plan: the run moves to applying and waits for a worker."""
    if not run.confirm(user):
        raise RunRefused(f"Run #{run.pk} is not waiting for a confirm.")
    signals.run_event.send(Run, run=run, action="run_confirmed", comment="", at=now, user=user)
    transaction.on_commit(lambda: enqueue(run.pk))


def discard(run: Run, user: "User | None", now: datetime) -> None:
    if not run.discard(now):
        raise RunRefused(f"Run #{run.pk} has no plan to discard.")
    outcomes.after_discard(run)
    signals.run_event.send(Run, run=run, action="run_discarded", comment="", at=now, user=user)


EXECUTE_JOB = "provisioning.jobs.execute_run"


def enqueue(run_id: int) -> bool:
    try:
        django_rq.get_queue("provisioning").enqueue(
            EXECUTE_JOB,
            run_id,
            job_timeout=settings.PROVISIONING_JOB_TIMEOUT,
            description=f"provisioning run {run_id}",
        )
    except Exception:  # noqa: BLE001 - Redis down: the relay enqueues it later
        log.exception("could not enqueue run %s; the relay will", run_id)
        return False
    Run.objects.filter(pk=run_id, job_wanted__gt="").update(enqueued_at=timezone.now())
    return True


RELAY_AFTER = timedelta(seconds=60)
HEARTBEAT_INTERVAL = 5


def heartbeat_timeout() -> timedelta:
    return timedelta(seconds=getattr(settings, "PROVISIONING_HEARTBEAT_TIMEOUT", 90))


def relay_runs(now: datetime | None = None) -> int:
    """Enqueue the runs that wait for a job but never reached Redis (or were lost with it)."""
    now = now or timezone.now()
    waiting = Run.objects.filter(
        job_wanted__gt="", state__in=[RunState.QUEUED, RunState.APPLYING], heartbeat_at=None
    ).filter(enqueued_at__isnull=True) | Run.objects.filter(
        job_wanted__gt="",
        state__in=[RunState.QUEUED, RunState.APPLYING],
        heartbeat_at=None,
        enqueued_at__lt=now - RELAY_AFTER,
    )
    relayed = 0
    for run_id in waiting.values_list("pk", flat=True):
        if enqueue(run_id):
            relayed += 1
    return relayed


def reconcile_runs(now: datetime | None = None) -> int:
    """End the runs whose worker stopped beating (killed, machine lost): errored with the
    reason, which frees the instance for a retry. Terraform's own lock died with the worker's
    database session (pg backend) or file handle (local backend)."""
    now = now or timezone.now()
    stale = Run.objects.filter(
        state__in=[RunState.PLANNING, RunState.APPLYING],
        job_wanted="",
        heartbeat_at__lt=now - heartbeat_timeout(),
    )
    ended = 0
    for run in stale:
        with transaction.atomic():
            # The filter above leaves no run without a heartbeat.
            last_beat = run.heartbeat_at.isoformat() if run.heartbeat_at else "none"
            reason = (
                f"The worker running this {run.state} step stopped answering (last heartbeat "
                f"{last_beat}); the run was ended so the instance is free."
            )
            if run.reconcile(now, reason):
                outcomes.after_error(run)
                signals.run_event.send(
                    Run, run=run, action="run_errored", comment=reason, at=now, user=None
                )
                ended += 1
    return ended
