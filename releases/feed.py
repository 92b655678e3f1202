"""The releases feed reader: a GitHub releases list (RELEASES_FEED_URL) read into FeedReleases.

`fetch` never raises for what the feed does: a timeout, a refused connection, an error status,
HTML, malformed JSON or JSON of the wrong shape comes back as a FeedResult with `ok=False` and a
sentence in `error` (and a warning on the `releases.feed` logger). It is all or nothing: when
any page fails, no release of any page is returned, and no ETag (store one only when `ok`, or
page 2's releases would hide behind a 304 next time). Entries that are not releases of a
version (drafts, prereleases, tags that are not MAJOR.MINOR.PATCH, a missing or invalid
published_at, a version seen twice) are skipped and counted, not failures.
"""

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

log = logging.getLogger("releases.feed")

HEADERS = {
    "User-Agent": "Managed-Instance-Portal releases-feed/1",
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
}
# Semver's numbers: ASCII digits (not \d, which takes any Unicode digit), no leading zeros, at
# most 18 digits (int() refuses very long digit strings).
_VERSION = re.compile(r"v?(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})")
_TIMEOUTS = (TimeoutError, urllib3.exceptions.ReadTimeoutError)  # not NewConnectionError
_JSON_KINDS = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}

Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class FeedRelease:
    version: str  # "6.2.0", no leading v
    published_at: datetime  # aware, UTC
    notes_url: str  # the release's html_url (http or https only), or ""


@dataclass(frozen=True)
class FeedResult:
    ok: bool
    not_modified: bool  # the first page answered 304 Not Modified to the stored ETag
    releases: list[FeedRelease]  # by version, lowest first; empty unless ok and modified
    etag: str  # the first page's ETag to store, "" if none or when not ok
    error: str  # "" when ok, else a sentence naming the URL and what went wrong
    skipped: int  # entries skipped (drafts, prereleases, bad tags or dates, duplicates)
    pages: int  # pages read successfully (a 304 counts as one)


class _FeedError(Exception):
    """A failure of the feed, in a sentence for FeedResult.error."""


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "6.2.0" or "v6.2.0"; None for anything else ("6.2", "6.2.0-rc.1",
    "nightly", "06.2.0")."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def normalize_version(text: str) -> str | None:
    """ "v6.2.0" -> "6.2.0"; None when `text` is not a version (see parse_version)."""
    parsed = parse_version(text)
    return None if parsed is None else "{}.{}.{}".format(*parsed)


def release_kind(previous: str | None, version: str) -> str:
    """ "monthly" when `version` changes the major or minor of `previous` (the next lower known
    version) or there is no previous, "patch" when only the patch differs. Raises ValueError for
    something that is not a version."""
    current = parse_version(version)
    if current is None:
        raise ValueError(f"Not a version: {version!r}")
    if previous is None:
        return "monthly"
    before = parse_version(previous)
    if before is None:
        raise ValueError(f"Not a version: {previous!r}")
    return "patch" if before[:2] == current[:2] else "monthly"


