"""Search and filters of GET /api/v1/requests/ (docs/api.md): `q` (PostgreSQL full-text search,
prefixes, weighted, most relevant first), `customer` and `assignee` (part, any case), `instance`,
`state`, `kind` and `external_id` (whole, any case), all at once; the search vector the
triggers keep (migration 0006_request_search); the SQLite fallback."""

import html
import importlib
import re
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from requests_app import search, workflow
from requests_app.forms import FORMS
from requests_app.models import Comment, Event, Request
from requests_app.serializers import Q_MAX_LENGTH
from tests.factories import make_user
from tests.requests_app.test_api import api, ids, make_instance, payload, schema_document

pytestmark = pytest.mark.clock  # filing and comments stamp the time

LIST = "/api/v1/requests/"


def filed(users, slug, customer="Acme Corp", *, justification="Routine.", kind="suspend", ago=0):
    """A request about a new instance `slug`, filed `ago` minutes before now (a fixed order)."""
    make_instance(slug, customer=customer)
    body = payload(kind, slug, customer=customer, justification=justification)
    form = FORMS[kind](data=body)
    assert form.is_valid(), form.errors
    now = timezone.now() - timedelta(minutes=ago)
    return workflow.file_request(users["ce"], kind, form.cleaned_data, now=now, notify=False)


