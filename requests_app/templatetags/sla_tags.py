"""SLA timers as progress bars with the time left."""

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from portal.markup import escape

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


def bar_figures(timer: dict[str, Any] | None, working: bool = False) -> tuple[str, int, str]:
    """(status shown, percent of the target elapsed, words) of a timer's bar."""
    percent = 0
    if timer and timer["remaining_seconds"] is not None:
        target = timer["elapsed_seconds"] + timer["remaining_seconds"]
        percent = 100 if target <= 0 else min(100, round(100 * timer["elapsed_seconds"] / target))
    status = timer["status"] if timer else "none"
    if timer and timer["at_risk"]:
        status = "at_risk"
    return status, percent, describe(timer, working)


def timer_html(
    timer: dict[str, Any] | None,
    label: str,
    working: bool = False,
    *,
    target_seconds: float | None = None,
    live: bool = False,
) -> SafeString:
    """A timer as a bar with the time left: the markup of every page (request lists, the queue,
    the detail pages, the board, which adds what board.js needs to count it down: `live` and
    the target). Built with f-strings, each value escaped, rather than a template: a queue or
    a board draws hundreds of them, and this is several times faster."""
    status, percent, text = bar_figures(timer, working)
    due = escape(timer["due_at"]) if timer and timer["due_at"] else ""
    label, text = escape(label), escape(text)
    data = ""
    if timer is not None:
        remaining = timer["remaining_seconds"]
        data = f' data-remaining="{"" if remaining is None else remaining}"'
        if target_seconds is not None:
            data += f' data-target="{int(target_seconds)}"'
        data += f' data-working="{"1" if working else "0"}"'
    live_attr = ' data-live="1"' if live else ""
    due_attr = f' data-due="{due}"' if due else ""
    due_words = f" (due {due})" if due else ""
    status = escape(status)
    return mark_safe(
        f'<div class="timer timer-{status}" data-testid="timer-{label.lower()}" '
        f'data-status="{status}"{live_attr}{due_attr}{data} title="{label}: {text}{due_words}">'
        f'<span class="timer-label">{label}</span>'
        # An SVG bar: its width is an attribute, not a style attribute, which the
        # Content-Security-Policy would block.
        '<svg class="timer-track" viewBox="0 0 100 1" preserveAspectRatio="none" '
        f'role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent}" '
        f'aria-label="{label}"><rect class="timer-fill" width="{percent}" height="1"/></svg>'
        f'<span class="timer-text">{text}</span></div>'
    )


@register.simple_tag
def timer_bar(timer: dict[str, Any] | None, label: str, working: bool = False) -> SafeString:
    return timer_html(timer, label, working)
