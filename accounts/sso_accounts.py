"""From the verified claims of an SSO sign-in to a portal user with the roles the provider gives.

1. The user: the one bound to this issuer + subject at an earlier sign-in; else, at the first
   sign-in, the one user whose email is the claim's (so `seed_demo`'s `<name>@example.com`
   people keep their accounts); else a new user, named after `preferred_username` (or the
   email's local part), made unique.
2. The roles, at every sign-in: the six portal role groups become exactly those that the
   person's IdP groups (claim OIDC_ROLES_CLAIM) map to through OIDC_ROLE_MAP. Other groups,
   `is_superuser` and `is_staff` are never touched. So a person taken out of an IdP group loses
   the role at their next sign-in, and their API tokens stop working when no role is left.
3. Who ends with no role (and is not a superuser) is not signed in: they get a page that says
   which IdP groups would give one.
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from accounts.models import SsoIdentity
from accounts.oidc import AGAIN, SignInFailed
from portal import roles

logger = logging.getLogger(__name__)

USERNAME_MAX = 150
# Django's username validator allows letters, digits and @ . + - _.
NOT_IN_USERNAMES = re.compile(r"[^\w.@+-]")


@dataclass(frozen=True)
class SignIn:
    user: User
    roles: frozenset[str]
    idp_groups: tuple[str, ...]

    @property
    def may_enter(self) -> bool:
        return bool(self.roles) or self.user.is_superuser


def idp_groups(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The person's groups at the provider: a list of names, or one name (some providers send
    a single group as a string)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if isinstance(item, str | int) and item != "")
    if value is not None:
        logger.warning("SSO: claim %r is neither a list nor a string; no roles taken", claim)
    return ()


def roles_for(groups: tuple[str, ...], role_map: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(role for group in groups for role in role_map.get(group, ()))


def sign_in(claims: Mapping[str, Any], issuer: str) -> SignIn:
    """The user of these claims, created or found, with their role groups set from them."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SignInFailed("The identity provider named no account (sub). " + AGAIN, "no sub")
    groups = idp_groups(claims, settings.OIDC_ROLES_CLAIM)
    wanted = roles_for(groups, settings.OIDC_ROLE_MAP)
    try:
        with transaction.atomic():
            user = _user_for(claims, issuer, subject)
            _set_roles(user, wanted)
    except IntegrityError:
        # Two first sign-ins of one person at once: the other made the user; find it now.
        with transaction.atomic():
            user = _user_for(claims, issuer, subject)
            _set_roles(user, wanted)
    if not user.is_active:
        raise SignInFailed(
            "Your portal account is deactivated. Ask the portal's administrators.",
            f"user {user.username} is inactive",
        )
    return SignIn(user=user, roles=wanted, idp_groups=groups)


def _user_for(claims: Mapping[str, Any], issuer: str, subject: str) -> User:
    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject)
    found = identity.first()
    email = str(claims.get("email") or "").strip()
    if found is not None:
        user = found.user
        if email and email != user.email and not _email_taken(email, user):
            user.email = email
            user.save(update_fields=["email"])
        return user
    user = _existing_by_email(claims, email, issuer) or _new_user(claims, email, subject)
    SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    logger.info("SSO: %s bound to %s at %s", user.username, subject, issuer)
    return user


def _email_taken(email: str, user: User) -> bool:
    return User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists()


def _existing_by_email(claims: Mapping[str, Any], email: str, issuer: str) -> User | None:
    if not email:
        return None
    matches = list(User.objects.filter(email__iexact=email)[:2])
    if not matches:
        return None
    if claims.get("email_verified") is False:
        raise SignInFailed(
            "A portal account has your email address, but your identity provider has not "
            "verified that address, so it cannot be joined to your sign-in. Ask the portal's "
            "administrators.",
            f"unverified email matches an account ({len(matches)})",
        )
    if len(matches) > 1:
        raise SignInFailed(
            "Several portal accounts have your email address, so the portal cannot tell which "
            "one is yours. Ask the portal's administrators to keep only one.",
            "email matches several accounts",
        )
    user = matches[0]
    if user.sso_identities.filter(issuer=issuer).exists():
        raise SignInFailed(
            "The portal account with your email address belongs to another person at your "
            "identity provider. Ask the portal's administrators.",
            f"account {user.username} is bound to another subject",
        )
    return user


def _new_user(claims: Mapping[str, Any], email: str, subject: str) -> User:
    base = str(claims.get("preferred_username") or email.partition("@")[0] or subject)
    base = NOT_IN_USERNAMES.sub("_", base).strip("._-")[: USERNAME_MAX - 4] or "sso-user"
    username, number = base, 1
    while User.objects.filter(username__iexact=username).exists():
        number += 1
        username = f"{base}-{number}"
    user = User(
        username=username,
        email=email,
        first_name=str(claims.get("given_name") or "")[:150],
        last_name=str(claims.get("family_name") or "")[:150],
    )
    user.set_unusable_password()  # signs in through the provider only
    user.save()
    logger.info("SSO: created user %s", username)
    return user


def _set_roles(user: User, wanted: frozenset[str]) -> None:
    held = set(user.groups.filter(name__in=roles.ALL_ROLES).values_list("name", flat=True))
    lost, gained = held - wanted, wanted - held
    if lost:
        user.groups.remove(*Group.objects.filter(name__in=lost))
    if gained:
        # get_or_create: the groups come from a data migration, but a flushed test database
        # (and a person who deleted one in the admin) has them no more.
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in sorted(gained)))
    if lost or gained:
        logger.info(
            "SSO: roles of %s: %s (lost: %s; gained: %s)",
            user.username,
            ", ".join(sorted(wanted)) or "none",
            ", ".join(sorted(lost)) or "none",
            ", ".join(sorted(gained)) or "none",
        )
    # The per-request cache of portal.roles must not keep what was held before.
    user.__dict__.pop("_portal_roles", None)
