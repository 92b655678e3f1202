"""Rollout waves: DevOps choose instances of a release, the portal picks up and plans their
upgrades, one confirm applies them with at most ROLLOUT_MAX_PARALLEL at once, each inside its
maintenance window unless DevOps override, and the first errored run halts the wave.

`advance` is the wave's one scheduler step. It runs under the wave's row lock when the wave is
confirmed, when one of its runs ends (hooks.py), and every minute from the cron (a window that
opens, a hook that was lost); running it twice changes nothing.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from portal import roles
from provisioning import runs
from provisioning.models import Run, RunState
from releases import notices
from releases.models import Release, Wave, WaveItem
from releases.windows import window_of
from requests_app import notifications, workflow
from requests_app.models import OPEN_STATES, Kind, Request, State

log = logging.getLogger(__name__)
CANARY = 1
PLANNING = ("waiting", RunState.QUEUED, RunState.PLANNING)
BATCH = 5


class WaveRefused(workflow.WorkflowError):
    """400/403/409 like the workflow's errors (status set per case)."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message, errors)
        self.status = status


def upgrades_of(release: Release) -> list[Request]:
    """The open upgrade requests to this release, one per instance, by slug."""
    return list(
        Request.objects.filter(
            kind=Kind.UPGRADE, target_version=release.version, state__in=OPEN_STATES
        )
        .select_related("instance", "assignee")
        .order_by("instance_slug")
    )


def busy_instances(release: Release) -> set[int]:
    """Instances that ride in an open wave of this release."""
    return set(
        WaveItem.objects.filter(
            wave__release=release, wave__halted_at=None, wave__finished_at=None
        ).values_list("instance_id", flat=True)
    )


def suggest(release: Release) -> list[list[str]]:
    """The waves the page proposes: one canary instance first, then batches."""
    busy = busy_instances(release)
    slugs = [
        r.instance_slug
        for r in upgrades_of(release)
        if r.instance_id not in busy and r.state in (State.QUEUED, State.IN_PROGRESS)
    ]
    if not slugs:
        return []
    waves = [slugs[:CANARY]]
    rest = slugs[CANARY:]
    waves += [rest[i : i + BATCH] for i in range(0, len(rest), BATCH)]
    return waves


def _require_devops(user: User) -> None:
    if not roles.has_role(user, roles.DEVOPS):
        raise WaveRefused(403, "Only DevOps run rollout waves.")


def create(
    release: Release,
    slugs: list[str],
    user: User,
    *,
    override_window: bool = False,
    now: datetime | None = None,
) -> Wave:
    """Make a wave of these instances' upgrades, then pick each up (assigned to `user`) and
    plan it. A plan that cannot start is written on its item; the others go on."""
    now = now or timezone.now()
    _require_devops(user)
    wanted = list(dict.fromkeys(s.strip().lower() for s in slugs if s and s.strip()))
    if not wanted:
        raise WaveRefused(400, "Choose the instances of the wave.", {"instances": ["Empty."]})
    with transaction.atomic():
        Release.objects.select_for_update().get(pk=release.pk)  # one wave made at a time
        by_slug = {r.instance_slug: r for r in upgrades_of(release)}
        busy = busy_instances(release)
        problems = []
        for slug in wanted:
            found = by_slug.get(slug)
            if found is None:
                problems.append(f"{slug}: no open upgrade to {release.version}.")
            elif found.instance_id in busy:
                problems.append(f"{slug}: already in an open wave of {release.version}.")
            elif found.state == State.WAITING_ON_CUSTOMER:
                problems.append(f"{slug}: waiting on the customer.")
        if problems:
            raise WaveRefused(400, "Some instances cannot join the wave.", {"instances": problems})
        number = (release.waves.aggregate(n=Max("number"))["n"] or 0) + 1
        wave = Wave.objects.create(
            release=release,
            number=number,
            created_by=user,
            created_at=now,
            override_window=override_window,
        )
        for position, slug in enumerate(wanted):
            request = by_slug[slug]
            assert request.instance is not None  # an upgrade names its instance
            WaveItem.objects.create(
                wave=wave,
                instance=request.instance,
                request=request,
                position=position,
                from_version=request.instance.version,
            )
    for item in wave.items.select_related("request"):
        _start(item, user, now)
    return wave