def fetch(
    url: str,
    etag: str = "",
    *,
    timeout: Timeout = (5, 15),
    max_pages: int = 20,
    session: requests.Session | None = None,
) -> FeedResult:
    """Read the releases list at `url`, following Link rel="next" for up to `max_pages` pages.

    `etag` (the one a previous ok result gave) goes out as If-None-Match; a 304 answers
    `not_modified`. `timeout` is requests' (connect, read) in seconds. `session` may carry
    credentials (an Authorization header): next links are followed only on the feed's own
    scheme and host, so they never leave it. Never raises for what the feed answers.
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    own = session or requests.Session()
    pages = 0
    try:
        releases: dict[str, FeedRelease] = {}
        skipped, first_etag, page_url = 0, "", url
        while page_url and pages < max_pages:
            headers = dict(HEADERS)
            if pages == 0 and etag:
                headers["If-None-Match"] = etag
            response = _get(own, page_url, headers, timeout)
            if pages == 0:
                first_etag = response.headers.get("ETag", "")
                if response.status_code == 304:
                    return FeedResult(True, True, [], first_etag or etag, "", 0, 1)
            items = _items(response, page_url)
            pages += 1
            skipped += _collect(items, releases)
            page_url = _next_page(response, url)
        if page_url:
            log.warning("Releases feed %s: stopped after %d pages, more remain", url, pages)
    except _FeedError as error:
        log.warning("Releases feed %s failed: %s", url, error)
        return FeedResult(False, False, [], "", str(error), 0, pages)
    except Exception as exc:  # the contract: nothing raised to the caller, even a surprise
        log.warning("Releases feed %s failed unexpectedly", url, exc_info=True)
        message = f"Could not read {url}: {type(exc).__name__}: {exc}"
        return FeedResult(False, False, [], "", message, 0, pages)
    finally:
        if session is None:
            own.close()
    ordered = sorted(releases.values(), key=lambda r: parse_version(r.version) or (0, 0, 0))
    return FeedResult(True, False, ordered, first_etag, "", skipped, pages)


def _get(
    session: requests.Session, url: str, headers: dict[str, str], timeout: Timeout
) -> requests.Response:
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    try:
        response = session.get(url, headers=headers, timeout=timeout)
    except requests.ConnectTimeout as exc:
        raise _FeedError(f"Timed out after {connect:g} s connecting to {url}") from exc
    except requests.RequestException as exc:
        # A read timeout while the body arrives reaches here as a ConnectionError: look inside.
        if isinstance(exc, requests.Timeout) or any(isinstance(e, _TIMEOUTS) for e in _chain(exc)):
            raise _FeedError(f"Timed out after {read:g} s reading {url}") from exc
        root = _chain(exc)[-1]  # e.g. "Connection refused", not urllib3's retry wrapping
        reason = getattr(root, "strerror", None) or str(root) or type(root).__name__
        if isinstance(exc, requests.ConnectionError):
            raise _FeedError(f"Could not connect to {url}: {reason}") from exc
        raise _FeedError(f"Could not read {url}: {reason}") from exc
    if response.status_code == 304 or 200 <= response.status_code < 300:
        return response
    limited = response.status_code in (403, 429) and (
        response.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in response.headers
    )
    hint = " (rate limited)" if limited else ""
    raise _FeedError(f"HTTP {response.status_code}{hint} from {url}")


def _items(response: requests.Response, url: str) -> list[dict[str, Any]]:
    """The page's release objects, or _FeedError for anything but a JSON list of objects."""
    if response.status_code == 304:  # only the first page is conditional
        raise _FeedError(f"HTTP 304 from {url}")
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise _FeedError(f"Not JSON ({media}) from {url}")
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError) as exc:
        raise _FeedError(f"Malformed JSON from {url}: {exc}") from exc
    if not isinstance(data, list):
        got = _kind(data)
        raise _FeedError(f"Unexpected JSON: expected a list of releases, got {got} from {url}")
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise _FeedError(
                f"Unexpected JSON: expected release objects, got {_kind(item)} "
                f"(item {number}) from {url}"
            )
    return data


def _collect(items: list[dict[str, Any]], releases: dict[str, FeedRelease]) -> int:
    """Add the page's releases to `releases` (by version, the first seen wins); the skip count."""
    skipped = 0
    for item in items:
        tag = item.get("tag_name")
        version = normalize_version(tag) if isinstance(tag, str) else None
        published = _published(item.get("published_at"))
        if (
            item.get("draft")
            or item.get("prerelease")
            or version is None
            or published is None
            or version in releases
        ):
            log.debug("Releases feed: skipped %r", tag)
            skipped += 1
            continue
        notes = item.get("html_url")
        if not (isinstance(notes, str) and notes.lower().startswith(("https://", "http://"))):
            notes = ""  # shown as a link: never a javascript: or other scheme
        releases[version] = FeedRelease(version, published, notes)
    return skipped


def _published(value: object) -> datetime | None:
    """An aware ISO 8601 instant ("2026-11-20T17:00:00Z") in UTC; None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
        return instant.astimezone(UTC) if instant.tzinfo is not None else None
    except (ValueError, OverflowError):  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        return None


def _next_page(response: requests.Response, feed_url: str) -> str:
    """The rel="next" URL of the Link header ("" at the last page), on the feed's own origin."""
    link = response.links.get("next", {}).get("url", "")
    if not link:
        return ""
    try:
        target = urljoin(response.url, link)
        feed, there = urlsplit(feed_url), urlsplit(target)
    except ValueError as exc:
        raise _FeedError(f"Bad Link rel=next from {response.url}: {exc}") from exc
    if (there.scheme, there.netloc) != (feed.scheme, feed.netloc):
        raise _FeedError(f"Link rel=next from {response.url} leaves the feed's host: {target}")
    return target


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "number")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from or while handling, innermost last."""
    chain = [exc]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) and inner not in chain:
        chain.append(inner)
    return chain
