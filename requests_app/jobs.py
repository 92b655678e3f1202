"""RQ entry points of the request domain: thin wrappers that take ids only (the database row is
the truth) and call the module that owns the work. Enqueued by dotted path, so nothing imports
this module but RQ and the scheduler."""

from datetime import datetime

from requests_app import access, counting, notifications
from requests_app.sla import sweep, timers


def send_notification(notification_id: int) -> str:
    return notifications.send(notification_id)


def send_notifications(notification_ids: list[int]) -> int:
    return notifications.send_many(notification_ids)


def relay_notifications(now: datetime | None = None) -> int:
    return notifications.relay(now)


def sla_sweep() -> dict[str, int]:
    return sweep.run()


def compact_request_count() -> int:
    return counting.compact()


def recompute_sla_timers() -> int:
    return timers.recompute_open()


def access_reminders() -> int:
    return access.remind()
