"""How requests are shown: the SLA timers' JSON (CONTRACTS.md section 4)."""


def sla_json(request):
    """The request's timers. The SLA engine fills these in; until it runs, none has started."""
    return {"response": None, "resolution": None}


def filter_by_timer_status(queryset, flag, wanted):
    """No timer runs before the SLA engine: nothing is breached or at risk yet."""
    return queryset if not wanted else queryset.none()