def ordered(response):
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def vector(request):
    """The stored search vector as PostgreSQL writes it ('lexeme':positions+weight ...)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_vector::text FROM requests_app_request WHERE id = %s", [request.pk]
        )
        return cursor.fetchone()[0]


def found(client, q):
    return ids(client.get(LIST, {"q": q}))


# -- q ------------------------------------------------------------------------------------------


def test_q_finds_a_prefix_of_the_instance_slug(users):
    tyrell = filed(users, "tyrell", "Acme Corp")
    filed(users, "wayland", "Acme Corp")
    client = api(users["manager"])
    assert found(client, "tyr") == {tyrell.pk}
    assert found(client, "TYRELL") == {tyrell.pk}
    assert found(client, "yrell") == set()  # a prefix of a word, not any part


def test_q_finds_a_prefix_of_the_customer(users):
    tyrell = filed(users, "nexus6", "Tyrell Corporation")
    filed(users, "wayland", "Weyland-Yutani")
    client = api(users["manager"])
    assert found(client, "tyr") == {tyrell.pk}
    assert found(client, "Tyrell corp") == {tyrell.pk}  # every word, each a prefix
    assert found(client, "tyrell yutani") == set()  # AND, not OR
    assert found(client, "yut") == found(client, "weyland") != set()  # hyphenated parts


def test_q_finds_a_word_of_the_justification_and_of_a_comment(users):
    justified = filed(users, "alpha", justification="Moving the replicant fleet to Europe.")
    commented = filed(users, "beta")
    other = filed(users, "gamma")
    workflow.add_comment(users["devops"], commented.pk, "Blocked on the Voight-Kampff audit.")
    workflow.add_comment(users["devops"], other.pk, "Nothing to see.")
    client = api(users["manager"])
    assert found(client, "replic") == {justified.pk}
    assert found(client, "kampff") == {commented.pk}
    assert found(client, "voight audit") == {commented.pk}


def test_a_match_in_the_customer_ranks_above_the_justification_above_a_comment(users):
    # Filed oldest first: the default order (newest first) would be the other way round.
    in_customer = filed(users, "one", "Deckard Holdings", ago=30)
    in_justification = filed(users, "two", justification="Ask Deckard first.", ago=20)
    in_comment = filed(users, "three", ago=10)
    workflow.add_comment(users["devops"], in_comment.pk, "Deckard, Deckard and Deckard agree.")
    filed(users, "four")
    client = api(users["manager"])
    assert ordered(client.get(LIST, {"q": "deck"})) == [
        in_customer.pk,
        in_justification.pk,
        in_comment.pk,
    ]
    # Without q: newest first, as always.
    assert ordered(client.get(LIST))[1:] == [in_comment.pk, in_justification.pk, in_customer.pk]


def test_equally_relevant_matches_are_newest_first(users):
    older = filed(users, "pris1", "Pris Ltd", ago=5)
    newer = filed(users, "pris2", "Pris Ltd", ago=1)
    assert ordered(api(users["manager"]).get(LIST, {"q": "pris"})) == [newer.pk, older.pk]


@pytest.mark.parametrize("q", ["", "   ", "&|!():*", "'\"", "-- ;", "<-> <>"])
def test_q_without_words_filters_nothing(users, q):
    one, two = filed(users, "one"), filed(users, "two")
    assert found(api(users["manager"]), q) == {one.pk, two.pk}


# Each of these finds the tyrell request, whatever else it holds: only letters and digits count.
FINDS_TYRELL = [
    "tyr'",
    "'tyr':*",
    "tyr & | ! ( ) : *",
    "!!tyr",
    "(tyr",
    "tyr)",
    "tyr\\",
    '"tyrell"',
    "tyr\tcorp\n",
    "_tyr_",
]
# Words no request has, or text PostgreSQL's parser makes no word of.
FINDS_NOTHING = [
    "tyr:*A",
    "tyr'; DROP TABLE requests_app_request; --",
    "tyr <-> ell",
    "tyr<2>ell",
    "a\\b",
    "日本 İstanbul ǅ ß ²",
    "\u200b\u0301x",
    "🙂 x",
    "x" * Q_MAX_LENGTH,
    " ".join(["ab"] * 66),
]


@pytest.mark.clock_once("input refused or searched before any clock")
@pytest.mark.parametrize("q", FINDS_TYRELL + FINDS_NOTHING)
def test_a_hostile_q_is_never_a_server_error(users, q):
    tyrell = filed(users, "tyrell", "Tyrell Corp")
    response = api(users["manager"]).get(LIST, {"q": q})
    assert response.status_code == 200, response.json()
    assert ids(response) == ({tyrell.pk} if q in FINDS_TYRELL else set())


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize(
    "q, message",
    [
        ("x" * 10_000, "no more than 200 characters"),
        ("x" * (Q_MAX_LENGTH + 1), "no more than 200 characters"),
        ("tyr\x00ell", "Null characters"),
        ("\x00", "Null characters"),
    ],
)
def test_a_q_too_long_or_with_nul_is_a_400_with_a_field_error(users, q, message):
    response = api(users["manager"]).get(LIST, {"q": q})
    assert response.status_code == 400
    assert message in " ".join(response.json()["q"])


def test_words_are_letters_and_digits_and_make_a_safe_prefix_query():
    assert search.words("Tyrell-Corp's  N3xus_6 & 'x':* İ") == [
        "tyrell",
        "corp",
        "s",
        "n3xus",
        "6",
        "x",
        "i",
    ]
    assert search.words("a" * 500) == ["a" * search.MAX_WORD_LENGTH]
    assert len(search.words(" ".join("w" * 300))) == search.MAX_WORDS
    assert search.prefix_tsquery(["tyr", "corp"]) == "tyr:* & corp:*"
    with pytest.raises(AssertionError):
        search.prefix_tsquery(["tyr:*|x"])


# -- customer, assignee, instance, state, kind, external_id ------------------------------------


def test_customer_is_part_of_the_name_in_any_case(users):
    tyrell = filed(users, "nexus", "Tyrell Corp")
    acme = filed(users, "acme", "Acme Corp")
    client = api(users["manager"])
    for part in ("Tyrell", "tyr", "TYRELL CORP", "rell c", "  tyrell "):
        assert ids(client.get(LIST, {"customer": part})) == {tyrell.pk}, part
    assert ids(client.get(LIST, {"customer": "corp"})) == {tyrell.pk, acme.pk}
    assert ids(client.get(LIST, {"customer": "Tyrell Corporation"})) == set()
    assert ids(client.get(LIST, {"customer": "100%"})) == set()  # % is no wildcard
    assert ids(client.get(LIST, {"customer": ""})) == {tyrell.pk, acme.pk}


def test_assignee_is_part_of_the_username_in_any_case(users):
    mine = filed(users, "one", kind="feature")
    theirs = filed(users, "two", kind="feature")
    nobodys = filed(users, "three", kind="feature")
    for request, who in ((mine, "devops"), (theirs, "devops2")):
        workflow.perform(users["lead"], request.pk, "approve")
        workflow.perform(users[who], request.pk, "pick_up")
    client = api(users["manager"])
    assert ids(client.get(LIST, {"assignee": "OPS2"})) == {theirs.pk}
    assert ids(client.get(LIST, {"assignee": "Dev"})) == {mine.pk, theirs.pk}
    assert ids(client.get(LIST, {"assignee": "ce"})) == set()  # the requester is not assignee
    assert nobodys.pk in ids(client.get(LIST, {"assignee": ""}))


def test_instance_state_kind_and_external_id_are_whole_values_in_any_case(users):
    tyrell = filed(users, "tyrell")
    other = filed(users, "tyrell2")
    workflow.perform(users["lead"], tyrell.pk, "approve")
    Request.objects.filter(pk=other.pk).update(external_id="JIRA-77")
    client = api(users["manager"])
    assert ids(client.get(LIST, {"instance": "TyRell"})) == {tyrell.pk}
    assert ids(client.get(LIST, {"instance": "tyr"})) == set()
    assert ids(client.get(LIST, {"state": "QUEUED"})) == {tyrell.pk}
    assert ids(client.get(LIST, {"state": "Pending_Approval"})) == {other.pk}
    assert ids(client.get(LIST, {"kind": "SUSPEND"})) == {tyrell.pk, other.pk}
    assert ids(client.get(LIST, {"kind": "Feature"})) == set()
    assert ids(client.get(LIST, {"external_id": "jira-77"})) == {other.pk}
    assert ids(client.get(LIST, {"external_id": "jira-7"})) == set()


def test_filters_combine(users):
    target = filed(users, "tyrell", "Tyrell Corp", justification="Move the replicants.")
    same_but_queued = filed(users, "tyrell2", "Tyrell Corp", justification="Move replicants.")
    other_customer = filed(users, "acme", "Acme Corp", justification="Move the replicants.")
    feature = filed(users, "tyrell3", "Tyrell Corp", kind="feature", justification="replicants")
    workflow.perform(users["lead"], same_but_queued.pk, "approve")
    client = api(users["manager"])
    query = {"q": "replic", "customer": "tyr", "state": "pending_approval", "kind": "suspend"}
    assert ids(client.get(LIST, query)) == {target.pk}
    assert ids(client.get(LIST, {**query, "instance": "TYRELL"})) == {target.pk}
    assert ids(client.get(LIST, {**query, "instance": "acme"})) == set()
    without_kind = {k: v for k, v in query.items() if k != "kind"}
    assert ids(client.get(LIST, without_kind)) == {target.pk, feature.pk}
    assert other_customer.pk in ids(client.get(LIST, {"q": "replic"}))


@pytest.mark.clock_once("input refused before any clock")
@pytest.mark.parametrize(
    "query, field",
    [
        ({"state": "open"}, "state"),
        ({"state": ""}, "state"),
        ({"state": "queued "}, "state"),
        ({"kind": "rename"}, "kind"),
        ({"breached": "maybe"}, "breached"),
        ({"customer": "a\x00b"}, "customer"),
        ({"assignee": "\x00"}, "assignee"),
        ({"instance": "a\x00b"}, "instance"),
        ({"q": "q" * 201}, "q"),
    ],
)
def test_bad_filters_are_a_400_naming_each_field(users, query, field):
    response = api(users["manager"]).get(LIST, {**query, "kind": query.get("kind", "bogus")})
    assert response.status_code == 400
    body = response.json()
    assert field in body and "kind" in body, body
    assert body["detail"] == "The filters have errors."


def test_a_bad_state_names_the_values(users):
    response = api(users["manager"]).get(LIST, {"state": "open"})
    assert "Choose one of: pending_approval" in response.json()["state"][0]


# -- what it costs ------------------------------------------------------------------------------


def test_searching_costs_the_same_queries_for_more_rows(users, django_assert_max_num_queries):
    for n in range(3):
        filed(users, f"tyrell{n}", "Tyrell Corp", kind="feature")
    client = api(users["manager"])
    query = {"q": "tyr corp", "customer": "tyrell", "assignee": "", "state": "pending_approval"}
    with django_assert_max_num_queries(12) as few:
        assert len(ids(client.get(LIST, query))) == 3
    for n in range(3, 10):
        filed(users, f"tyrell{n}", "Tyrell Corp", kind="feature")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(ids(client.get(LIST, query))) == 10


def test_the_search_and_the_any_case_filters_use_their_indexes(users):
    filed(users, "tyrell", "Tyrell Corp")
    queries = {
        "request_search_vector": search.search(Request.objects.all(), "tyr"),
        "request_instance_slug_upper": search.apply_filters(
            Request.objects.all(), {"instance": "TYRELL"}
        ),
        "request_external_id_upper": search.apply_filters(
            Request.objects.all(), {"external_id": "jira-1"}
        ),
    }
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a few rows: else a scan is cheaper
    for index, queryset in queries.items():
        plan = queryset.explain()
        assert index in plan, plan


def test_rows_come_without_the_vector(users):
    request = filed(users, "tyrell", "Tyrell Corp")
    assert "search_vector" in Request.objects.get(pk=request.pk).get_deferred_fields()


# -- the vector the triggers keep ---------------------------------------------------------------


def test_the_vector_is_weighted_and_follows_every_write(users):
    request = filed(users, "tyrell", "Tyrell Corp", justification="Replicants.")
    assert vector(request) == "'corp':3A 'replicants':4B 'tyrell':1A,2A"

    Request.objects.filter(pk=request.pk).update(customer="Wallace Corp")
    assert "'wallace':2A" in vector(request) and "'tyrell':1A " in vector(request)

    request = Request.objects.get(pk=request.pk)
    request.justification = "Nexus."
    request.save()
    assert "'nexus':4B" in vector(request) and "replicants" not in vector(request)

    workflow.add_comment(users["devops"], request.pk, "Sea of tears")
    assert "'tears':7C" in vector(request)
    Comment.objects.filter(request=request).update(body="Rain")
    assert "'rain':5C" in vector(request) and "tears" not in vector(request)
    Comment.objects.filter(request=request).delete()
    assert "rain" not in vector(request)


def test_a_stale_vector_saved_back_is_computed_again(users):
    request = filed(users, "tyrell", "Tyrell Corp")
    workflow.add_comment(users["devops"], request.pk, "Unicorn origami")
    stale = Request.objects.filter(pk=request.pk).values_list("search_vector", flat=True).get()
    Request.objects.filter(pk=request.pk).update(search_vector=stale + " 'injected':1")
    Request.objects.filter(pk=request.pk).update(search_vector=None)
    assert "'origami'" in vector(request) and "injected" not in vector(request)
    assert found(api(users["manager"]), "unicorn") == {request.pk}


@pytest.mark.django_db(transaction=True)
def test_two_comments_written_at_once_both_reach_the_vector(users):
    """Not through add_comment (which locks the request first): two bare comment inserts, the
    second waiting on the request's row lock that the first one's trigger holds. Once it has the
    lock, its trigger's query sees the first comment, committed meanwhile."""
    request = filed(users, "tyrell", "Tyrell Corp")
    first_inserted = threading.Event()
    failures = []

    def add(body):
        event = Event.objects.create(request_id=request.pk, at=timezone.now(), action="comment")
        Comment.objects.create(
            request_id=request.pk,
            author=users["devops"],
            body=body,
            created_at=timezone.now(),
            event=event,
        )

    def first():
        try:
            with transaction.atomic():
                add("alpha")
                first_inserted.set()
                time.sleep(0.5)  # meanwhile the second insert waits for the row lock
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    def second():
        try:
            assert first_inserted.wait(timeout=10)
            with transaction.atomic():
                add("bravo")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    assert "'alpha'" in vector(request) and "'bravo'" in vector(request), vector(request)


