"""Sign-ins, sign-outs and failed attempts, written to the audit log from Django's signals."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from audit.client import client_ip, user_agent
from audit.models import Outcome, SignInEvent


def record(
    outcome: str, request: HttpRequest | None, user: Any = None, username: str = ""
) -> SignInEvent:
    if user is not None:
        username = user.get_username()
    return SignInEvent.objects.create(
        at=timezone.now(),
        outcome=outcome,
        user=user,
        username=username[:150],
        ip_address=client_ip(request) if request is not None else None,
        user_agent=user_agent(request) if request is not None else "",
        path=request.path[:200] if request is not None else "",
    )


@receiver(user_logged_in, dispatch_uid="audit_signed_in")
def signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record(Outcome.SIGNED_IN, request, user)


@receiver(user_logged_out, dispatch_uid="audit_signed_out")
def signed_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # `user` is None when the session had no one signed in.
    if user is not None:
        record(Outcome.SIGNED_OUT, request, user)


@receiver(user_login_failed, dispatch_uid="audit_failed")
def failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already replaced the password (and anything like it) with stars.
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or "")
    locked = bool(getattr(request, "axes_locked_out", False))
    user = get_user_model()._default_manager.filter(username=username).first() if username else None
    record(Outcome.LOCKED_OUT if locked else Outcome.FAILED, request, user, username)
