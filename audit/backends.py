"""django-axes' lockout check, as the first authentication backend."""

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LockoutBackend(AxesStandaloneBackend):
    """Refuses a sign-in while its username or address is locked out (django-axes); the next
    backend (ModelBackend) checks the password.

    Every sign-in from the network passes its request (the login pages' AuthenticationForm, the
    admin's); code that authenticates without one (Django's test client `login()`, a management
    command) has no address to lock out and is not rate-limited: axes would raise instead. DRF
    token authentication never calls `authenticate()`, so API calls are untouched either way.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)
        return None
