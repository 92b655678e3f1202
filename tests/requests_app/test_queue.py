"""The DevOps queue: each section shows its most urgent requests, with how their runs stand and
who holds them, and says how many more there are; its queries do not grow with the rows."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.models import Run, RunState
from requests_app.models import State
from requests_app.sla import policies
from requests_app.views import QUEUE_ROWS
from tests.dashboards.factories import make_instance, timed_request

pytestmark = pytest.mark.clock


def rows(users, count, *, picked=False, paused=False, hours_ago=1):
    """`count` requests, queued `hours_ago` (and more, one minute apart each) ago; picked up by
    devops when `picked` (and waiting on the customer when `paused`)."""
    now = timezone.now()
    made = []
    for i in range(count):
        queued = now - timedelta(hours=hours_ago, minutes=i)
        picked_at = queued + timedelta(minutes=1) if picked else None
        pauses = [(queued + timedelta(minutes=2), None)] if paused else []
        when = {"queued": queued, "picked": picked_at, "pauses": pauses}
        made.append(timed_request(users["ce"], assignee=users["devops"], **when))
    return made


def run_for(request, state):
    instance = make_instance()
    return Run.objects.create(
        instance=instance,
        request_id=request.pk,
        kind=request.kind,
        state=state,
        created_at=timezone.now(),
    )


def section(html, state):
    return html.split(f'data-testid="queue-{state}"')[1].split("</section>")[0]


def shown(html, state):
    return re.findall(r'<tr data-request-id="(\d+)"', section(html, state))


def test_each_section_is_capped_and_links_to_the_rest(client, users):
    rows(users, QUEUE_ROWS + 7)
    rows(users, QUEUE_ROWS + 2, picked=True)
    waiting = rows(users, 3, picked=True, paused=True)
    client.force_login(users["devops"])
    html = client.get(reverse("devops_queue")).content.decode()

    assert len(shown(html, "queued")) == QUEUE_ROWS
    assert len(shown(html, "in_progress")) == QUEUE_ROWS
    assert shown(html, "waiting_on_customer") == [str(r.pk) for r in reversed(waiting)]
    assert f'data-testid="count-queued">{QUEUE_ROWS + 7}<' in html
    assert f'data-testid="count-in_progress">{QUEUE_ROWS + 2}<' in html
    more = section(html, "queued").split('data-testid="more-queued"')[1]
    assert '<a href="/requests/?state=queued">7 more queued</a>' in more
    assert '<a href="/requests/?state=in_progress">2 more in progress</a>' in section(
        html, "in_progress"
    )
    assert 'data-testid="more-waiting_on_customer"' not in html


def test_rows_say_how_their_run_stands_and_who_holds_them(client, users):
    # The oldest are the most urgent: these three come first in their section.
    planned, errored, applying = rows(users, 3, picked=True, hours_ago=30)
    run_for(planned, RunState.ERRORED)  # an earlier run: only the latest counts
    run_for(planned, RunState.PLANNED)
    run_for(errored, RunState.ERRORED)
    run_for(applying, RunState.APPLYING)
    [nobody] = rows(users, 1)
    client.force_login(users["devops2"])
    html = client.get(reverse("devops_queue")).content.decode()

    def cells(request):
        row = html.split(f'<tr data-request-id="{request.pk}">')[1].split("</tr>")[0]
        run = re.search(r'data-testid="run-status">(.*?)</td>', row).group(1)
        held = re.search(r'data-testid="held-by">(.*?)</td>', row).group(1)
        return re.sub(r"<[^>]+>", "", run), re.sub(r"<[^>]+>", "", held)

    assert cells(planned) == ("plan waiting for confirm", "devops")
    assert cells(errored) == ("run errored", "devops")
    assert cells(applying) == ("applying", "devops")
    assert cells(nobody) == ("—", "nobody")
    client.force_login(users["devops"])
    html = client.get(reverse("devops_queue")).content.decode()
    assert cells(planned) == ("plan waiting for confirm", "devops (you)")


def test_the_queue_runs_the_same_queries_for_many_rows(
    client, users, django_assert_max_num_queries
):
    def add(count):
        made = rows(users, count) + rows(users, count, picked=True)
        made += rows(users, count, picked=True, paused=True)
        for request in made[count::3]:
            run_for(request, RunState.APPLIED)
        return made

    add(2)
    client.force_login(users["devops"])
    # Both visits load the SLA calendar and policies afresh: kept for 30 s, they would expire
    # or not depending on how long adding the rows takes on a busy machine.
    policies.invalidate_cache()
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("devops_queue")).status_code == 200
    add(QUEUE_ROWS * 2)  # a few hundred open requests, some with runs
    policies.invalidate_cache()
    with django_assert_max_num_queries(len(few)):
        html = client.get(reverse("devops_queue")).content.decode()
    assert html.count("<tr data-request-id=") == 3 * QUEUE_ROWS
    assert "applied" in html and State.QUEUED in html


@pytest.mark.clock_once("markup of the rows: no date arithmetic beyond the timers' presence")
def test_the_rows_escape_what_people_typed_and_say_who_holds_them(client, users):
    """The rows are drawn in Python (requests_app/rows.py): every typed value is escaped,
    and the row says what the template said (kind, non-standard reasons, instance link, holder,
    timers, the pick-up form with its CSRF token)."""
    instance = make_instance("acme-q")
    now = timezone.now()
    queued = timed_request(
        users["ce"], queued=now - timedelta(hours=1), customer='<script>alert("x")</script>'
    )
    queued.standard = False
    queued.non_standard_reasons = ["scale", "<b>migration</b>"]
    queued.instance = instance
    queued.instance_slug = instance.slug
    queued.save()
    mine = timed_request(
        users["ce"],
        queued=now - timedelta(hours=1),
        assignee=users["devops"],
        picked=now - timedelta(minutes=5),
    )
    client.force_login(users["devops"])
    html = client.get(reverse("devops_queue")).content.decode()
    row = section(html, "queued").split(f'data-request-id="{queued.pk}"')[1].split("</tr>")[0]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in row
    assert 'title="scale, &lt;b&gt;migration&lt;/b&gt;">non-standard</span>' in row
    assert f'<a href="{reverse("instance_detail", args=[instance.slug])}">acme-q</a>' in row
    assert f'action="{reverse("request_action", args=[queued.pk, "pick_up"])}"' in row
    assert 'name="csrfmiddlewaretoken" value="' in row
    assert 'data-testid="timer-response"' in row and 'data-testid="timer-resolution"' in row
    assert '<td data-testid="held-by"><span class="muted">nobody</span></td>' in row
    held = section(html, "in_progress").split(f'data-request-id="{mine.pk}"')[1].split("</tr>")[0]
    assert 'devops <span class="muted">(you)</span>' in held
    assert "pick-up-" not in held


@pytest.mark.clock_once("which columns the rows read does not depend on the date")
def test_no_row_of_any_kind_asks_for_a_column_the_tables_left_out(client, users, monkeypatch):
    """The queue and the request list load only ROW_COLUMNS: a row of any kind, in any section,
    at any point of its clocks, must be drawn from them (a deferred column would cost a query
    per row)."""
    from django.contrib.auth import get_user_model

    from provisioning.models import Instance
    from requests_app.models import Kind, Request

    now = timezone.now()
    instance = make_instance("acme-cols")
    for kind in Kind.values:
        for picked, pauses in (
            (None, ()),
            (now - timedelta(minutes=30), ()),
            (now - timedelta(minutes=30), ((now - timedelta(minutes=20), None),)),
        ):
            request = timed_request(
                users["ce"],
                kind,
                queued=now - timedelta(hours=1),
                picked=picked,
                pauses=pauses,
                assignee=users["devops"],
                target_days=3,
            )
            request.instance = instance
            request.standard = False
            request.non_standard_reasons = ["scale"]
            if kind == Kind.ACCESS:
                request.person, request.scope = "ann@example.com", "vault"
            request.save()

    def refuse(self, *args, fields=None, **kwargs):
        raise AssertionError(f"{type(self).__name__} loads deferred {fields}")

    for model in (Request, Instance, get_user_model()):
        monkeypatch.setattr(model, "refresh_from_db", refuse)
    client.force_login(users["devops"])
    html = client.get(reverse("devops_queue")).content.decode()
    assert html.count("<tr data-request-id=") == 3 * len(Kind.values)
    # The request list loads the same columns and the requester's name.
    html = client.get(reverse("request_list")).content.decode()
    assert html.count("<tr data-request-id=") == 3 * len(Kind.values)
