"""Formatting of the dashboards' figures."""

from django import template

register = template.Library()


@register.filter
def pct(value):
    return "—" if value is None else f"{value:.1f}%"


@register.filter
def hours(seconds):
    return "—" if seconds is None else f"{seconds / 3600:.1f} h"


@register.filter
def working_days(days):
    return "—" if days is None else f"{days:.2f} wd"


@register.filter
def usd(amount):
    return f"${amount:,.0f}"


@register.filter
def raw(value):
    """A figure as the API prints it (for data-value attributes the tests read)."""
    return "" if value is None else value
