"""The requester edits a request until it is approved; each edit is in the history. The
customer of an existing instance is the instance's."""

import pytest
from django.test import Client

from requests_app import workflow
from requests_app.forms import FORMS
from requests_app.models import Event
from tests.factories import make_instance, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.clock]


@pytest.fixture
def people():
    return {
        "ce": make_user("ce", "CE"),
        "ce2": make_user("ce2", "CE"),
        "lead": make_user("lead", "CE Leadership"),
    }


def file_create(user, slug="newco", **data):
    form = FORMS["create"](data={"instance": slug, "customer": "Newco", "users": 100, **data})
    assert form.is_valid(), form.errors
    return workflow.file_request(user, "create", form.cleaned_data, notify=False)


def test_the_requester_edits_until_approval_and_the_history_says_what_changed(people):
    request = file_create(people["ce"])
    form = FORMS["create"](
        data={"users": 5000, "justification": "Bigger than we thought."}, editing=request
    )
    assert form.is_valid(), form.errors
    edited = workflow.edit_request(people["ce"], request.pk, form.cleaned_data)
    assert edited.users == 5000 and edited.instance_slug == "newco" and edited.customer == "Newco"
    assert edited.non_standard_reasons == ["scale"] and not edited.standard
    event = Event.objects.get(request=request, action="edit")
    assert event.data["changed"]["users"] == [100, 5000]
    assert event.data["changed"]["non_standard_reasons"] == [[], ["scale"]]

    with pytest.raises(workflow.Forbidden):
        workflow.edit_request(people["ce2"], request.pk, form.cleaned_data)
    with pytest.raises(workflow.Conflict):  # edited since this version was read
        workflow.edit_request(people["ce"], request.pk, {"users": 7}, version=0)
    workflow.perform(people["lead"], request.pk, "approve", notify=False)
    with pytest.raises(workflow.Conflict):
        workflow.edit_request(people["ce"], request.pk, {"users": 7})


def test_the_edit_page_saves_and_redirects(people):
    request = file_create(people["ce"])
    client = Client()
    client.force_login(people["ce"])
    page = client.get(f"/requests/{request.pk}/edit/")
    assert page.status_code == 200 and b"Save changes" in page.content
    done = client.post(
        f"/requests/{request.pk}/edit/",
        {"users": "200", "repositories": "10", "justification": "Edited", "version": "0"},
    )
    assert done.status_code == 302
    request.refresh_from_db()
    assert request.users == 200 and request.justification == "Edited"
    other = Client()
    other.force_login(people["ce2"])
    assert other.get(f"/requests/{request.pk}/edit/").status_code == 403


def test_the_customer_of_an_existing_instance_is_taken_from_it(people):
    make_instance("tyrell", customer="Tyrell Corp")
    taken = FORMS["suspend"](data={"instance": "tyrell"})
    assert taken.is_valid() and taken.cleaned_data["customer"] == "Tyrell Corp"
    same = FORMS["suspend"](data={"instance": "tyrell", "customer": "tyrell corp"})
    assert same.is_valid() and same.cleaned_data["customer"] == "Tyrell Corp"
    wrong = FORMS["suspend"](data={"instance": "tyrell", "customer": "Wrong Customer Inc"})
    assert not wrong.is_valid() and "belongs to 'Tyrell Corp'" in wrong.errors["customer"][0]


def test_a_zone_must_be_one_of_computes(people):
    bad = FORMS["create"](data={"instance": "marsco", "customer": "M", "zone": "mars-north1-z"})
    assert not bad.is_valid() and "not one of Compute's zones" in bad.errors["zone"][0]
    good = FORMS["create"](data={"instance": "euco", "customer": "E", "zone": "europe-west4-a"})
    assert good.is_valid(), good.errors
