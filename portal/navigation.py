"""Navigation entries per role: each person sees the pages of their own work."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

from portal import roles

if TYPE_CHECKING:
    from portal.roles import AnyUser


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str
    roles: tuple[str, ...] = ()  # empty: everyone signed in
    superuser_only: bool = False


ENTRIES = [
    NavEntry("Home", "home"),
    # Every role may ask for access; CE and Sales file the other kinds too.
    NavEntry("New request", "new_request_choose", roles=roles.ALL_ROLES),
    NavEntry("My requests", "my_requests", roles=roles.ALL_ROLES),
    NavEntry(
        "Approvals", "approvals", roles=(roles.CE_LEADERSHIP, roles.TECH_REVIEW, roles.MANAGERS)
    ),
    NavEntry("DevOps queue", "devops_queue", roles=(roles.DEVOPS,)),
    NavEntry("All requests", "request_list", roles=roles.ALL_ROLES),
    NavEntry("Instances", "instance_list", roles=roles.ALL_ROLES),
    NavEntry("Access", "access_list", roles=roles.ALL_ROLES),
    NavEntry("SLA dashboard", "sla_dashboard", roles=roles.ALL_ROLES),
    NavEntry("Board", "board", roles=(roles.DEVOPS, roles.MANAGERS)),
    NavEntry("Fleet", "fleet", roles=roles.ALL_ROLES),
    NavEntry("Releases", "release_list", roles=roles.ALL_ROLES),
    NavEntry("Incidents", "incident_list", roles=roles.ALL_ROLES),
    NavEntry("Jobs", "django_rq:home", roles=(roles.DEVOPS,)),
    NavEntry("Audit", "audit_log", roles=(roles.DEVOPS,)),
    NavEntry("Admin", "admin:index", superuser_only=True),
]


_reversed: dict[tuple[str, str, object], str] = {}


def url(name: str) -> str:
    """reverse(name) of a URL without arguments, reversed once per script prefix and URLconf:
    every page's navigation links a dozen of them."""
    key = (name, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
    found = _reversed.get(key)
    if found is None:
        found = _reversed[key] = reverse(name)
    return found


def entries_for(user: "AnyUser") -> list[dict[str, str]]:
    visible = []
    for entry in ENTRIES:
        if entry.superuser_only and not user.is_superuser:
            continue
        if entry.roles and not roles.has_role(user, *entry.roles):
            continue
        visible.append({"label": entry.label, "url": url(entry.url_name)})
    return visible


def search_url(user: "AnyUser") -> str:
    """Where the navigation's search box goes (the request list, `?q=`): for those who may read
    the list (as its entry above), else "" (no box)."""
    if not roles.has_role(user, *roles.ALL_ROLES):
        return ""
    return url("request_list")
