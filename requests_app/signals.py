"""What the request domain tells the apps above it, without importing them."""

from django.dispatch import Signal

# Sent inside the transaction that moves a request to done, rejected or cancelled: request, at.
# Maintenance listens: the instance may now take the upgrade it was waiting for.
request_ended = Signal()

# Sent after the open request timers were recomputed for a changed policy or closure (the
# admin's recompute job): other timers that count working days on the same calendar move too.
sla_calendar_changed = Signal()
