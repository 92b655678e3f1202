"""Tables of requests drawn in Python: the request list, the DevOps queue, the approvals inbox,
the instance page and the SLA dashboard show up to 75 requests with two timers each, and this
draws a row several times faster than the template engine did (issue 16). Every value is escaped
(`escape`) where it enters the markup.

Two tables: `request_table` (the request list's columns, with an optional action: pick up or
review) and `queue_rows` (the queue's: how the run stands and who holds the request)."""

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from functools import lru_cache

from django.conf import settings
from django.middleware.csrf import get_token
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from portal.markup import display, escape, timesince
from requests_app.models import Category, Kind, Request
from requests_app.sla.status import TIMER_COLUMNS
from requests_app.templatetags.sla_tags import timer_html

# The columns the rows read (what they show and what the timers need): the tables load only
# these (test_queue refuses any other column being loaded row by row). Not the due instants
# and the sweep's marks: a queue of 75 rows parsed five unread date-times a row.
ROW_COLUMNS = [
    "kind",
    "state",
    "customer",
    "category",
    "instance_slug",
    "standard",
    "non_standard_reasons",
    "scope",
    "person",
    "created_at",
    "assignee_id",
    *(column for column in TIMER_COLUMNS if column != "kind"),
    "instance__slug",
    "assignee__username",
]


_HOLE = "7777777"


def url_maker(name: str, count: int) -> Callable[..., str]:
    """reverse(name) for many rows at the cost of one: the URL reversed once (per process,
    script prefix and URLconf) with `count` placeholder arguments, then filled in. Only for
    arguments that reverse would not quote (numbers, slugs, action names)."""
    prefix, urlconf = get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF
    return _url_pattern(name, count, prefix, urlconf).format


@lru_cache(maxsize=256)
def _url_pattern(name: str, count: int, prefix: str, urlconf: object) -> str:
    holes = [f"{_HOLE}{i}" for i in range(count)]
    pattern = reverse(name, args=holes)
    for i, hole in enumerate(holes):
        pattern = pattern.replace(hole, "{" + str(i) + "}")
    return pattern


class Urls:
    """The URLs a table's rows link to, each reversed once per table."""

    def __init__(self) -> None:
        self.detail = url_maker("request_detail", 1)
        self.instance = url_maker("instance_detail", 1)
        self.action = url_maker("request_action", 2)


def csrf_input(request: object) -> str:
    return (
        '<input type="hidden" name="csrfmiddlewaretoken" '
        f'value="{escape(get_token(request))}">'  # type: ignore[arg-type]
    )


def _kind(r: Request, *, category: bool) -> str:
    kind = escape(display(Request, "kind", r.kind))
    if r.kind == Kind.ACCESS:
        kind += f' <span class="muted small">{escape(r.scope)} for {escape(r.person)}</span>'
    if not r.standard:
        reasons = escape(", ".join(str(reason) for reason in r.non_standard_reasons))
        kind += f' <span class="badge badge-nonstd" title="{reasons}">non-standard</span>'
    if category and r.category == Category.INTERNAL:
        kind += ' <span class="badge" data-testid="internal">internal</span>'
    return kind


def _target(r: Request, urls: Urls) -> str:
    if r.instance:
        return f'<a href="{escape(urls.instance(r.instance.slug))}">{escape(r.instance_slug)}</a>'
    if r.whole_category:
        return f"<em>{escape(r.target_label)}</em>"
    return escape(r.instance_slug)


def _filed(r: Request, now: datetime, zone: tzinfo) -> str:
    created = escape(r.created_at.astimezone(zone).isoformat())
    return f'<td title="{created}">{escape(timesince(r.created_at, now))} ago</td>'


def _timers(r: Request) -> str:
    timers = ""
    if r.sla["response"]:
        timers += timer_html(r.sla["response"], "Response", r.working["response"])
    if r.sla["resolution"]:
        timers += timer_html(r.sla["resolution"], "Resolution", r.working["resolution"])
    return f'<td class="timers">{timers}</td>'


