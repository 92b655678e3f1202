"""When a timer's next alert falls due, and the one partial index per timer that the sweep
(sla/sweep.py) reads it from.

A timer alerts twice at most: at its 75% instant (`<timer>_warn_at`, claimed in `_warned_at`)
and after its breach instant (`_breach_at`, claimed in `_breach_alerted_at`; a breach claims
the warning too). The 75% instant never comes after the breach instant, so the next alert is
due at the 75% instant until the warning is claimed, then at the breach instant. One index on
that expression, holding only the timers that can still alert, finds both kinds of alert due:
a model keeps one index per timer instead of two, and every write that adds index entries (a
transition, a recompute of every open timer) adds one fewer.

Models and the sweep both build theirs here, so the index and the sweep's lookup stay the same
expression under the same conditions, which is what lets PostgreSQL read the one for the other.
"""

from django.db import models
from django.db.models import Case, F, Q, When
from django.db.models.functions import Coalesce


def instant(which: str) -> Coalesce:
    """The instant `which`'s next alert falls due (null: it has no instants)."""
    return Coalesce(
        Case(When(Q(**{f"{which}_warned_at__isnull": True}), then=F(f"{which}_warn_at"))),
        F(f"{which}_breach_at"),
    )


def pending(which: str, live: dict[str, object], paused_at: str | None = None) -> dict[str, object]:
    """The conditions under which `which` can still alert: not alerted as breached yet, not
    stopped, not paused (`paused_at`: the column of its open pause, if it can pause), and the
    model's own `live` conditions (e.g. the request has not ended)."""
    conditions: dict[str, object] = {
        f"{which}_breach_alerted_at__isnull": True,
        f"{which}_stopped_at__isnull": True,
        **live,
    }
    if paused_at:
        conditions[f"{paused_at}__isnull"] = True
    return conditions


def index(
    which: str, name: str, live: dict[str, object], paused_at: str | None = None
) -> models.Index:
    """The partial index of `which`'s next alert over the timers that can still alert."""
    return models.Index(instant(which), name=name, condition=Q(**pending(which, live, paused_at)))
