"""The pages people click through: forms with errors, only one's own buttons, inbox, queue."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Request
from tests.factories import PASSWORD, make_instance

pytestmark = pytest.mark.clock


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)


def file(user, kind="create", **data):
    # The customer of an existing instance is the instance's: only a create names one.
    data = {"instance": "hooli", **({"customer": "Hooli"} if kind == "create" else {}), **data}
    form = FORMS[kind](data=data)
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data)


def buttons(response):
    return set(re.findall(r'data-action="([a-z_]+)"', response.content.decode()))


def test_ce_files_a_create_request_through_the_form(client, users):
    login(client, users["ce"])
    page = client.get(reverse("new_request", args=["create"]))
    assert page.status_code == 200 and b"Recommended machine type" in page.content
    response = client.post(
        reverse("new_request", args=["create"]),
        {
            "instance": "hooli",
            "customer": "Hooli",
            "access": "public_sso",
            "users": "200",
            "justification": "Trial",
        },
    )
    created = Request.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/requests/{created.pk}/"
    assert created.requested_by == users["ce"] and created.state == "pending_approval"
    assert created.machine_type == "n1-standard-8"


def test_the_form_shows_what_is_wrong_and_saves_nothing(client, users):
    login(client, users["ce"])
    response = client.post(
        reverse("new_request", args=["create"]),
        {
            "instance": "Bad_Slug-",
            "customer": "",
            "access": "ip_allowlist",
            "allowed_ip_ranges": "10.0.0.0/33",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="error-instance"' in html
    assert 'data-testid="error-allowed_ip_ranges"' in html and "10.0.0.0/33" in html
    assert 'data-testid="error-customer"' in html
    assert Request.objects.count() == 0


def test_teardown_form_requires_the_slug_typed_again(client, users):
    make_instance("acme")
    login(client, users["sales"])
    response = client.post(
        reverse("new_request", args=["teardown"]), {"instance": "acme", "confirm": "acm"}
    )
    assert response.status_code == 200 and b"Type &#x27;acme&#x27; exactly" in response.content
    assert Request.objects.count() == 0


@pytest.mark.parametrize(
    "who,expected",
    [
        ("ce", {"cancel"}),
        ("lead", {"approve", "reject", "cancel"}),
        ("devops", set()),
        ("manager", set()),
        ("sales", set()),
    ],
)
def test_detail_shows_only_the_buttons_this_person_may_press(client, users, who, expected):
    request = file(users["ce"])
    login(client, users[who])
    response = client.get(reverse("request_detail", args=[request.pk]))
    assert response.status_code == 200
    assert buttons(response) == expected


def test_managers_see_no_comment_form_and_cannot_post_one(client, users):
    request = file(users["ce"])
    login(client, users["manager"])
    assert b"Add a comment" not in client.get(reverse("request_detail", args=[request.pk])).content
    response = client.post(reverse("request_comment", args=[request.pk]), {"body": "hi"})
    assert response.status_code == 403


def test_lead_approves_from_the_page_and_devops_picks_up_from_the_queue(client, users):
    request = file(users["ce"])
    login(client, users["lead"])
    inbox = client.get(reverse("approvals"))
    assert f'data-request-id="{request.pk}"'.encode() in inbox.content
    response = client.post(
        reverse("request_action", args=[request.pk, "approve"]), {"comment": "Go"}
    )
    assert response.status_code == 302
    client.logout()
    login(client, users["devops"])
    queue = client.get(reverse("devops_queue"))
    assert f'data-testid="pick-up-{request.pk}"'.encode() in queue.content
    client.post(reverse("request_action", args=[request.pk, "pick_up"]))
    request.refresh_from_db()
    assert request.state == "in_progress" and request.assignee == users["devops"]


def test_a_forbidden_action_answers_403_naming_the_role_it_needs(client, users):
    request = file(users["ce"])
    login(client, users["ce"])
    forbidden = client.post(reverse("request_action", args=[request.pk, "approve"]))
    assert forbidden.status_code == 403
    assert b"Only CE Leadership may approve requests." in forbidden.content
    unknown = client.post(reverse("request_action", args=[request.pk, "launch"]))
    assert unknown.status_code == 404


def test_a_stale_action_comes_back_to_the_request_page_saying_who_acted(client, users):
    request = file(users["ce"])
    earlier = timezone.now() - timedelta(minutes=3)
    workflow.perform(users["lead"], request.pk, "cancel", notify=False, now=earlier)
    login(client, users["ce"])
    stale = client.post(reverse("request_action", args=[request.pk, "cancel"]))
    # Post, redirect, get: a reload of the page does not post again.
    assert stale.status_code == 302 and stale["Location"] == f"/requests/{request.pk}/"
    page = client.get(stale["Location"]).content.decode()
    assert "lead cancelled this 3 minutes ago." in page
    assert "cancel is not possible" not in page and "cancelled;" not in page


@pytest.mark.parametrize(
    "url_name,allowed",
    [
        # Managers approve access requests.
        ("approvals", {"lead", "reviewer", "manager"}),
        ("devops_queue", {"devops", "devops2"}),
        # Every role may ask for access (the page then offers only that kind).
        ("new_request_choose", {"ce", "sales", "lead", "reviewer", "devops", "devops2", "manager"}),
    ],
)
def test_role_pages_are_for_their_roles(client, users, url_name, allowed):
    allowed = allowed | {"admin"}
    for name, user in users.items():
        client.force_login(user)
        status = client.get(reverse(url_name)).status_code
        assert status == (200 if name in allowed else 403), (name, status)


@pytest.mark.clock_once("paging: no date arithmetic")
def test_the_instance_list_pages_its_instances(client, users):
    from provisioning.models import Instance
    from requests_app.views import INSTANCE_ROWS

    Instance.objects.bulk_create(
        Instance(slug=f"in{i:03d}", customer="Acme", gcp_project=f"mi-in{i:03d}")
        for i in range(INSTANCE_ROWS + 30)
    )
    login(client, users["ce"])
    pages = [client.get(reverse("instance_list"), {"page": n}).content.decode() for n in (1, 2)]
    shown = [re.findall(r'<a href="/instances/(in\d+)/"', html) for html in pages]
    assert shown[0] == [f"in{i:03d}" for i in range(INSTANCE_ROWS)]
    assert shown[1] == [f"in{i:03d}" for i in range(INSTANCE_ROWS, INSTANCE_ROWS + 30)]
    assert f"Instances 1–{INSTANCE_ROWS} of {INSTANCE_ROWS + 30}" in pages[0]
    assert "Page 2 of 2" in pages[1] and "?page=1" in pages[1]


def test_instance_pages_list_instances_with_their_requests(client, users):
    make_instance("acme")
    request = file(users["ce"], kind="suspend", instance="acme")
    login(client, users["manager"])
    assert b"acme" in client.get(reverse("instance_list")).content
    detail = client.get(reverse("instance_detail", args=["acme"]))
    assert f'data-request-id="{request.pk}"'.encode() in detail.content


def test_list_pages_use_a_constant_number_of_queries(client, users, django_assert_max_num_queries):
    for i in range(3):
        make_instance(f"inst{i}")
        file(users["ce"], kind="suspend", instance=f"inst{i}")
    client.force_login(users["devops"])
    pages = [reverse("request_list"), reverse("devops_queue"), reverse("instance_list")]
    counts = {}
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for url in pages:
        with CaptureQueriesContext(connection) as few:
            client.get(url)
        counts[url] = len(few)
    for i in range(3, 13):
        make_instance(f"inst{i}")
        file(users["sales"], kind="suspend", instance=f"inst{i}")
    for url in pages:
        with django_assert_max_num_queries(counts[url]):
            client.get(url)
