"""A run's saved plan as a table (provisioning/plans.py) and its Terraform outputs."""

from typing import Any

from django import template

from provisioning import plans
from provisioning.models import Run, RunState

register = template.Library()


@register.inclusion_tag("requests_app/_plan.html")
def run_plan(run: Run) -> dict[str, Any]:
    """The plan of `run` (kept on the run after it applies) and, once applied, its outputs."""
    return {
        "run": run,
        "table": plans.build(run.plan_json),
        "outputs": plans.outputs_shown(run.outputs) if run.state == RunState.APPLIED else [],
    }
