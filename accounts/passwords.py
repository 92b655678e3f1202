"""The password switches: PASSWORD_LOGIN (default on) and PASSWORD_LOGIN_SUPERUSERS.

With PASSWORD_LOGIN=false the password form is gone and a password sent anyway is refused,
on the portal's sign-in page and on the admin's alike; PASSWORD_LOGIN_SUPERUSERS=true keeps it
for superusers (a way in when the identity provider is down), and refuses everyone else even
with the right password.
"""

import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

OFF = "Password sign-in is turned off: use Sign in with SSO."
SUPERUSERS_ONLY = (
    "Password sign-in is kept for administrators (superusers) only: use Sign in with SSO."
)


def form_shown() -> bool:
    """Whether anyone at all may sign in with a password."""
    return bool(settings.PASSWORD_LOGIN or settings.PASSWORD_LOGIN_SUPERUSERS)


def superusers_only() -> bool:
    return bool(not settings.PASSWORD_LOGIN and settings.PASSWORD_LOGIN_SUPERUSERS)


def refusal(user: AbstractBaseUser) -> str:
    """Why this user may not sign in with a password ("" when they may)."""
    if settings.PASSWORD_LOGIN:
        return ""
    if settings.PASSWORD_LOGIN_SUPERUSERS and getattr(user, "is_superuser", False):
        return ""
    return SUPERUSERS_ONLY if settings.PASSWORD_LOGIN_SUPERUSERS else OFF


class PasswordPolicyMixin:
    """For Django's AuthenticationForm and the admin's: the policy is checked before any
    password (so with the form off, nothing is tried), and again once the user is known."""

    request: Any

    def clean(self) -> dict[str, Any]:
        if not form_shown():
            raise forms.ValidationError(OFF, code="password_login_off")
        cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        return cleaned

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        super().confirm_login_allowed(user)  # type: ignore[misc]
        why = refusal(user)
        if why:
            logger.warning("Password sign-in of %s refused: %s", user.get_username(), why)
            raise forms.ValidationError(why, code="password_login_off")


class LoginForm(PasswordPolicyMixin, AuthenticationForm):
    pass


class AdminLoginForm(PasswordPolicyMixin, AdminAuthenticationForm):
    pass