def test_bulk_created_and_imported_rows_are_searchable_too(users):
    Request.objects.bulk_create(
        [
            Request(
                kind="feature",
                customer="Bulk Tyrell",
                instance_slug=f"bulk{n}",
                requested_by=users["ce"],
                created_at=timezone.now(),
            )
            for n in range(3)
        ]
    )
    assert len(found(api(users["manager"]), "tyr")) == 3


def test_the_vector_keeps_within_postgresqls_limits_whatever_is_pasted(users):
    # Every word distinct: a vector of all of it would pass PostgreSQL's 1 MB per tsvector.
    flood = " ".join(f"w{n}" for n in range(150_000))
    request = filed(users, "flood", justification=flood)
    for _ in range(3):
        workflow.add_comment(users["devops"], request.pk, flood[:10_000] + " needle")
    workflow.add_comment(users["devops"], request.pk, "the newest haystack")
    client = api(users["manager"])
    assert found(client, "haystack") == {request.pk}  # the newest comments are kept
    assert found(client, "w1") == {request.pk}


def test_the_data_migration_fills_the_vectors_of_existing_rows(users):
    request = filed(users, "tyrell", "Tyrell Corp")
    with connection.cursor() as cursor:
        # As before the migration: rows without a vector (replica mode skips the triggers).
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE requests_app_request SET search_vector = NULL")
        cursor.execute("SET LOCAL session_replication_role = origin")
    assert vector(request) is None
    migration = importlib.import_module("requests_app.migrations.0006_request_search")
    with connection.schema_editor() as schema_editor:
        migration.fill(None, schema_editor)
    assert "'tyrell':1A" in vector(request)


