"""The approval stages that get a Slack message, and the actions of its buttons."""

from dataclasses import dataclass

from requests_app.models import Approval, State


@dataclass(frozen=True)
class Stage:
    name: str  # Approval.Stage: the message's `stage`
    state: str  # the request's state while the stage waits
    approve: str  # the workflow action of the Approve button
    reject: str  # ... and of Reject
    waiting: str  # what the message says while it waits

    @property
    def actions(self) -> tuple[str, str]:
        return (self.approve, self.reject)


STAGES = (
    Stage(
        Approval.Stage.LEADERSHIP,
        State.PENDING_APPROVAL,
        "approve",
        "reject",
        "Waiting for approval",
    ),
    Stage(
        Approval.Stage.TECH_REVIEW,
        State.TECH_REVIEW,
        "tech_approve",
        "tech_reject",
        "Waiting for tech review",
    ),
)
BY_NAME = {stage.name: stage for stage in STAGES}
BY_ACTION = {action: stage for stage in STAGES for action in stage.actions}
REJECTS = {stage.reject for stage in STAGES}
