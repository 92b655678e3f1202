"""checkov, static analysis of Terraform, finds nothing to fix in the real GCP module.

checkov pins packages that conflict with the project's dev tools (packaging<24, which pytest 9
cannot use), so `make venv` installs it into its own virtualenv, .venv-checkov; CHECKOV_BIN
points elsewhere. A check that does not apply is skipped in the module itself, next to the
resource, with `# checkov:skip=<ID>:<reason>`; this test holds every skip to a reason.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "provisioning" / "terraform" / "modules" / "gcp"
CHECKOV = Path(os.environ.get("CHECKOV_BIN", ROOT / ".venv-checkov" / "bin" / "checkov"))

# The checks skipped in the module, each with its reason there: encryption with keys the
# customer supplies (CSEK) does not fit unattended VMs and snapshot schedules.
EXPECTED_SKIPS = {"CKV_GCP_37", "CKV_GCP_38"}


@pytest.fixture(scope="module")
def report():
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov is not installed at {CHECKOV}: run `make venv` (it creates .venv-checkov) "
            "or set CHECKOV_BIN",
            pytrace=False,
        )
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(MODULE),
            "--framework",
            "terraform",
            "--compact",
            "--skip-download",  # no network: no guidelines or policies from Prisma Cloud
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"},
    )
    # Exit code 1 means failed checks; anything else non-zero is checkov itself failing.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return json.loads(result.stdout)


def test_checkov_finds_no_failed_check_in_the_gcp_module(report):
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= 25
    assert report["summary"]["resource_count"] >= 30


def test_every_skipped_check_is_skipped_in_the_module_with_a_reason(report):
    skipped = report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == EXPECTED_SKIPS
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, (check["check_id"], reason)
    # Only inline skips: none from the command line or a config file.
    source = "\n".join(path.read_text() for path in MODULE.glob("*.tf"))
    for check_id in EXPECTED_SKIPS:
        assert f"# checkov:skip={check_id}:" in source
