"""The six roles of docs/workflow.md, kept as Django groups."""

from typing import TYPE_CHECKING, TypeAlias, TypeGuard

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    # Who a request's `user` is: the portal uses Django's own User model; signed out (or
    # asked of no one) it is the AnonymousUser, which every check below turns down.
    AnyUser: TypeAlias = User | AnonymousUser

CE = "CE"
SALES = "Sales"
CE_LEADERSHIP = "CE Leadership"
TECH_REVIEW = "Tech Review"
DEVOPS = "DevOps"
MANAGERS = "Managers"

ALL_ROLES = (CE, SALES, CE_LEADERSHIP, TECH_REVIEW, DEVOPS, MANAGERS)


def roles_of(user: "AnyUser | None") -> frozenset[str]:
    """The set of role names a user holds, cached on the user object for the request."""
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        # A per-request cache on the user object, which no stub declares.
        user._portal_roles = cached  # type: ignore[union-attr]
    return cached


def has_role(user: "AnyUser", *roles: str) -> TypeGuard["User"]:
    """True when the user holds any of the roles; a superuser passes every role check. The
    anonymous user holds none, so a True also says that `user` is a signed-in User."""
    if getattr(user, "is_superuser", False) and user.is_active:
        return True
    return bool(roles_of(user) & set(roles))
