from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal import navigation, roles


def portal(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    return {
        "nav_entries": navigation.entries_for(user) if user is not None and signed_in else [],
        "search_url": navigation.search_url(user) if user is not None and signed_in else "",
        "user_roles": sorted(roles.roles_of(user)) if signed_in else [],
        "jobs_inprocess": settings.RQ_INPROCESS,
    }
