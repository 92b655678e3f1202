"""Rules a DevOps engineer would insist on before accepting a request. No Django models here
beyond what is passed in, so forms, the API and the importer share them."""

import ipaddress
import re
from collections.abc import Iterable

from provisioning.models import MACHINE_TYPES, PROJECT_ID_PATTERN, SLUG_PATTERN, ZONE_PATTERN

# The largest size (n1-standard-96) serves about 3,000 users and 25,000 repositories.
SCALE_LIMIT_USERS = 3000
SCALE_LIMIT_REPOSITORIES = 25000
# Smallest machine type that serves (users, repositories), smallest first.
SIZING = [
    ("n1-standard-8", 500, 5000),
    ("n1-standard-16", 1000, 10000),
    ("n1-standard-32", 2000, 18000),
    ("n1-standard-96", SCALE_LIMIT_USERS, SCALE_LIMIT_REPOSITORIES),
]
# The naming rules live with the model that the database holds to them.
PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
SLUG = re.compile(SLUG_PATTERN)
VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")  # as people type it; stored without v
ZONE = re.compile(ZONE_PATTERN)
# Who an access request is for: a username, or an email address (a name, @, a domain with a
# dot). Strict and linear (no nested repetition), so the API's schema can say the same.
PERSON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?$")


def slug_errors(slug: str, prefix: str) -> list[str]:
    """Why `<prefix>-<slug>` would not be a valid GCP project id (empty list: it would)."""
    errors = []
    if not SLUG.match(slug):
        errors.append(
            "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit."
        )
    project = f"{prefix}-{slug}"
    if len(project) > 30:
        errors.append(
            f"The project id {project!r} would be {len(project)} characters; GCP allows 30, "
            f"so with the prefix {prefix!r} the slug can have at most {29 - len(prefix)}."
        )
    elif len(project) < 6:
        errors.append(f"The project id {project!r} would be shorter than GCP's 6 characters.")
    elif not errors and not PROJECT_ID.match(project):
        errors.append(f"{project!r} is not a valid GCP project id.")
    return errors


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """'5.3.1' or 'v5.3' -> (5, 3, 1); None when it is not a version."""
    match = VERSION.match(text.strip()) if text else None
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def cidr_errors(ranges: Iterable[str]) -> list[str]:
    errors = []
    for item in ranges:
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            errors.append(f"{item!r} is not a valid CIDR range ({exc}).")
    return errors


def recommended_machine_type(users: int | None, repositories: int | None) -> str:
    users, repositories = users or 0, repositories or 0
    for machine_type, max_users, max_repositories in SIZING:
        if users <= max_users and repositories <= max_repositories:
            return machine_type
    return "n1-standard-96"


def exceeds_standard_scale(users: int | None, repositories: int | None) -> bool:
    return (users or 0) > SCALE_LIMIT_USERS or (repositories or 0) > SCALE_LIMIT_REPOSITORIES


def machine_type_choices() -> list[tuple[str, str]]:
    return [
        (name, f"{name} ({spec['vcpus']} vCPU, {spec['memory_gb']} GB, ${spec['monthly_usd']}/mo)")
        for name, spec in MACHINE_TYPES.items()
    ]
