"""What the request workflow may ask of provisioning: start a run (plan), confirm, discard,
retry, and read runs. Each writes the run row first and enqueues its job after commit; the relay
(`relay_runs`) enqueues again what never reached Redis, the reconciler (`reconcile_runs`) ends
runs whose worker died."""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
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


def applying_run(request_id: int) -> Run | None:
    """The request's run that is applying now, if any."""
    return Run.objects.filter(request_id=request_id, state=RunState.APPLYING).first()


def resume_refusal(instance: Instance) -> str:
    """Why a resume of `instance` cannot be planned ("" when it can): it restores the data disk
    from the snapshot its suspend took, and without one it would create a blank disk."""
    snapshot = (instance.outputs or {}).get("snapshot")
    if not snapshot:
        return (
            f"{instance.slug} has no snapshot to restore: a resume would create an empty data "
            "disk. Restore the snapshot by hand (and record it), or file a create instead."
        )
    return ""


def active_run(instance_id: int) -> Run | None:
    return Run.objects.filter(instance_id=instance_id, state__in=ACTIVE_RUN_STATES).first()


def latest_run(request_id: int) -> Run | None:
    return Run.objects.filter(request_id=request_id).order_by("-created_at", "-id").first()


def runs_for(request_id: int) -> list[Run]:
    # created_by: the detail page names who started each run (one query, not one a run).
    return list(
        Run.objects.filter(request_id=request_id)
        .select_related("created_by")
        .order_by("created_at", "id")
    )


def runs_for_many(
    request_ids: list[int], *, columns: Sequence[str] | None = None
) -> dict[int, list[Run]]:
    """The runs of these requests, oldest first, by request: one query. `columns`: only these
    of each run and not who started it (the list API's JSON shows no more, and a run's plan
    and log are its largest columns)."""
    found: dict[int, list[Run]] = {}
    found_runs = Run.objects.filter(request_id__in=request_ids)
    if columns is None:
        found_runs = found_runs.select_related("created_by")
    else:
        found_runs = found_runs.only("request_id", *columns)
    for run in found_runs.order_by("created_at", "id"):
        if run.request_id is not None:
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
    except (instances.InstanceExists, instances.InstanceInvalid) as exc:
        raise RunRefused(str(exc)) from None


def start(
    instance: Instance,
    request_id: int | None,
    kind: str,
    user: "User | None",
    changes: dict[str, Any],
    now: datetime,
    *,
    queue_job: bool = True,
) -> Run:
    """`plan`: a new run for the request (`request_id` None: a run the portal starts itself),
    queued for a worker to plan. `queue_job=False` leaves the job to the caller, which executes
    the run in its own process (the demo seed)."""
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
    if queue_job:
        transaction.on_commit(partial(enqueue, run.pk))
    return run


def confirm(run: Run, user: "User | None", now: datetime, *, queue_job: bool = True) -> None:
    """Apply exactly the saved plan: the run moves to applying and waits for a worker."""
    if not run.confirm(user):
        raise RunRefused(f"Run #{run.pk} is not waiting for a confirm.")
    signals.run_event.send(Run, run=run, action="run_confirmed", comment="", at=now, user=user)
    if queue_job:
        transaction.on_commit(partial(enqueue, run.pk))


def discard(run: Run, user: "User | None", now: datetime) -> None:
    if not run.discard(now):
        raise RunRefused(f"Run #{run.pk} has no plan to discard.")
    outcomes.after_discard(run)
    signals.run_event.send(Run, run=run, action="run_discarded", comment="", at=now, user=user)


def end_with_request(request_id: int, user: "User | None", now: datetime, why: str) -> Run | None:
    """The request is ending (cancelled, rejected): its run goes with it, in the same
    transaction. A run not yet applying is discarded (and its queued job removed after commit);
    one that is applying refuses (RunRefused): the request must wait for it."""
    run = (
        Run.objects.select_for_update()
        .filter(request_id=request_id, state__in=ACTIVE_RUN_STATES)
        .first()
    )
    if run is None:
        return None
    if run.state == RunState.APPLYING:
        raise RunRefused(
            f"Run #{run.pk} is applying on {run.instance.slug}; wait for it to finish."
        )
    wanted = run.job_wanted
    if not run.discard(now):
        raise RunRefused(f"Run #{run.pk} moved on while the request ended; reload.")
    outcomes.after_discard(run)
    signals.run_event.send(Run, run=run, action="run_discarded", comment=why, at=now, user=user)
    if wanted:
        transaction.on_commit(partial(cancel_job, run.pk, wanted))
    return run


EXECUTE_JOB = "provisioning.jobs.execute_run"
LIVE_JOB_STATUSES = {"queued", "scheduled", "started", "deferred"}


def job_id(run_id: int, phase: str) -> str:
    """The RQ job of one phase ("plan" or "apply") of a run: named after the row, so the relay
    can ask Redis whether it exists and a second enqueue of the same phase is harmless. (RQ 2
    joins job and execution ids with ':', so ids use '-'.)"""
    return f"run-{run_id}-{phase}"


def enqueue(run_id: int) -> bool:
    """Enqueue the phase the run waits for; False when Redis is unreachable (the relay will)."""
    phase = Run.objects.filter(pk=run_id).values_list("job_wanted", flat=True).first()
    if not phase:
        return False
    try:
        django_rq.get_queue("provisioning").enqueue(
            EXECUTE_JOB,
            run_id,
            job_id=job_id(run_id, phase),
            job_timeout=settings.PROVISIONING_JOB_TIMEOUT,
            description=f"provisioning run {run_id} ({phase})",
        )
    except Exception:  # noqa: BLE001 - Redis down: the relay enqueues it later
        log.exception("could not enqueue run %s; the relay will", run_id)
        return False
    Run.objects.filter(pk=run_id, job_wanted__gt="").update(enqueued_at=timezone.now())
    return True


def cancel_job(run_id: int, phase: str) -> None:
    """Remove a queued job of a run that no longer wants it (best effort: a job that runs
    anyway finds nothing to claim)."""
    try:
        queue = django_rq.get_queue("provisioning")
        job = queue.fetch_job(job_id(run_id, phase))
        if job is not None and job.get_status(refresh=False) in ("queued", "scheduled", "deferred"):
            job.delete()  # and out of its queue
    except Exception:  # noqa: BLE001 - Redis down: the job, if any, finds nothing to claim
        log.warning("could not remove the queued job of run %s", run_id, exc_info=True)


HEARTBEAT_INTERVAL = 5


def heartbeat_timeout() -> timedelta:
    return timedelta(seconds=getattr(settings, "PROVISIONING_HEARTBEAT_TIMEOUT", 90))


def relay_runs(now: datetime | None = None) -> int:
    """Enqueue the runs that wait for a job (not yet claimed by a worker) whose job is not in
    Redis: Redis was down when they were committed, or lost them. Job ids are the row's, so
    a job that is still queued is left alone."""
    waiting = Run.objects.filter(
        job_wanted__gt="", state__in=[RunState.QUEUED, RunState.APPLYING], heartbeat_at=None
    ).values_list("pk", "job_wanted")
    relayed = 0
    queue = django_rq.get_queue("provisioning")
    for run_id, phase in waiting:
        try:
            job = queue.fetch_job(job_id(run_id, phase))
        except Exception:  # noqa: BLE001 - Redis still down: try again next time
            log.warning("relay: Redis unreachable", exc_info=True)
            return relayed
        if job is not None and job.get_status(refresh=False) in LIVE_JOB_STATUSES:
            continue
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
