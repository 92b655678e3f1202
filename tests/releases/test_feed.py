"""The releases feed reader against a real local HTTP server, in every shape the feed can take.

No database and no clock: the feed's instants are fixed strings and nothing reads the time.
"""

import json
import logging
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from releases.feed import (
    FeedRelease,
    fetch,
    normalize_version,
    parse_version,
    release_kind,
)


def release(tag, published="2026-11-20T17:00:00Z", *, draft=False, prerelease=False, url=None):
    return {
        "tag_name": tag,
        "published_at": published,
        "draft": draft,
        "prerelease": prerelease,
        "html_url": url
        if url is not None
        else f"https://github.com/acme/product/releases/tag/{tag}",
    }


class Feed:
    """A local feed server. Each test sets `routes`: path -> callable(handler) that answers."""

    def __init__(self):
        self.routes = {}
        self.requests = []  # (path, headers) of every request, in order
        self.release = threading.Event()  # set at teardown: frees handlers left sleeping
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                feed.requests.append((self.path, dict(self.headers)))
                answer = feed.routes.get(self.path.split("?")[0])
                if answer is None:
                    self.send_error(404)
                    return
                try:
                    answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout tests)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.base}/releases"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def json(self, path, data, *, status=200, headers=None, content_type="application/json"):
        self.raw(
            path, json.dumps(data).encode(), status=status, headers=headers, ctype=content_type
        )

    def raw(self, path, body, *, status=200, headers=None, ctype="application/json"):
        def answer(handler):
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = answer


@pytest.fixture
def feed():
    server = Feed()
    yield server
    server.close()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_failed(result, *fragments):
    assert not result.ok and not result.not_modified
    assert result.releases == [] and result.etag == "" and result.skipped == 0
    for fragment in fragments:
        assert fragment in result.error


# The good feeds.