def _start(item: WaveItem, user: User, now: datetime) -> None:
    """Pick up and plan one item's upgrade; what refuses is written on the item."""
    request = item.request
    try:
        if request.state == State.QUEUED:
            request = workflow.perform(user, request.pk, "pick_up", now=now, notify=False)
        latest = runs.latest_run(request.pk)
        if latest is None or latest.state == RunState.DISCARDED:
            workflow.perform(user, request.pk, "plan", now=now, notify=False)
        elif latest.state == RunState.ERRORED:
            workflow.perform(user, request.pk, "retry", now=now, notify=False)
    except workflow.WorkflowError as exc:
        WaveItem.objects.filter(pk=item.pk).update(error=exc.message)


@dataclass
class ItemView:
    item: WaveItem
    request: Request
    run: Run | None
    state: str  # what the page says: waiting, planning, planned, applying, upgraded, errored...
    shape: tuple[Any, ...] | None
    differs: bool = False


def view(wave: Wave) -> list[ItemView]:
    items = list(wave.items.select_related("request", "instance").order_by("position"))
    latest = runs.runs_for_many([i.request_id for i in items])
    views = []
    for item in items:
        run_list = latest.get(item.request_id) or []
        run = run_list[-1] if run_list else None
        views.append(ItemView(item, item.request, run, _state(item, run), shape_of(run)))
    shapes = Counter(v.shape for v in views if v.shape is not None)
    if len(shapes) > 1:
        usual = shapes.most_common(1)[0][0]
        for v in views:
            v.differs = v.shape is not None and v.shape != usual
    return views


def _state(item: WaveItem, run: Run | None) -> str:
    if item.request.state == State.DONE:
        return "upgraded"
    if item.request.state in (State.CANCELLED, State.REJECTED):
        return item.request.state
    if run is None:
        return "error" if item.error else "waiting"
    return str(run.state)


def shape_of(run: Run | None) -> tuple[Any, ...] | None:
    """What a plan does, without what differs by instance: each resource address with its
    index keys dropped (the blue and green halves of a blue/green pair are one shape) and its
    actions. Two upgrades of one release should plan the same shape."""
    if run is None or run.state in (RunState.QUEUED, RunState.PLANNING) or not run.plan_json:
        return None
    changes = []
    for change in run.plan_json.get("resource_changes") or []:
        actions = tuple((change.get("change") or {}).get("actions") or ())
        if actions in (("no-op",), ("read",)):
            continue
        address = str(change.get("address", ""))
        changes.append((_without_keys(address), actions))
    return tuple(sorted(changes))


def _without_keys(address: str) -> str:
    out, depth = [], 0
    for char in address:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def confirm(
    wave: Wave,
    user: User,
    *,
    override_window: bool | None = None,
    now: datetime | None = None,
) -> Wave:
    """One confirm for the wave's planned runs; `advance` applies them as the rules allow."""
    now = now or timezone.now()
    _require_devops(user)
    refusal: WaveRefused | None = None
    with transaction.atomic():
        wave = Wave.objects.select_for_update().select_related("release").get(pk=wave.pk)
        views = view(wave)
        waiting = [
            v.item.instance.slug for v in views if v.state in ("waiting", "queued", "planning")
        ]
        failed = [v for v in views if v.state in ("errored", "error")]
        if wave.halted_at:
            refusal = WaveRefused(409, f"Wave {wave.number} is halted: {wave.halt_reason}")
        elif wave.finished_at:
            refusal = WaveRefused(409, f"Wave {wave.number} is finished.")
        elif wave.confirmed_at:
            by = wave.confirmed_by.get_username() if wave.confirmed_by else "someone"
            refusal = WaveRefused(409, f"Wave {wave.number} was confirmed by {by} already.")
        elif waiting:
            refusal = WaveRefused(
                409, f"Plans are still being made for {', '.join(waiting)}; confirm when ready."
            )
        elif failed:
            # The halt is kept (this transaction commits); the refusal says why.
            reason = _failure(failed[0])
            _halt(wave, reason, now)
            refusal = WaveRefused(409, f"Wave {wave.number} is halted: {reason}")
        else:
            wave.confirmed_by = user
            wave.confirmed_at = now
            if override_window is not None:
                wave.override_window = override_window
            wave.save(update_fields=["confirmed_by", "confirmed_at", "override_window"])
            for v in views:
                if v.state == RunState.PLANNED:
                    notices.before(v.item, wave, now)
    if refusal is not None:
        raise refusal
    advance(wave.pk, now)
    wave.refresh_from_db()
    return wave


