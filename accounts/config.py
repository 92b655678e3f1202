"""The sign-in settings, parsed and checked when the portal starts (portal/settings.py).

No Django here beyond the error type: settings.py calls it before apps load. The rules:
1. SSO is on when all three of OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are set; some
   but not all of them is a typo that would silently turn SSO off, so it stops the start.
2. OIDC_ROLE_MAP names portal groups that exist (the six roles); it is required with SSO, as the
   groups are set from it at every sign-in and an empty map would take every role away.
3. PASSWORD_LOGIN=false needs SSO, or nobody could sign in.
"""

from collections.abc import Iterable, Mapping

from django.core.exceptions import ImproperlyConfigured

OIDC_CREDENTIALS = ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET")


def parse_role_map(
    text: str | None, portal_groups: Iterable[str], *, variable: str = "OIDC_ROLE_MAP"
) -> dict[str, tuple[str, ...]]:
    """`idp-group=Portal Group,...` as {idp group: (portal groups, ...)}.

    The portal group is after the last `=` (IdP group names may hold one, as LDAP names do);
    portal group names are matched without regard to case and stored as the portal spells them.
    One IdP group may give several roles (`leads=CE Leadership,leads=Tech Review`)."""
    known = {name.lower(): name for name in portal_groups}
    mapping: dict[str, tuple[str, ...]] = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        idp_group, equals, portal_group = entry.rpartition("=")
        idp_group, portal_group = idp_group.strip(), portal_group.strip()
        if not equals or not idp_group or not portal_group:
            raise ImproperlyConfigured(
                f"{variable}: {entry!r} is not of the form idp-group=Portal Group"
            )
        name = known.get(portal_group.lower())
        if name is None:
            raise ImproperlyConfigured(
                f"{variable}: {portal_group!r} (for {idp_group!r}) is not a portal group; "
                f"the groups are: {', '.join(known.values())}"
            )
        if name not in mapping.get(idp_group, ()):
            mapping[idp_group] = (*mapping.get(idp_group, ()), name)
    return mapping


def check_sign_in(
    oidc: Mapping[str, str | None],
    *,
    scopes: str,
    role_map: Mapping[str, tuple[str, ...]],
    password_login: bool,
) -> bool:
    """Whether SSO is on; raises ImproperlyConfigured, naming the variables, when the sign-in
    settings cannot work together."""
    given = [name for name in OIDC_CREDENTIALS if oidc.get(name)]
    missing = [name for name in OIDC_CREDENTIALS if not oidc.get(name)]
    if given and missing:
        raise ImproperlyConfigured(
            f"{', '.join(missing)} must be set too: single sign-on needs "
            f"{', '.join(OIDC_CREDENTIALS)} (only {', '.join(given)} is set)"
        )
    sso = not missing
    if sso and "openid" not in scopes.split():
        raise ImproperlyConfigured(f"OIDC_SCOPES={scopes!r} must include openid")
    if sso and not role_map:
        raise ImproperlyConfigured(
            "OIDC_ROLE_MAP must be set when single sign-on is on (OIDC_ISSUER...): the portal "
            "roles are set from it at every sign-in, e.g. OIDC_ROLE_MAP='devops=DevOps,ce=CE'"
        )
    if not password_login and not sso:
        raise ImproperlyConfigured(
            "PASSWORD_LOGIN=false turns the password form off, but single sign-on is not set "
            f"up: set {', '.join(OIDC_CREDENTIALS)} (and OIDC_ROLE_MAP), or PASSWORD_LOGIN=true"
        )
    return sso
