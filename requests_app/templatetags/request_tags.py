"""`{% request_table rows row_action %}`: a table of requests (requests_app/rows.py)."""

from typing import Any

from django import template
from django.utils.safestring import SafeString

from requests_app import rows as request_rows

register = template.Library()


@register.simple_tag(takes_context=True)
def request_table(context: dict[str, Any], rows: Any, row_action: str = "") -> SafeString:
    request = context.get("request")
    csrf = request_rows.csrf_input(request) if row_action == "pick_up" and request else ""
    return request_rows.request_table(rows or [], row_action=row_action or "", csrf=csrf)