def _failure(v: ItemView) -> str:
    if v.run is not None and v.run.state == RunState.ERRORED:
        return f"run #{v.run.pk} of {v.item.instance.slug} errored: {v.run.error or 'see its log'}"
    return f"{v.item.instance.slug}: {v.item.error}"


def _halt(wave: Wave, reason: str, now: datetime) -> None:
    updated = Wave.objects.filter(pk=wave.pk, halted_at=None, finished_at=None).update(
        halted_at=now, halt_reason=reason
    )
    if updated:
        wave.halted_at, wave.halt_reason = now, reason
        log.warning("wave %s of %s halted: %s", wave.number, wave.release_id, reason)
        notifications.notify(
            f"Rollout of {wave.release.version} halted (wave {wave.number})",
            f"Wave {wave.number} of release {wave.release.version} halted: {reason}\n"
            "The rest of its upgrades stay planned.\n\n"
            + notifications.link_to("release_detail", wave.release.version),
            notifications.group_emails(roles.DEVOPS),
            now,
            topic="wave_halted",
        )


def advance(wave_id: int, now: datetime | None = None) -> None:
    """One scheduler step of a confirmed wave (safe to run twice)."""
    now = now or timezone.now()
    with transaction.atomic():
        wave = Wave.objects.select_for_update().select_related("release").get(pk=wave_id)
        if not wave.confirmed_at or not wave.is_open:
            return
        views = view(wave)
        failed = [v for v in views if v.state in ("errored", "error")]
        if failed:
            _halt(wave, _failure(failed[0]), now)
            return
        if all(v.state in ("upgraded", "cancelled", "rejected") for v in views):
            Wave.objects.filter(pk=wave.pk).update(finished_at=now)
            return
        applying = sum(1 for v in views if v.state == RunState.APPLYING)
        for v in views:
            if applying >= settings.ROLLOUT_MAX_PARALLEL:
                break
            if v.state != RunState.PLANNED:
                continue
            window = window_of(v.item.instance)
            if window is not None and not wave.override_window and not window.contains(now):
                continue
            assert wave.confirmed_by is not None
            try:
                workflow.perform(wave.confirmed_by, v.request.pk, "confirm", now=now, notify=False)
            except workflow.WorkflowError as exc:
                WaveItem.objects.filter(pk=v.item.pk).update(error=exc.message)
                _halt(wave, f"{v.item.instance.slug}: {exc.message}", now)
                return
            applying += 1


def advance_all(now: datetime | None = None) -> int:
    """The cron's step: every confirmed, open wave."""
    ids = list(
        Wave.objects.filter(
            confirmed_at__isnull=False, halted_at=None, finished_at=None
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        advance(pk, now)
    return len(ids)


def wave_of_request(request_id: int) -> Wave | None:
    item = (
        WaveItem.objects.filter(request_id=request_id, wave__halted_at=None, wave__finished_at=None)
        .select_related("wave")
        .first()
    )
    return item.wave if item else None


def status_of(wave: Wave) -> str:
    if wave.halted_at:
        return "halted"
    if wave.finished_at:
        return "finished"
    if wave.confirmed_at:
        return "applying"
    return "planning"