def test_a_good_list_skips_drafts_prereleases_and_tags_that_are_not_versions(feed):
    feed.json(
        "/releases",
        [
            release("v6.4.0", draft=True),
            release("v6.3.0", prerelease=True),
            release("v6.3.0-rc.1", prerelease=True),
            release("v6.2.1", "2026-11-27T09:30:00+01:00"),
            release("nightly"),
            release("6.2"),
            release("v6.2.0", url="javascript:alert(1)"),
            release("6.10.0", None),  # no published_at
            release("6.9.0", "next tuesday"),
            release("6.1.0", "2026-10-01T12:00:00"),  # naive: not an instant
            release("6.0.0", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
            {"tag_name": 600, "published_at": "2026-11-20T17:00:00Z"},
            release("6.2.0"),  # the same version as v6.2.0
            release("v5.9.12", "2026-09-15T17:00:00Z"),
        ],
        headers={"ETag": '"abc"'},
    )
    result = fetch(feed.url)
    assert result.ok and not result.not_modified and result.error == ""
    assert result.releases == [
        FeedRelease(
            "5.9.12",
            datetime(2026, 9, 15, 17, tzinfo=UTC),
            "https://github.com/acme/product/releases/tag/v5.9.12",
        ),
        FeedRelease("6.2.0", datetime(2026, 11, 20, 17, tzinfo=UTC), ""),
        FeedRelease(
            "6.2.1",
            datetime(2026, 11, 27, 8, 30, tzinfo=UTC),
            "https://github.com/acme/product/releases/tag/v6.2.1",
        ),
    ]
    assert all(r.published_at.utcoffset().total_seconds() == 0 for r in result.releases)
    assert result.skipped == 11 and result.pages == 1 and result.etag == '"abc"'


def test_the_request_names_the_portal_and_asks_for_githubs_json(feed):
    feed.json("/releases", [])
    result = fetch(feed.url)
    assert result.ok and result.releases == [] and result.etag == ""
    (_, headers), *_ = feed.requests
    assert "Portal" in headers["User-Agent"]
    assert headers["Accept"] == "application/vnd.github+json"
    assert "If-None-Match" not in headers


def test_pages_joined_by_the_link_header(feed):
    page2, page3 = f"{feed.url}?page=2", f"{feed.url}?page=3"
    feed.json(
        "/releases",
        [release("v6.2.0"), release("v6.1.0", draft=True)],
        headers={"ETag": 'W/"page1"', "Link": f'<{page2}>; rel="next", <{page3}>; rel="last"'},
    )
    routes = {
        "/releases?page=2": (
            [release("v6.10.0"), release("v6.1.0")],
            {"Link": f'<{page3}>; rel="next"'},
        ),
        "/releases?page=3": ([release("v6.0.0"), release("v6.2.0")], {"ETag": '"page3"'}),
    }

    def by_query(handler):
        data, headers = routes[handler.path]
        body = json.dumps(data).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    original = feed.routes["/releases"]
    feed.routes["/releases"] = lambda h: (by_query if "?" in h.path else original)(h)
    result = fetch(feed.url, 'W/"old"')
    assert result.ok
    # By version, numerically: 6.10.0 after 6.2.0.
    assert [r.version for r in result.releases] == ["6.0.0", "6.1.0", "6.2.0", "6.10.0"]
    assert result.pages == 3 and result.skipped == 2  # the draft, and 6.2.0 seen again on page 3
    assert result.etag == 'W/"page1"'  # the first page's, not the last one's
    assert [path for path, _ in feed.requests] == [
        "/releases",
        "/releases?page=2",
        "/releases?page=3",
    ]
    # Only the first page is conditional.
    assert [h.get("If-None-Match") for _, h in feed.requests] == ['W/"old"', None, None]


def test_the_page_limit_stops_a_link_that_never_ends(feed, caplog):
    feed.json("/releases", [release("v6.2.0")], headers={"Link": f'<{feed.url}>; rel="next"'})
    with caplog.at_level(logging.WARNING, logger="releases.feed"):
        result = fetch(feed.url, max_pages=3)
    assert result.ok and result.pages == 3 and len(feed.requests) == 3
    assert [r.version for r in result.releases] == ["6.2.0"] and result.skipped == 2
    assert "stopped after 3 pages" in caplog.text


def test_a_next_link_to_another_host_is_not_followed(feed):
    feed.json(
        "/releases", [release("v6.2.0")], headers={"Link": '<https://evil.example/x>; rel="next"'}
    )
    result = fetch(feed.url)
    assert_failed(result, "leaves the feed's host", "https://evil.example/x")
    assert len(feed.requests) == 1


def test_a_link_that_is_not_a_url_is_a_failure(feed):
    feed.json("/releases", [release("v6.2.0")], headers={"Link": '<http://[::1/x>; rel="next"'})
    assert_failed(fetch(feed.url), f"Bad Link rel=next from {feed.url}")


def test_the_etag_goes_back_as_if_none_match_and_304_is_not_modified(feed):
    def conditional(handler):
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.send_header("ETag", '"v1"')
            handler.end_headers()
            return
        body = json.dumps([release("v6.2.0")]).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("ETag", '"v1"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    feed.routes["/releases"] = conditional
    first = fetch(feed.url)
    assert first.ok and first.etag == '"v1"' and len(first.releases) == 1
    again = fetch(feed.url, first.etag)
    assert again.ok and again.not_modified
    assert again.releases == [] and again.etag == '"v1"' and again.error == ""
    assert again.pages == 1
    assert feed.requests[1][1]["If-None-Match"] == '"v1"'


def test_a_session_given_is_used_and_left_open(feed):
    feed.json("/releases", [release("v6.2.0")])
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer token"
        assert fetch(feed.url, session=session).ok
        assert fetch(feed.url, session=session).ok
    assert feed.requests[0][1]["Authorization"] == "Bearer token"


# The failures: nothing is returned, the error says what happened, a warning is logged.


def test_a_timeout_is_a_failure(feed, caplog):
    def slow(handler):
        feed.release.wait(10)

    feed.routes["/releases"] = slow
    with caplog.at_level(logging.WARNING, logger="releases.feed"):
        result = fetch(feed.url, timeout=0.5)
    assert_failed(result)
    assert result.error == f"Timed out after 0.5 s reading {feed.url}"
    assert result.pages == 0
    (record,) = caplog.records
    assert record.name == "releases.feed" and record.levelno == logging.WARNING
    assert feed.url in record.getMessage() and "Timed out" in record.getMessage()


def test_a_body_that_stops_arriving_is_a_timeout_too(feed):
    def stalls(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'[{"tag_name": "v6')
        handler.wfile.flush()
        feed.release.wait(10)

    feed.routes["/releases"] = stalls
    result = fetch(feed.url, timeout=(5, 0.5))
    assert_failed(result)
    assert result.error == f"Timed out after 0.5 s reading {feed.url}"


def test_a_refused_connection_is_a_failure():
    url = f"http://127.0.0.1:{closed_port()}/releases"
    result = fetch(url)
    assert_failed(result, f"Could not connect to {url}", "refused")


@pytest.mark.parametrize("status", [500, 502, 404])
def test_an_error_status_is_a_failure(feed, status):
    feed.json("/releases", {"message": "Not Found"}, status=status)
    result = fetch(feed.url)
    assert_failed(result)
    assert result.error == f"HTTP {status} from {feed.url}"


def test_githubs_rate_limit_says_so(feed):
    feed.json(
        "/releases",
        {"message": "API rate limit"},
        status=403,
        headers={"X-RateLimit-Remaining": "0"},
    )
    assert fetch(feed.url).error == f"HTTP 403 (rate limited) from {feed.url}"


def test_html_with_200_is_a_failure(feed):
    feed.raw("/releases", b"<html><body>Sign in</body></html>", ctype="text/html; charset=utf-8")
    result = fetch(feed.url)
    assert_failed(result)
    assert result.error == f"Not JSON (text/html) from {feed.url}"


@pytest.mark.parametrize("body", [b'[{"tag_name": "v6.2.0",', b"", b"\xff\xfe\x00", b"[" * 100_000])
def test_malformed_json_is_a_failure(feed, body):
    feed.raw("/releases", body)
    assert_failed(fetch(feed.url), f"Malformed JSON from {feed.url}")


def test_an_object_instead_of_a_list_is_a_failure(feed):
    feed.json("/releases", {"releases": [release("v6.2.0")]})
    result = fetch(feed.url)
    assert_failed(result)
    assert result.error == (
        f"Unexpected JSON: expected a list of releases, got object from {feed.url}"
    )


def test_items_that_are_not_objects_are_a_failure(feed):
    feed.json("/releases", [release("v6.2.0"), "v6.1.0", release("v6.0.0")])
    result = fetch(feed.url)
    assert_failed(result, "expected release objects, got string (item 2)", feed.url)


def test_page_two_failing_returns_nothing_of_page_one(feed):
    page2 = f"{feed.base}/page2"
    feed.json(
        "/releases",
        [release("v6.2.0"), release("v6.1.0")],
        headers={"ETag": '"page1"', "Link": f'<{page2}>; rel="next"'},
    )
    feed.json("/page2", {"message": "Server Error"}, status=500)
    result = fetch(feed.url)
    assert_failed(result)
    assert result.error == f"HTTP 500 from {page2}"
    assert result.pages == 1


def test_a_304_on_a_later_page_is_a_failure(feed):
    feed.json("/releases", [release("v6.2.0")], headers={"Link": f'<{feed.base}/p2>; rel="next"'})

    def not_modified(handler):
        handler.send_response(304)
        handler.end_headers()

    feed.routes["/p2"] = not_modified
    assert_failed(fetch(feed.url), f"HTTP 304 from {feed.base}/p2")


class Raising(requests.adapters.BaseAdapter):
    """A transport that raises instead of sending: what no local server can do on demand."""

    def __init__(self, exc):
        super().__init__()
        self.exc = exc

    def send(self, request, **kwargs):
        raise self.exc

    def close(self):
        pass


def session_raising(exc):
    session = requests.Session()
    session.mount("http://", Raising(exc))
    return session


def test_a_connect_timeout_is_a_failure():
    session = session_raising(requests.ConnectTimeout("connect timed out"))
    result = fetch("http://feed.test/releases", timeout=(3, 15), session=session)
    assert_failed(result)
    assert result.error == "Timed out after 3 s connecting to http://feed.test/releases"


def test_even_a_surprise_is_a_result_not_an_exception(caplog):
    with caplog.at_level(logging.WARNING, logger="releases.feed"):
        result = fetch("http://feed.test/releases", session=session_raising(RuntimeError("bug")))
    assert_failed(result)
    assert result.error == "Could not read http://feed.test/releases: RuntimeError: bug"
    assert caplog.records[0].exc_info is not None


# Versions.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6.2.0", (6, 2, 0)),
        ("v6.2.0", (6, 2, 0)),
        ("v0.0.0", (0, 0, 0)),
        ("10.20.300", (10, 20, 300)),
        ("6.2", None),
        ("6.2.0-rc.1", None),
        ("6.2.0+build", None),
        ("nightly", None),
        ("", None),
        ("V6.2.0", None),
        ("vv6.2.0", None),
        ("06.2.0", None),
        ("6.2.0\n", None),
        (" 6.2.0", None),
        ("6.2.0.1", None),
        ("\u0666.2.0", None),  # an Arabic-Indic six: not an ASCII digit
        ("1" * 5000 + ".0.0", None),
    ],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_normalize_version():
    assert normalize_version("v6.2.0") == normalize_version("6.2.0") == "6.2.0"
    assert normalize_version("nightly") is None
    assert normalize_version("6.2") is None


def test_versions_order_by_numbers_not_text():
    assert parse_version("6.10.0") > parse_version("6.9.0")
    assert parse_version("v10.0.0") > parse_version("9.99.99")


@pytest.mark.parametrize(
    ("previous", "version", "kind"),
    [
        (None, "6.2.0", "monthly"),
        ("6.1.3", "6.2.0", "monthly"),
        ("5.12.4", "6.0.0", "monthly"),
        ("v6.2.0", "6.2.1", "patch"),
        ("6.2.1", "v6.2.7", "patch"),
    ],
)
def test_release_kind(previous, version, kind):
    assert release_kind(previous, version) == kind


@pytest.mark.parametrize(("previous", "version"), [(None, "nightly"), ("6.2", "6.2.1")])
def test_release_kind_refuses_what_is_not_a_version(previous, version):
    with pytest.raises(ValueError, match="Not a version"):
        release_kind(previous, version)


NUMBER = st.integers(min_value=0, max_value=10**18 - 1)
TRIPLE = st.tuples(NUMBER, NUMBER, NUMBER)


def spelled(triple, prefix):
    return prefix + ".".join(str(n) for n in triple)


@given(st.lists(st.tuples(TRIPLE, st.sampled_from(["", "v"]))))
def test_ordering_by_parse_version_is_ordering_by_the_numbers(versions):
    texts = [spelled(triple, prefix) for triple, prefix in versions]
    by_version = sorted(texts, key=parse_version)
    assert [parse_version(t) for t in by_version] == sorted(t for t, _ in versions)


@given(TRIPLE, st.sampled_from(["", "v"]))
def test_normalize_is_idempotent_and_strips_the_v(triple, prefix):
    once = normalize_version(spelled(triple, prefix))
    assert once == spelled(triple, "")
    assert normalize_version(once) == once
    assert parse_version(once) == triple


@given(st.text())
def test_normalize_is_idempotent_on_any_text(text):
    once = normalize_version(text)
    assert once is None or normalize_version(once) == once
