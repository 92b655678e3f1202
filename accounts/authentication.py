"""`Authorization: Token <key>` for the JSON API: a named token of the API tokens page, or the
single key that `python manage.py drf_create_token <user>` makes (docs/api.md)."""

from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts import tokens

NO_ROLE = (
    "This token's owner holds no portal role any more (no group, not a superuser), so the token "
    "no longer works; it works again once a role is given back."
)
INACTIVE = "This token's owner is deactivated."


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        if tokens.is_named_key(key):
            token = tokens.find(key)
            if token is None:
                raise exceptions.AuthenticationFailed("Invalid token.")
            user: User = token.user
            self._check_owner(user)
            tokens.mark_used(token, timezone.now())
            return user, token
        user, drf_token = super().authenticate_credentials(key)  # checks is_active too
        self._check_owner(user)
        return user, drf_token

    @staticmethod
    def _check_owner(user: User) -> None:
        if not user.is_active:
            raise exceptions.AuthenticationFailed(INACTIVE)
        if not tokens.may_use_the_api(user):
            raise exceptions.AuthenticationFailed(NO_ROLE)
