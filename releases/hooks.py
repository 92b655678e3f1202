"""Where maintenance listens to the request domain and to provisioning (apps.py connects):
after the transaction that ended a request or a run commits, the instance may take the upgrade
it waited for, and the run's wave may take its next step."""

from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction

from provisioning import signals as provisioning_signals
from provisioning.models import Run
from releases import notices, opening, waves
from requests_app import signals as request_signals
from requests_app.models import Kind, Request, State


def _after_request_ended(sender: object, request: Request, at: datetime, **kwargs: Any) -> None:
    if request.instance_id is not None:
        transaction.on_commit(partial(opening.reconcile_instance, request.instance_id, now=at))
    wave = waves.wave_of_request(request.pk)
    if wave is not None:
        if request.kind == Kind.UPGRADE and request.state == State.DONE:
            transaction.on_commit(partial(notices.after, request, at))
        transaction.on_commit(partial(waves.advance, wave.pk, at))


def _after_run_event(sender: object, run: Run, action: str, at: datetime, **kwargs: Any) -> None:
    if action != "run_errored" or run.request_id is None:
        return
    wave = waves.wave_of_request(run.request_id)
    if wave is not None:
        transaction.on_commit(partial(waves.advance, wave.pk, at))


def connect() -> None:
    request_signals.request_ended.connect(
        _after_request_ended, weak=False, dispatch_uid="releases.request_ended"
    )
    provisioning_signals.run_event.connect(
        _after_run_event, weak=False, dispatch_uid="releases.run_event"
    )
