"""From verified claims to a portal user: which account, which name, which roles."""

import pytest
from django.contrib.auth.models import Group, User

from accounts.models import SsoIdentity
from accounts.oidc import SignInFailed
from accounts.sso_accounts import sign_in
from tests.factories import make_user
from tests.oidc_provider.running import ROLE_MAP

pytestmark = pytest.mark.django_db
ISSUER = "https://idp.example.com"


@pytest.fixture(autouse=True)
def role_map(settings):
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.OIDC_ROLES_CLAIM = "groups"


def claims(sub="s-1", **more):
    return {"sub": sub, "iss": ISSUER, **more}


def groups_of(user):
    return set(user.groups.values_list("name", flat=True))


def test_a_new_person_gets_an_account_named_after_preferred_username():
    done = sign_in(
        claims(preferred_username="dana", email="dana@corp.example", groups=["idp-devops"]),
        ISSUER,
    )
    assert done.user.username == "dana" and done.user.email == "dana@corp.example"
    assert done.roles == {"DevOps"} and done.may_enter
    assert groups_of(done.user) == {"DevOps"}
    assert not done.user.is_staff and not done.user.is_superuser
    assert SsoIdentity.objects.get(user=done.user).subject == "s-1"


def test_names_come_from_the_email_when_needed_and_are_made_unique():
    make_user("dana")
    first = sign_in(claims("s-1", email="dana@corp.example"), ISSUER)
    assert first.user.username == "dana-2"
    second = sign_in(claims("s-2", preferred_username="Dana Smith/ops"), ISSUER)
    assert second.user.username == "Dana_Smith_ops"
    nameless = sign_in(claims("s-3|x"), ISSUER)
    assert nameless.user.username == "s-3_x"


def test_an_existing_account_is_matched_by_email_once_then_by_subject():
    ce = make_user("ce", "CE")  # ce@example.com, as seed_demo makes
    people = User.objects.count()
    done = sign_in(claims(email="CE@Example.com", groups=["idp-ce"]), ISSUER)
    assert done.user == ce
    # The email changed at the provider: still the same person, found by the subject.
    again = sign_in(claims(email="carol@corp.example", groups=["idp-ce"]), ISSUER)
    assert again.user == ce
    ce.refresh_from_db()
    assert ce.email == "carol@corp.example"
    assert User.objects.count() == people


def test_roles_follow_the_claim_and_nothing_else_is_touched():
    admin = make_user("admin", superuser=True)
    admin.groups.add(Group.objects.create(name="Auditors"))
    sign_in(claims(email="admin@example.com", groups=["idp-leads", "idp-ce", "other"]), ISSUER)
    assert groups_of(admin) == {"Auditors", "CE Leadership", "CE"}
    sign_in(claims(email="admin@example.com", groups="idp-devops"), ISSUER)  # one, as a string
    assert groups_of(admin) == {"Auditors", "DevOps"}
    done = sign_in(claims(groups=[]), ISSUER)
    assert groups_of(admin) == {"Auditors"}
    admin.refresh_from_db()
    assert admin.is_superuser and admin.is_staff
    assert done.may_enter  # a superuser passes every role check


def test_no_mapped_group_means_no_entry_and_every_role_gone():
    dana = make_user("dana", "DevOps", "CE")
    done = sign_in(claims(email="dana@example.com", groups=["contractors"]), ISSUER)
    assert done.user == dana
    assert not done.may_enter and done.idp_groups == ("contractors",)
    assert groups_of(dana) == set()


@pytest.mark.parametrize(
    "setup, words",
    [
        ("two accounts", "Several portal accounts have your email address"),
        ("unverified", "has not verified that address"),
        ("bound elsewhere", "belongs to another person"),
    ],
)
def test_an_email_match_that_is_not_safe_is_refused(setup, words):
    ce = make_user("ce", "CE")
    extra = {}
    if setup == "two accounts":
        User.objects.create_user("ce-old", email="ce@example.com")
    if setup == "unverified":
        extra["email_verified"] = False
    if setup == "bound elsewhere":
        SsoIdentity.objects.create(user=ce, issuer=ISSUER, subject="someone-else")
    with pytest.raises(SignInFailed) as refused:
        sign_in(claims(email="ce@example.com", **extra), ISSUER)
    assert words in refused.value.message
    assert not SsoIdentity.objects.filter(subject="s-1").exists()
