"""Formatting of the dashboards' figures."""

from typing import TypeVar

from django import template

register = template.Library()
T = TypeVar("T")


@register.filter
def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


@register.filter
def hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.1f} h"


@register.filter
def duration(seconds: float | None) -> str:
    """Minutes under an hour, hours under two days, else days (incident response times)."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def working_days(days: float | None) -> str:
    return "—" if days is None else f"{days:.2f} wd"


@register.filter
def usd(amount: float) -> str:
    return f"${amount:,.0f}"


@register.filter
def raw(value: T | None) -> T | str:
    """A figure as the API prints it (for data-value attributes the tests read)."""
    return "" if value is None else value