# -- SQLite: icontains instead ------------------------------------------------------------------


def test_without_postgresql_each_word_is_looked_for_with_icontains(users, monkeypatch):
    by_slug = filed(users, "tyrell", "Acme Corp", ago=3)
    by_customer = filed(users, "nexus", "The Tyrell Corp", ago=2)
    by_comment = filed(users, "other", "Acme Corp", ago=1)
    workflow.add_comment(users["devops"], by_comment.pk, "Ask TYRELL about it.")
    filed(users, "unrelated", "Acme Corp")

    class Vendor:
        vendor = "sqlite"

    monkeypatch.setattr(search, "connections", {"default": Vendor()})
    queryset = search.search(Request.objects.order_by("-created_at", "-id"), "yrel")
    # Any part of a word (icontains), in the default order: no ranking without PostgreSQL.
    expected = [by_comment.pk, by_customer.pk, by_slug.pk]
    assert list(queryset.values_list("pk", flat=True)) == expected
    assert not search.by_relevance(queryset)
    assert search.search(Request.objects.all(), "tyrell about").get() == by_comment
    assert search.search(Request.objects.all(), "&|!").count() == 4


# -- the schema ---------------------------------------------------------------------------------


def test_the_schema_documents_every_filter(users):
    document = schema_document(users["manager"])
    parameters = {
        p["name"]: p for p in document["paths"][LIST]["get"]["parameters"] if p["in"] == "query"
    }
    for name in ("q", "customer", "assignee", "instance", "state", "kind", "external_id"):
        assert parameters[name].get("description"), name
    assert parameters["q"]["schema"]["maxLength"] == Q_MAX_LENGTH
    state = parameters["state"]["schema"]["pattern"]
    assert state.startswith("^(?:[pP][eE][nN]") and "[qQ][uU][eE][uU][eE][dD]" in state
    assert "relevant" in document["paths"][LIST]["get"]["description"]


