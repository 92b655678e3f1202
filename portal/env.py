"""Strict parsing of settings from the environment, and the environment of a local run.

Every reader names the variable in its error, so a typo in a deployment stops the start with a
message that says what to fix instead of running with a silently wrong value.

`make run` runs with DEBUG off, as production does, but over plain HTTP on 127.0.0.1: it takes
its environment from `local_run_environ` (`python -m portal.env local-run PORT` prints it as shell
exports; no settings are loaded for that, as they cannot load without it).
"""

import os
import secrets
import shlex
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Literal, TypeVar, overload
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")
# URLs that need no host: `sqlite:///path`, and the mail backends `console:` and `locmem:`.
HOSTLESS_SCHEMES = {"sqlite", "console", "locmem"}
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
    if parts.scheme not in HOSTLESS_SCHEMES and not parts.hostname and not parts.path:
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


def env_together(*names: str, environ: Environ = None) -> dict[str, str] | None:
    """Variables that only work as a set (the Slack app's token, signing secret and channel):
    all of them set gives their values, none gives None, and a partial set stops the start with
    a message naming what is missing (never the values: some are secrets)."""
    values = {name: _raw(name, environ) for name in names}
    given = [name for name, value in values.items() if value is not None]
    if not given:
        return None
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ImproperlyConfigured(
            f"{' and '.join(missing)} must be set too: {', '.join(names)} work together "
            f"(only {', '.join(given)} {'is' if len(given) == 1 else 'are'} set)"
        )
    return {name: value for name, value in values.items() if value is not None}


# -- the environment of a local run (make run) -------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# The HTTPS-only settings, off for a run over plain HTTP on this machine (make run, the tests).
PLAIN_HTTP = {
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false",
    "SECURE_HSTS_PRELOAD": "false",
}
SECRET_KEY_FILE = "secret_key"


def local_secret_key(var_dir: Path) -> str:
    """The SECRET_KEY of local runs: made once into `<var>/secret_key` (mode 0600), then reused,
    so sessions survive a restart of `make run`."""
    path = var_dir / SECRET_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if len(key) < 50 or len(set(key)) < 5:
            raise ImproperlyConfigured(
                f"{path} holds no usable SECRET_KEY (50+ characters of varied text); "
                "delete it and a new one is made"
            )
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return key
    var_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")
    try:
        os.link(partial, path)  # never replaces: of two runs starting at once, one key wins
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return path.read_text().strip()


def suite_environ() -> dict[str, str]:
    """The settings the test suite runs with (`python -m portal.devservices test-env` prints
    them): the production settings, DEBUG off, over plain HTTP with a throwaway key and the host
    names of the test client and the live server."""
    return {
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "test-only-" + secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "SECRET_KEY_FALLBACKS": "",
        **PLAIN_HTTP,
    }


def local_run_environ(port: int, *, environ: Environ = None) -> dict[str, str]:
    """What `make run` adds to the environment (a variable already set is left alone): DEBUG off
    (the default) with the key of `local_secret_key`, the local host names, no HTTPS-only
    settings, and notification links to the port actually served."""
    environ = environ if environ is not None else os.environ
    wanted = {
        "ALLOWED_HOSTS": ",".join(LOCAL_HOSTS),
        **PLAIN_HTTP,
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
    }
    added = {name: value for name, value in wanted.items() if _raw(name, environ) is None}
    if _raw("SECRET_KEY", environ) is None:
        var_dir = Path(_raw("PORTAL_VAR_DIR", environ) or ROOT / "var")
        added["SECRET_KEY"] = local_secret_key(var_dir)
    return added


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "local-run" and argv[2].isdigit():
        try:
            added = local_run_environ(int(argv[2]))
        except (ImproperlyConfigured, OSError) as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1
        for name, value in sorted(added.items()):
            print(f"export {name}={shlex.quote(value)}")
        return 0
    sys.stderr.write("usage: python -m portal.env local-run PORT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