def _pick_up(r: Request, urls: Urls, csrf: str) -> str:
    url = escape(urls.action(r.pk, "pick_up"))
    return (
        f'<td><form method="post" action="{url}" class="inline">{csrf}'
        f'<button type="submit" class="primary" data-testid="pick-up-{r.pk}">Pick up</button>'
        "</form></td>"
    )


def _start(r: Request, urls: Urls) -> str:
    return (
        f'<tr data-request-id="{r.pk}"><td><a href="{escape(urls.detail(r.pk))}">#{r.pk}</a></td>'
    )


# -- the request list's table -------------------------------------------------------------------


REQUEST_HEAD = (
    "<th>#</th><th>Kind</th><th>Customer</th><th>Instance</th><th>State</th><th>Filed by</th>"
    "<th>Assignee</th><th>Filed</th><th>SLA</th>"
)


def request_table(
    rows: Iterable[Request], *, row_action: str = "", csrf: str = "", now: datetime | None = None
) -> SafeString:
    """The table of requests (with_timers() attached): its rows, and for `row_action` a last
    column with a Pick up form (`pick_up`, which needs `csrf`) or a Review link."""
    now = now or timezone.now()
    urls, zone = Urls(), timezone.get_current_timezone()
    head = REQUEST_HEAD + ("<th></th>" if row_action else "")
    body = "\n".join(_request_row(r, urls, row_action, csrf, now, zone) for r in rows)
    if not body:
        body = '<tr><td colspan="10" class="muted">Nothing here.</td></tr>'
    return mark_safe(
        '<div class="table-scroll"><table class="requests" data-testid="request-table">'
        f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>"
    )


def _request_row(
    r: Request, urls: Urls, row_action: str, csrf: str, now: datetime, zone: tzinfo
) -> str:
    action = ""
    if row_action == "pick_up":
        action = _pick_up(r, urls, csrf)
    elif row_action:
        action = f'<td><a class="button" href="{escape(urls.detail(r.pk))}">Review</a></td>'
    assignee = escape(r.assignee.username) if r.assignee else "—"
    return (
        f"{_start(r, urls)}<td>{_kind(r, category=True)}</td>"
        f"<td>{escape(r.customer or '—')}</td><td>{_target(r, urls)}</td>"
        f'<td><span class="badge state-{escape(r.state)}">'
        f"{escape(display(Request, 'state', r.state))}</span>"
        f"</td><td>{escape(r.requested_by.username)}</td><td>{assignee}</td>"
        f"{_filed(r, now, zone)}{_timers(r)}{action}</tr>"
    )


# -- the DevOps queue's rows --------------------------------------------------------------------


def queue_rows(
    rows: Iterable[Request], *, pick_up: bool, user_pk: int | None, csrf: str, now: datetime
) -> SafeString:
    """The <tr>s of one section of the queue: requests with_timers() and their `run_status`
    attached."""
    urls, zone = Urls(), timezone.get_current_timezone()
    return mark_safe(
        "\n".join(_queue_row(r, pick_up, user_pk, csrf, now, zone, urls) for r in rows)
    )


def _queue_row(
    r: Request,
    pick_up: bool,
    user_pk: int | None,
    csrf: str,
    now: datetime,
    zone: tzinfo,
    urls: Urls,
) -> str:
    run = getattr(r, "run_status", None)  # history.run_statuses, set by the view
    if run:
        run_html = (
            f'<span class="run-status run-status-{escape(run.state)}">{escape(run.words)}</span>'
        )
    else:
        run_html = '<span class="muted">—</span>'
    if r.assignee:
        held: str = escape(r.assignee.username)
        if r.assignee_id == user_pk:
            held += ' <span class="muted">(you)</span>'
    else:
        held = '<span class="muted">nobody</span>'
    return (
        f"{_start(r, urls)}<td>{_kind(r, category=False)}</td>"
        f"<td>{escape(r.customer or '—')}</td><td>{_target(r, urls)}</td>"
        f'<td data-testid="run-status">{run_html}</td><td data-testid="held-by">{held}</td>'
        f"{_filed(r, now, zone)}{_timers(r)}{_pick_up(r, urls, csrf) if pick_up else ''}</tr>"
    )
