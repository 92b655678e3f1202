"""SLA timers as progress bars with the time left."""

from typing import Any

from django import template

register = template.Library()


def _span(seconds: float, working: bool) -> str:
    seconds = abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if working and days:
        unit = "working day" if days == 1 else "working days"
        return f"{days} {unit} {hours} h"
    hours += days * 24
    if hours:
        return f"{hours} h {minutes} m"
    return f"{minutes} m"


def describe(timer: dict[str, Any] | None, working: bool) -> str:
    if timer is None:
        return "no SLA"
    status = timer["status"]
    remaining = timer["remaining_seconds"]
    if status == "pending":
        return "starts when queued"
    if status == "cancelled":
        return "cancelled"
    if status == "met":
        return "met"
    if remaining is None:
        return "no target set" if status != "paused" else "paused, no target set"
    if remaining < 0:
        return f"overdue by {_span(remaining, working)}"
    left = f"{_span(remaining, working)} left"
    return f"paused, {left}" if status == "paused" else left


@register.inclusion_tag("requests_app/_timer.html")
def timer_bar(timer: dict[str, Any] | None, label: str, working: bool = False) -> dict[str, Any]:
    percent = 0
    if timer and timer["remaining_seconds"] is not None:
        target = timer["elapsed_seconds"] + timer["remaining_seconds"]
        percent = 100 if target <= 0 else min(100, round(100 * timer["elapsed_seconds"] / target))
    status = timer["status"] if timer else "none"
    if timer and timer["at_risk"]:
        status = "at_risk"
    return {
        "timer": timer,
        "label": label,
        "percent": percent,
        "status": status,
        "text": describe(timer, working),
        "working": working,
    }
