"""RQ entry points of incidents (enqueued by dotted path; portal/cron.py registers the sweep)."""

from incidents import sweep, timers


def incident_sweep() -> dict[str, int]:
    return sweep.run()


def recompute_incident_timers() -> int:
    return timers.recompute_unresolved()
