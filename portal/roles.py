"""The six roles of CONTRACTS.md section 2, kept as Django groups."""

CE = "CE"
SALES = "Sales"
CE_LEADERSHIP = "CE Leadership"
TECH_REVIEW = "Tech Review"
DEVOPS = "DevOps"
MANAGERS = "Managers"

ALL_ROLES = (CE, SALES, CE_LEADERSHIP, TECH_REVIEW, DEVOPS, MANAGERS)


def roles_of(user):
    """The set of role names a user holds, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._portal_roles = cached
    return cached


def has_role(user, *roles):
    """True when the user holds any of the roles; a superuser passes every role check."""
    if getattr(user, "is_superuser", False) and user.is_active:
        return True
    return bool(roles_of(user) & set(roles))