# -- the pages ----------------------------------------------------------------------------------


def rows(response):
    return [int(pk) for pk in re.findall(r'data-request-id="(\d+)"', response.content.decode())]


def test_the_navigation_has_a_search_box_for_whoever_may_read_requests(client, users):
    client.force_login(users["sales"])
    page = client.get(reverse("home")).content.decode()
    form = re.search(r'<form method="get" action="([^"]+)" class="nav-search"', page)
    assert form and form[1] == reverse("request_list")
    assert 'name="q"' in page[form.end() : page.index("</form>", form.end())]

    client.force_login(make_user("newcomer"))  # no role yet: nothing to search
    assert "nav-search" not in client.get(reverse("home")).content.decode()


def test_the_list_page_takes_the_apis_filters_from_its_query_string(client, users):
    tyrell = filed(users, "tyrell", "Tyrell Corp", ago=2)
    nexus = filed(users, "nexus", "Tyrell Corp", justification="For the tyrell team.", ago=1)
    filed(users, "acme", "Acme Corp")
    workflow.perform(users["lead"], tyrell.pk, "approve")
    client.force_login(users["manager"])
    url = reverse("request_list")

    searched = client.get(url, {"q": "tyr"})
    assert rows(searched) == [tyrell.pk, nexus.pk]  # the slug outranks the justification
    page = searched.content.decode()
    assert 'name="q" placeholder="Search text" value="tyr"' in page
    assert 'data-testid="nav-search" value="tyr"' in page  # the box says what was searched
    assert "2 matching requests, most relevant first" in page

    query = {"q": "", "customer": "TYR", "assignee": "", "instance": "", "state": "QUEUED"}
    filtered = client.get(url, {**query, "kind": ""})  # as the form sends it: empty is no filter
    assert rows(filtered) == [tyrell.pk]
    assert '<option value="queued" selected>' in filtered.content.decode()
    assert rows(client.get(url, {"instance": "NEXUS"})) == [nexus.pk]
    assert rows(client.get(url, {"kind": "suspend", "q": "acme"})) != []
    assert rows(client.get(url, {"assignee": "devops"})) == []


