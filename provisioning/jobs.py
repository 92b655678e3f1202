"""RQ entry points of provisioning: thin wrappers that take ids only (the database row is the
truth) and call the module that owns the work. Enqueued by dotted path, so nothing imports this
module but RQ and the scheduler (portal/cron.py)."""

from provisioning import execute, verify


def execute_run(run_id: int) -> str:
    """Do whatever the run waits for (plan or apply): provisioning/execute.py."""
    return execute.execute_run(run_id)


def verify_instance(instance_id: int) -> str:
    """One instance against Compute and Terraform: provisioning/verify.py."""
    return "drift" if verify.verify(instance_id).drift else "ok"


def verify_fleet() -> int:
    """Every live instance, one verification job each (the periodic job)."""
    return verify.verify_fleet()
