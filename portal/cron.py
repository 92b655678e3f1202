"""Periodic jobs, run by `python manage.py rqcron portal.cron` (make run and the `scheduler`
service start it). Each job is safe to run twice: two schedulers never do harm."""

from django.conf import settings
from rq.cron import register

from incidents.jobs import incident_sweep
from provisioning.jobs import verify_fleet
from provisioning.runs import reconcile_runs, relay_runs
from releases.jobs import maintenance_tick, sync_releases
from requests_app.jobs import (
    access_reminders,
    compact_request_count,
    relay_notifications,
    sla_sweep,
)

register(relay_notifications, queue_name="default", interval=60)
register(sla_sweep, queue_name="default", interval=60)
# The request count's deltas folded into one row (requests_app/counting.py).
register(compact_request_count, queue_name="default", interval=60)
# The incidents' timers, by the same sweep over their own rows.
register(incident_sweep, queue_name="default", interval=60)
# Access grants ending within a week, and today: DevOps hear once each.
register(access_reminders, queue_name="default", interval=15 * 60)
register(relay_runs, queue_name="default", interval=30)
register(reconcile_runs, queue_name="default", interval=30)
# Every live instance against Compute and Terraform: what disagrees becomes its drift.
register(verify_fleet, queue_name="default", interval=settings.VERIFY_INTERVAL_MINUTES * 60)
# Releases and maintenance: the feed, rollout waves, upgrades waiting to open, reminders.
register(sync_releases, queue_name="default", interval=settings.RELEASES_POLL_MINUTES * 60)
register(maintenance_tick, queue_name="default", interval=60)
