"""Strict parsing of settings from the environment.

Every reader names the variable in its error, so a typo in a deployment stops the start with a
message that says what to fix instead of running with a silently wrong value.
"""

import os
from collections.abc import Collection, Iterable, Mapping
from typing import Literal, TypeVar, overload
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")
Environ = Mapping[str, str] | None


def _raw(name: str, environ: Environ) -> str | None:
    value = (environ if environ is not None else os.environ).get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


@overload
def env_str(
    name: str, default: None = None, *, required: Literal[True], environ: Environ = None
) -> str: ...
@overload
def env_str(
    name: str, default: None = None, *, required: bool = False, environ: Environ = None
) -> str | None: ...
@overload
def env_str(
    name: str, default: T, *, required: bool = False, environ: Environ = None
) -> str | T: ...
def env_str(
    name: str, default: object = None, *, required: bool = False, environ: Environ = None
) -> object:
    value = _raw(name, environ)
    if value is None:
        if required:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: T, *, environ: Environ = None) -> bool | T:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no)")


def env_int(
    name: str,
    default: T,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Environ = None,
) -> int | T:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


@overload
def env_url(
    name: str,
    default: None = None,
    *,
    schemes: Collection[str],
    required: Literal[True],
    environ: Environ = None,
) -> str: ...
@overload
def env_url(
    name: str,
    default: None = None,
    *,
    schemes: Collection[str],
    required: bool = False,
    environ: Environ = None,
) -> str | None: ...
@overload
def env_url(
    name: str,
    default: T,
    *,
    schemes: Collection[str],
    required: bool = False,
    environ: Environ = None,
) -> str | T: ...
def env_url(
    name: str,
    default: object = None,
    *,
    schemes: Collection[str],
    required: bool = False,
    environ: Environ = None,
) -> object:
    value = _raw(name, environ)
    if value is None:
        if required:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(
            f"{name} has scheme {parts.scheme or '(none)'!r}; expected one of: {allowed}"
        )
    if parts.scheme not in {"sqlite"} and not parts.hostname and not parts.path:
        raise ImproperlyConfigured(f"{name}={value!r} names no host")
    return value


def env_list(name: str, default: Iterable[str] = (), *, environ: Environ = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(
    name: str, default: T, *, choices: Collection[str], environ: Environ = None
) -> str | T:
    value = _raw(name, environ)
    if value is None:
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value
