"""How provisioning tells the world what its runs did, without importing the request domain:
the workflow listens (requests_app/apps.py) and writes history events and finishes requests."""

from django.dispatch import Signal

# Sent inside the run's transaction: run, action ("run_planned", "run_step", ...), comment, at.
run_event = Signal()
# Sent inside the transaction that marks the run applied: run, at.
run_applied = Signal()
# Sent inside the transaction that records a new drift found by verification: instance, drift, at.
instance_drift = Signal()
