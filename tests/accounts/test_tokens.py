"""Named API tokens: made and revoked by their owner on a page, sent as `Authorization: Token`,
refused once revoked or once their owner has no role; drf_create_token's keys still work."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import tokens
from accounts.models import ApiToken
from tests.factories import PASSWORD, make_user

# The API records when a token was last used.
pytestmark = [pytest.mark.clock, pytest.mark.django_db]

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def make_token(user, name="script"):
    return tokens.create(user, name)


def test_a_token_made_on_the_page_is_shown_once_and_stored_as_a_hash(client):
    make_user("devops", "DevOps")
    client.login(username="devops", password=PASSWORD)
    made = client.post("/account/tokens/", {"name": "  deploy   script "})
    assert made.status_code == 200
    key = made.context["new_key"]
    assert key.startswith("mip_") and len(key) > 40
    assert key in made.content.decode()

    token = ApiToken.objects.get()
    assert token.name == "deploy script"
    assert token.key_hash != key and key not in token.key_hash
    assert token.prefix == key[:12]
    listed = client.get("/account/tokens/").content.decode()
    assert "deploy script" in listed and token.prefix in listed
    assert key not in listed

    again = client.post("/account/tokens/", {"name": "deploy script"})
    assert again.status_code == 400
    assert "already have a token of that name" in again.content.decode()
    assert client.post("/account/tokens/", {"name": ""}).status_code == 400
    assert ApiToken.objects.count() == 1


def test_a_named_token_authenticates_and_records_its_use_at_most_once_a_minute():
    devops = make_user("devops", "DevOps")
    token, key = make_token(devops)
    with time_machine.travel(NOON, tick=False):
        answer = api(key).get("/api/v1/instances/")
        assert answer.status_code == 200, answer.content
    token.refresh_from_db()
    assert token.last_used_at == NOON

    with time_machine.travel(NOON + timedelta(seconds=50), tick=False):
        assert api(key).get("/api/v1/instances/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == NOON  # no write within the minute

    with time_machine.travel(NOON + timedelta(seconds=61), tick=False):
        assert api(key).get("/api/v1/instances/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == NOON + timedelta(seconds=61)


def test_the_api_acts_as_the_token_owner():
    make_user("ce", "CE")
    sales = make_user("sales", "Sales")
    _, key = make_token(sales)
    answer = api(key).post(
        "/api/v1/requests/",
        {
            "kind": "create",
            "customer": "Initech",
            "instance": "initech",
            "access": "public_sso",
            "justification": "new customer",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["requested_by"] == "sales"


def test_a_revoked_token_is_refused(client):
    devops = make_user("devops", "DevOps")
    token, key = make_token(devops)
    client.login(username="devops", password=PASSWORD)
    answer = client.post(f"/account/tokens/{token.pk}/revoke/", follow=True)
    assert "is revoked" in answer.content.decode()
    assert not ApiToken.objects.exists()
    refused = api(key).get("/api/v1/instances/")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Invalid token."


def test_another_persons_token_cannot_be_revoked(client):
    make_user("devops", "DevOps")
    token, key = make_token(make_user("devops2", "DevOps"), "devops2 nightly export")
    client.login(username="devops", password=PASSWORD)
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post("/account/tokens/999999/revoke/").status_code == 404
    assert client.get(f"/account/tokens/{token.pk}/revoke/").status_code == 405
    # Nor seen: the page lists only one's own.
    assert token.name not in client.get("/account/tokens/").content.decode()
    assert api(key).get("/api/v1/instances/").status_code == 200


def test_a_token_stops_working_when_its_owner_loses_every_role_and_works_again_after():
    dana = make_user("dana", "DevOps", "CE")
    _, key = make_token(dana)
    drf_key = Token.objects.create(user=dana).key

    dana.groups.remove(Group.objects.get(name="DevOps"))
    assert api(key).get("/api/v1/instances/").status_code == 200  # CE is left

    dana.groups.clear()
    for refused_key in (key, drf_key):
        refused = api(refused_key).get("/api/v1/instances/")
        assert refused.status_code == 401
        assert "holds no portal role" in refused.json()["detail"]

    dana.groups.add(Group.objects.get(name="CE"))
    assert api(key).get("/api/v1/instances/").status_code == 200


def test_a_superuser_without_groups_keeps_the_api_and_an_inactive_owner_does_not():
    admin = make_user("admin", superuser=True)
    _, key = make_token(admin)
    assert api(key).get("/api/v1/instances/").status_code == 200

    ce = make_user("ce", "CE")
    _, ce_key = make_token(ce)
    ce.is_active = False
    ce.save()
    refused = api(ce_key).get("/api/v1/instances/")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This token's owner is deactivated."


def test_drf_create_token_keys_keep_working():
    devops = make_user("devops", "DevOps")
    call_command("drf_create_token", "devops")
    assert api(Token.objects.get(user=devops).key).get("/api/v1/instances/").status_code == 200
    assert api("mip_not-a-real-key").get("/api/v1/instances/").status_code == 401


def test_the_page_is_for_people_signed_in_and_linked_from_every_page(client):
    assert client.get("/account/tokens/").status_code == 302
    make_user("manager", "Managers")
    client.login(username="manager", password=PASSWORD)
    home = client.get("/").content.decode()
    assert 'href="/account/tokens/"' in home
