"""Named API tokens: made, found by their key, revoked.

A key is `mip_` + 43 random URL-safe characters (256 bits). Only its SHA-256 is stored: a
fast hash is enough for a random secret of that length (nothing to guess), and it lets the key
be found with one indexed lookup. Keys without the `mip_` mark are the single tokens of
`python manage.py drf_create_token`, which keep working (accounts/authentication.py).
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import ApiToken
from portal import roles

KEY_MARK = "mip_"
PREFIX_LENGTH = len(KEY_MARK) + 8
# last_used_at is written at most this often per token: a script calling the API in a loop
# must not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class DuplicateName(Exception):
    """The person already has a token of that name."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_named_key(key: str) -> bool:
    return key.startswith(KEY_MARK)


def create(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token of `user` named `name`, and its key: the only time the key is known."""
    key = KEY_MARK + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user, name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key)
            )
    except IntegrityError:
        raise DuplicateName(name) from None
    return token, key


def find(key: str) -> ApiToken | None:
    """The token of a named key, with its user, or None."""
    return ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()


def revoke(user: User, token_id: int) -> ApiToken | None:
    """Deletes one of `user`'s own tokens; None when `user` has no token of that id (someone
    else's token is, to them, not there)."""
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is not None:
        token.delete()
    return token


def mark_used(token: ApiToken, now: datetime) -> None:
    """Notes when the token was last used, at most once per LAST_USED_RESOLUTION."""
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # Conditional, so that concurrent calls write once.
    stale = now - LAST_USED_RESOLUTION
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk
    ).update(last_used_at=now)
    token.last_used_at = now


def may_use_the_api(user: User) -> bool:
    """A token works only for a person who still holds a portal role (or is a superuser): who
    lost every role at an SSO sign-in loses the API with it."""
    return user.is_superuser or bool(roles.roles_of(user))
