"""Figures and names on the instance pages."""

from django import template

from requests_app.models import Kind

register = template.Library()


@register.filter
def usd(amount: float) -> str:
    """Dollars as the fleet page prints them: $13, $2,668."""
    return f"${amount:,.0f}"


@register.filter
def kind_label(kind: str) -> str:
    """A request or run kind in words ("enable_executors" -> "Enable executors")."""
    return Kind(kind).label if kind in Kind.values else kind
