"""make run's embedded database is SQLite: the pages must work there too (a PostgreSQL-only
query, such as DISTINCT ON, once broke the DevOps queue of `make run` and nothing else)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.clock,
    pytest.mark.clock_real("the pages render in a process of its own, on the real clock"),
]


def test_every_main_page_renders_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_DEBUG": "true",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests/portal/sqlite_pages.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 200 /queue/" in done.stdout
