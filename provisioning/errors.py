"""Known Terraform and Compute failures, what to do about each, and how to tell them apart."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownError:
    code: str
    pattern: re.Pattern[str]
    retries: int  # automatic retries before the run errors
    backoff: float  # seconds before the first retry, doubled after each
    workaround: str


NEG_WORKAROUND = (
    "Terraform deletes the network endpoint group before the backend service that uses it "
    "(a known ordering bug). The known fix: in the GCP console, delete the backend service "
    "named in the error by hand, then retry this run (terraform apply again)."
)

CATALOGUE = [
    KnownError(
        "neg_in_use",
        re.compile(r"network_?endpoint_?group.*resourceInUseByAnotherResource", re.I | re.S),
        retries=1,
        backoff=5,
        workaround=NEG_WORKAROUND,
    ),
    KnownError(
        "rate_limited",
        re.compile(r"Error 429|rateLimitExceeded|RESOURCE_EXHAUSTED|Quota exceeded", re.I),
        retries=4,
        backoff=10,
        workaround="GCP rate-limited the run; it retried with backoff. Retry later.",
    ),
    KnownError(
        "server_error",
        re.compile(r"Error 50[0234]|backendError|internalError|Service Unavailable", re.I),
        retries=3,
        backoff=10,
        workaround="GCP answered with a server error; it retried with backoff. Retry later.",
    ),
    KnownError(
        "state_locked",
        re.compile(r"Error acquiring the state lock", re.I),
        retries=0,
        backoff=0,
        workaround=(
            "Another Terraform process holds this instance's state lock. The portal runs one "
            "run per instance; a lock left by a dead process is released with its database "
            "session. Do not force-unlock while another run may still hold it."
        ),
    ),
    KnownError(
        "stale_plan",
        re.compile(r"Saved plan is stale", re.I),
        retries=0,
        backoff=0,
        workaround="The state changed after this plan was made: discard it and plan again.",
    ),
    KnownError(
        "provider_unavailable",
        re.compile(r"Failed to (query|install) .*provider|registry\.terraform\.io", re.I | re.S),
        retries=0,
        backoff=0,
        workaround=(
            "terraform init could not download the google provider (no network). Give the "
            "workers network access or a provider mirror (TF_CLI_CONFIG_FILE with "
            "provider_installation { filesystem_mirror { ... } })."
        ),
    ),
]


# Not from Terraform's output: the portal's own refusal of a plan (provisioning/guards.py).
PLAN_GUARD = KnownError(
    "plan_guard",
    re.compile(r"breaks the plan guards"),
    retries=0,
    backoff=0,
    workaround=(
        "The plan would do what this kind of request may not (see the rules it breaks). Find "
        "why Terraform wants it (the instance or its state differs from what the portal "
        "recorded: Verify the instance), fix that, then retry; or file the right kind of request."
    ),
)


def classify(output: str | None) -> KnownError | None:
    """The known error in Terraform's output, or None."""
    for known in CATALOGUE:
        if known.pattern.search(output or ""):
            return known
    return None


def summary_line(output: str | None) -> str:
    """The first `Error:` line of Terraform's output, for the request page."""
    for line in (output or "").splitlines():
        stripped = line.strip(" │╷╵")
        if stripped.startswith("Error:"):
            return stripped
    lines = [line for line in (output or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "terraform failed"