def test_a_bad_filter_on_the_page_says_so_and_lists_nothing(client, users):
    filed(users, "tyrell", "Tyrell Corp")
    client.force_login(users["manager"])
    response = client.get(reverse("request_list"), {"state": "open", "q": "x" * 300})
    assert response.status_code == 400 and rows(response) == []
    errors = response.content.decode()
    assert "state: Choose one of: pending_approval" in errors
    assert "q: Ensure this field has no more than 200 characters." in errors


def test_the_pages_of_a_filtered_list_keep_the_filters(client, users):
    Request.objects.bulk_create(
        [
            Request(
                kind="feature",
                customer="Tyrell Corp" if n % 2 else "Acme Corp",
                instance_slug=f"bulk{n}",
                requested_by=users["ce"],
                created_at=timezone.now() - timedelta(minutes=n),
            )
            for n in range(120)
        ]
    )
    client.force_login(users["manager"])
    first = client.get(reverse("request_list"), {"customer": "tyrell", "kind": "feature", "x": "1"})
    pager = re.findall(r'class="pager">.*?href="([^"]+)"', first.content.decode(), re.S)
    links = [html.unescape(link) for link in pager]
    assert links == ["?customer=tyrell&kind=feature&page=2"]  # the filters, not `x`
    second = client.get(reverse("request_list") + links[0])
    assert len(rows(first)) == 50 and len(rows(second)) == 10
    assert set(rows(first)).isdisjoint(rows(second))
    assert Request.objects.filter(pk__in=rows(second), customer="Tyrell Corp").count() == 10


def test_my_requests_takes_the_filters_too(client, users):
    mine = filed(users, "tyrell", "Tyrell Corp")
    client.force_login(users["ce"])
    assert rows(client.get(reverse("my_requests"), {"q": "tyrell"})) == [mine.pk]
    assert rows(client.get(reverse("my_requests"), {"q": "acme"})) == []


def test_a_filtered_page_costs_the_same_queries_for_more_rows(
    client, users, django_assert_max_num_queries
):
    for n in range(3):
        filed(users, f"tyrell{n}", "Tyrell Corp")
    client.force_login(users["devops"])
    query = {"q": "tyr", "customer": "corp", "state": "pending_approval", "kind": "suspend"}
    with CaptureQueriesContext(connection) as few:
        assert len(rows(client.get(reverse("request_list"), query))) == 3
    for n in range(3, 10):
        filed(users, f"tyrell{n}", "Tyrell Corp")
    with django_assert_max_num_queries(len(few)):
        assert len(rows(client.get(reverse("request_list"), query))) == 10
