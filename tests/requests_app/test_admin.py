"""History is append-only in the admin: a superuser sees requests, events, comments,
notifications, instances and runs, and can add, change or delete none of them (notifications
have one action: send the failed ones again)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from provisioning.models import Run
from requests_app import notifications, workflow
from requests_app.forms import FORMS
from requests_app.models import Comment, Event, Notification, Request
from tests.factories import make_instance

pytestmark = pytest.mark.clock  # filing, signing in and acting read the clock


@pytest.fixture
def history(users):
    """A request with events and a comment, a notification per status, an instance and a run."""
    form = FORMS["create"](
        data={
            "instance": "hooli",
            "customer": "Hooli",
            "access": "public_sso",
            "justification": "Trial",
        }
    )
    assert form.is_valid(), form.errors
    request = workflow.file_request(users["ce"], "create", form.cleaned_data, notify=False)
    workflow.add_comment(users["ce"], request.pk, "Please hurry")
    event = request.events.first()
    now = timezone.now()
    made = {}
    for status in Notification.Status.values:
        made[status] = Notification.objects.create(
            request=request,
            event=event if status == "failed" else None,
            channel="email" if status != "sent" else "slack",
            topic=f"t-{status}",
            subject="s",
            body="b",
            status=status,
            attempts=5 if status == "failed" else 1,
            last_error="SMTPException: no" if status == "failed" else "",
            created_at=now - timedelta(minutes=5),
        )
    instance = make_instance("initech")
    run = Run.objects.create(
        instance=instance, request_id=request.pk, kind="create", created_at=now
    )
    return {
        "request": request,
        "event": event,
        "comment": Comment.objects.get(request=request),
        "notifications": made,
        "instance": instance,
        "run": run,
    }


def admin_url(obj, view):
    meta = obj._meta
    name = f"admin:{meta.app_label}_{meta.model_name}_{view}"
    return reverse(name) if view in ("changelist", "add") else reverse(name, args=[obj.pk])


OBJECTS = ["request", "event", "comment", "instance", "run"]


@pytest.fixture
def admin_client(client, users):
    client.force_login(users["admin"])
    return client


def history_counts():
    return (
        Request.objects.count(),
        Event.objects.count(),
        Comment.objects.count(),
        Notification.objects.count(),
        Run.objects.count(),
    )


@pytest.mark.parametrize("which", [*OBJECTS, "notification"])
def test_a_superuser_sees_the_history_but_cannot_add_change_or_delete_it(
    admin_client, history, which
):
    obj = history["notifications"]["sent"] if which == "notification" else history[which]
    before = history_counts()

    listing = admin_client.get(admin_url(obj, "changelist"))
    assert listing.status_code == 200
    assert b'value="delete_selected"' not in listing.content
    assert admin_url(obj, "add").encode() not in listing.content

    page = admin_client.get(admin_url(obj, "change"))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # a view page, no form to submit
    assert b"deletelink" not in page.content

    assert admin_client.get(admin_url(obj, "add")).status_code == 403
    assert admin_client.post(admin_url(obj, "add"), {}).status_code == 403
    assert admin_client.post(admin_url(obj, "change"), {}).status_code == 403
    assert admin_client.get(admin_url(obj, "delete")).status_code == 403
    assert admin_client.post(admin_url(obj, "delete"), {"post": "yes"}).status_code == 403
    # The bulk delete action is not there to ask for.
    admin_client.post(
        admin_url(obj, "changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    assert history_counts() == before


def test_a_request_with_its_events_cannot_be_deleted(admin_client, history):
    request = history["request"]
    assert admin_client.post(admin_url(request, "delete"), {"post": "yes"}).status_code == 403
    assert Request.objects.filter(pk=request.pk).exists()
    assert request.events.count() >= 2  # filed, commented


def test_the_retry_action_sends_failed_notifications_again(
    admin_client, history, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(notifications, "enqueue", queued.append)
    made = history["notifications"]
    listing = admin_client.get(admin_url(made["failed"], "changelist"))
    assert b'value="retry"' in listing.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            admin_url(made["failed"], "changelist"),
            {"action": "retry", "_selected_action": [n.pk for n in made.values()]},
            follow=True,
        )
    assert b"1 notification(s) queued to be sent again; 3 not failed, left alone." in (
        response.content
    )
    assert queued == [made["failed"].pk]
    for status, notification in made.items():
        notification.refresh_from_db()
        if status == "failed":
            assert (notification.status, notification.attempts) == ("pending", 0)
        else:
            assert notification.status == status


def test_the_retry_action_needs_the_change_permission(client, users, history):
    from django.contrib.auth.models import Permission

    staff = users["devops"]
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_notification"))
    client.force_login(staff)
    failed = history["notifications"]["failed"]
    listing = client.get(admin_url(failed, "changelist"))
    assert listing.status_code == 200 and b'value="retry"' not in listing.content
    client.post(
        admin_url(failed, "changelist"), {"action": "retry", "_selected_action": [failed.pk]}
    )
    failed.refresh_from_db()
    assert failed.status == "failed"


# -- SLA policies: a number and a unit per target ------------------------------------------------


def policy_form(policy, **data):
    from requests_app.admin import SlaPolicyForm

    values = {
        "kind": policy.kind,
        "response_target_number": "24",
        "response_target_unit": "hours",
        "resolution_target_number": "15",
        "resolution_target_unit": "working_days",
        **data,
    }
    return SlaPolicyForm(data=values, instance=policy)


@pytest.mark.parametrize(
    "kind,shown",
    [
        ("create", ("24", "hours", "15", "working_days")),
        ("upgrade", (None, "hours", "7", "calendar_days")),
        ("feature", ("24", "hours", None, "target_date")),
    ],
)
def test_the_policy_form_shows_each_target_as_a_number_and_a_unit(db, kind, shown):
    from requests_app.admin import SlaPolicyForm
    from requests_app.models import SlaPolicy

    initial = SlaPolicyForm(instance=SlaPolicy.objects.get(kind=kind)).initial
    names = ("response_target_number", "response_target_unit")
    names += ("resolution_target_number", "resolution_target_unit")
    values = tuple(None if initial[n] is None else str(initial[n]) for n in names)
    assert values == shown


@pytest.mark.parametrize(
    "data,stored",
    [
        ({}, ((timedelta(hours=24), "calendar"), (timedelta(days=15), "working"))),
        (
            {"response_target_number": "2", "response_target_unit": "calendar_days"},
            ((timedelta(days=2), "calendar"), (timedelta(days=15), "working")),
        ),
        (
            {"resolution_target_number": "1.5", "resolution_target_unit": "working_days"},
            ((timedelta(hours=24), "calendar"), (timedelta(hours=36), "working")),
        ),
        (
            {"resolution_target_number": "", "resolution_target_unit": "target_date"},
            ((timedelta(hours=24), "calendar"), (None, "target_date")),
        ),
        (
            {"response_target_number": ""},
            ((None, "calendar"), (timedelta(days=15), "working")),
        ),
    ],
)
def test_the_policy_form_stores_the_duration_and_mode_the_timers_read(db, data, stored):
    from requests_app.models import SlaPolicy

    form = policy_form(SlaPolicy.objects.get(kind="create"), **data)
    assert form.is_valid(), form.errors
    policy = form.save()
    policy.refresh_from_db()
    assert (
        (policy.response_target, policy.response_mode),
        (policy.resolution_target, policy.resolution_mode),
    ) == stored


@pytest.mark.parametrize(
    "data,field,message",
    [
        ({"response_target_number": "0"}, "response_target_number", "positive"),
        ({"resolution_target_number": "-3"}, "resolution_target_number", "positive"),
        ({"resolution_target_number": ""}, "resolution_target_number", "Give a number"),
        (
            {"resolution_target_unit": "target_date"},
            "resolution_target_number",
            "Leave it empty",
        ),
        # Only a resolution runs until a target date (the model's response modes).
        ({"response_target_unit": "target_date"}, "response_target_unit", "valid choice"),
        ({"response_target_number": "abc"}, "response_target_number", "number"),
    ],
)
def test_the_policy_form_refuses_what_the_timers_cannot_use(db, data, field, message):
    from requests_app.models import SlaPolicy

    policy = SlaPolicy.objects.get(kind="create")
    before = (policy.response_target, policy.resolution_target)
    form = policy_form(policy, **data)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])
    policy.refresh_from_db()
    assert (policy.response_target, policy.resolution_target) == before


def test_the_policy_list_reads_in_words(admin_client):
    from requests_app.models import SlaPolicy

    listing = admin_client.get(reverse("admin:requests_app_slapolicy_changelist"))
    html = listing.content.decode()
    assert "24 hours" in html and "15 working days" in html
    assert "7 calendar days" in html and "until the target date" in html
    # One row per kind, access included (its own migration added it), each editable here.
    assert set(SlaPolicy.objects.values_list("kind", flat=True)) == {
        "create",
        "suspend",
        "resume",
        "teardown",
        "upgrade",
        "enable_executors",
        "feature",
        "access",
    }
    access = SlaPolicy.objects.get(kind="access")
    assert (access.response_target, access.resolution_target) == (
        timedelta(hours=24),
        timedelta(days=15),
    )
    assert (access.response_mode, access.resolution_mode) == ("calendar", "working")
