"""The RQ worker of `manage.py rqworker` (settings.RQ["WORKER_CLASS"])."""

from typing import Any

from django.urls import get_resolver
from rq import Worker as RQWorker


def preload() -> None:
    """Import what jobs reach lazily: the URL configuration, and with it every app's views,
    forms and serializers (~0.8 s). Done once in the worker, before it forks a child per job."""
    get_resolver().url_patterns  # noqa: B018 - the property imports the modules


class Worker(RQWorker):
    """RQ's worker, which runs each job in a fork of itself: loaded once here, the URL
    configuration is not imported again by every job that reverses a URL (the SLA sweep's
    alerts, notifications, Slack messages)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        preload()
