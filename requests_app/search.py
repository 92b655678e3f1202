"""The filters and the search of the request lists: GET /api/v1/requests/ and the list pages
take the same ones (docs/api.md), validated by `serializers.RequestFiltersSerializer`.

`q` is PostgreSQL full-text search over `Request.search_vector`, which triggers keep
(migration 0006_request_search): each word of `q` is a prefix ("tyr" finds "tyrell"), every word
must match (AND), and the most relevant come first (slug and customer outweigh the
justification, which outweighs comments). The words are runs of letters and digits taken from
`q`; nothing else of what people type reaches `to_tsquery`, so no text is ever read as tsquery
syntax. On SQLite (make run's default) each word is looked for with `icontains` in the slug,
the customer, the justification and the comments instead, newest first.
"""

import re
from collections.abc import Mapping
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connections
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from requests_app.models import Comment, Request
from requests_app.sla.status import filter_by_timer_status

# A word: letters and digits of any script. Underscores, punctuation, quotes, `&|!():*<>`,
# spaces and controls all separate words and are dropped.
WORD = re.compile(r"[^\W_]+")
# Far inside what to_tsquery takes (an operand of at most 2 KB); q itself has at most
# serializers.Q_MAX_LENGTH characters, but this function holds to the limits for any text.
MAX_WORDS = 20
MAX_WORD_LENGTH = 100
# The text search configuration of the vectors and the queries: no stemming, no stop words.
CONFIG = "simple"


def words(q: str) -> list[str]:
    """The words of `q`, lowercased, in order (at most MAX_WORDS, each cut to MAX_WORD_LENGTH)."""
    return [word[:MAX_WORD_LENGTH] for word in WORD.findall(q.lower())[:MAX_WORDS]]


def prefix_tsquery(found: list[str]) -> str:
    """`to_tsquery` text in which each word is a prefix and all must match: "tyr:* & corp:*".
    Only letters and digits are put in it (see `words`), so it cannot be a syntax error."""
    assert all(WORD.fullmatch(word) for word in found), found
    return " & ".join(f"{word}:*" for word in found)


def search(queryset: QuerySet[Request], q: str) -> QuerySet[Request]:
    """The requests that match every word of `q` (see the module's docstring). A `q` without
    words (blank, or only punctuation) filters nothing."""
    found = words(q)
    if not found:
        return queryset
    if connections[queryset.db].vendor == "postgresql":
        query = SearchQuery(prefix_tsquery(found), search_type="raw", config=CONFIG)
        return (
            queryset.filter(search_vector=query)
            .annotate(search_rank=SearchRank(F("search_vector"), query))
            .order_by("-search_rank", "-created_at", "-id")
        )
    for word in found:
        in_comments = Comment.objects.filter(request=OuterRef("pk"), body__icontains=word)
        queryset = queryset.filter(
            Q(instance_slug__icontains=word)
            | Q(customer__icontains=word)
            | Q(justification__icontains=word)
            | Exists(in_comments)
        )
    return queryset


def by_relevance(queryset: QuerySet[Request]) -> bool:
    """Whether `search` ordered `queryset` by relevance (PostgreSQL, with words to look for)."""
    return "search_rank" in queryset.query.annotations


def apply_filters(queryset: QuerySet[Request], params: Mapping[str, Any]) -> QuerySet[Request]:
    """`queryset` narrowed by validated filters (RequestFiltersSerializer's validated data):
    all of them at once (AND). Blank `q`, `customer` and `assignee` filter nothing."""
    if "state" in params:
        queryset = queryset.filter(state=params["state"])  # validated: the lowercase value
    if "kind" in params:
        queryset = queryset.filter(kind=params["kind"])
    if "category" in params:
        queryset = queryset.filter(category=params["category"])
    if "instance" in params:
        queryset = queryset.filter(instance_slug__iexact=params["instance"])
    if "external_id" in params:
        queryset = queryset.filter(external_id__iexact=params["external_id"])
    if (params.get("customer") or "").strip():
        queryset = queryset.filter(customer__icontains=params["customer"].strip())
    if (params.get("assignee") or "").strip():
        queryset = queryset.filter(assignee__username__icontains=params["assignee"].strip())
    for flag in ("breached", "at_risk"):
        if flag in params:
            queryset = filter_by_timer_status(queryset, flag, params[flag])
    if (params.get("q") or "").strip():
        queryset = search(queryset, params["q"])
    return queryset
