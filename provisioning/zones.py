"""The zones an instance may be placed in: Compute's own list (ZonesClient.list), read at most
once an hour per process; while Compute cannot be read, the last list read, else the zones the
portal knows (the sandbox serves the same list)."""

import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)

# Zones with the n1 machine types the instances use (us-central1-f is the default).
KNOWN_ZONES = tuple(
    f"{region}-{letter}"
    for region, letters in (
        ("asia-east1", "abc"),
        ("asia-northeast1", "abc"),
        ("asia-southeast1", "abc"),
        ("australia-southeast1", "abc"),
        ("europe-west1", "bcd"),
        ("europe-west2", "abc"),
        ("europe-west3", "abc"),
        ("europe-west4", "abc"),
        ("northamerica-northeast1", "abc"),
        ("southamerica-east1", "abc"),
        ("us-central1", "abcf"),
        ("us-east1", "bcd"),
        ("us-east4", "abc"),
        ("us-west1", "abc"),
        ("us-west2", "abc"),
    )
    for letter in letters
)
DEFAULT_ZONE = "us-central1-f"
TTL_SECONDS = 3600
RETRY_SECONDS = 60  # after a failed read, the fallback serves this long before a new try

_lock = threading.Lock()
_cache: dict[str, object] = {"zones": None, "until": 0.0, "last_good": None}


def zones() -> list[str]:
    """The zones, sorted; never empty."""
    with _lock:
        if _cache["zones"] is not None and time.monotonic() < float(str(_cache["until"])):
            return list(_cache["zones"])  # type: ignore[call-overload]
    found = _read()
    with _lock:
        if found:
            _cache.update(zones=found, until=time.monotonic() + TTL_SECONDS, last_good=found)
        else:
            fallback = _cache["last_good"] or sorted(KNOWN_ZONES)
            _cache.update(zones=fallback, until=time.monotonic() + RETRY_SECONDS)
        return list(_cache["zones"])  # type: ignore[call-overload]


def forget() -> None:
    """Read Compute again at the next call (tests, and after a configuration change)."""
    with _lock:
        _cache.update(zones=None, until=0.0, last_good=None)


def _read() -> list[str] | None:
    from provisioning.verify import ComputeUnavailable, compute_client

    project = settings.COMPUTE_ZONES_PROJECT
    if not project:
        return None
    try:
        return compute_client().list_zones(project)
    except ComputeUnavailable:
        return None
    except Exception as exc:  # noqa: BLE001 - any failure of the read: the fallback serves
        log.warning("could not list Compute's zones in %s: %s", project, exc)
        return None
