"""What the sandbox Terraform module's local-exec provisioners run, and a handy tool by hand.

    python -m provisioning.sandbox.cli register --project P --zone Z --name VM \
        --machine-type n1-standard-8 [--data-disk DISK] [--label k=v ...] --endpoint URL
    python -m provisioning.sandbox.cli deregister --project P --zone Z --name VM --endpoint URL
    python -m provisioning.sandbox.cli disk-create --project P --zone Z --name DISK --size-gb N \
        [--snapshot SNAP] --endpoint URL
    python -m provisioning.sandbox.cli disk-delete --project P --zone Z --name DISK --endpoint URL
    python -m provisioning.sandbox.cli snapshot --project P --zone Z --disk DISK --name SNAP \
        --endpoint URL

--endpoint defaults to $SANDBOX_COMPUTE_URL. Every command converges: running it again after a
partial failure (a Terraform retry) finishes the job instead of failing on what is already done.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from google.api_core import exceptions as gexc

from provisioning.compute import Compute, ComputeError, error_reason


def _register(compute: Compute, args: argparse.Namespace) -> None:
    labels = dict(pair.split("=", 1) for pair in args.label)
    status = compute.get_instance_status(args.project, args.zone, args.name)
    if status is None:
        compute.insert_vm(
            args.project,
            args.zone,
            args.name,
            args.machine_type,
            data_disk=args.data_disk or None,
            labels=labels,
            metadata={"instance-version": args.version} if args.version else None,
        )
    elif status in ("STOPPING", "SUSPENDING"):
        compute.wait_for_status(args.project, args.zone, args.name, ("TERMINATED", "SUSPENDED"))
        compute.start_vm(args.project, args.zone, args.name)
    elif status in ("TERMINATED", "STOPPED", "SUSPENDED"):
        compute.start_vm(args.project, args.zone, args.name)
    status = compute.wait_for_status(args.project, args.zone, args.name, ("RUNNING",))
    print(f"instance {args.project}/{args.zone}/{args.name} is {status}")


def _deregister(compute: Compute, args: argparse.Namespace) -> None:
    compute.delete_vm(args.project, args.zone, args.name, missing_ok=True)
    print(f"instance {args.project}/{args.zone}/{args.name} is gone")


def _disk_create(compute: Compute, args: argparse.Namespace) -> None:
    disk = compute.get_disk(args.project, args.zone, args.name)
    if disk is None:
        compute.create_disk(
            args.project, args.zone, args.name, args.size_gb, snapshot=args.snapshot or None
        )
        disk = compute.get_disk(args.project, args.zone, args.name)
    if disk is None:
        raise ComputeError(f"disk {args.project}/{args.zone}/{args.name} is gone after its insert")
    print(f"disk {args.project}/{args.zone}/{args.name} is {disk.status} ({disk.size_gb} GB)")


def _disk_delete(compute: Compute, args: argparse.Namespace) -> None:
    compute.delete_disk(args.project, args.zone, args.name, missing_ok=True)
    print(f"disk {args.project}/{args.zone}/{args.name} is gone")


def _snapshot(compute: Compute, args: argparse.Namespace) -> None:
    snapshot = compute.get_snapshot(args.project, args.name)
    if snapshot is None:
        snapshot = compute.create_snapshot(args.project, args.zone, args.disk, args.name)
    if snapshot is None:
        raise ComputeError(f"snapshot {args.project}/{args.name} is gone after its creation")
    print(f"snapshot {args.project}/{args.name} of {args.disk} is {snapshot.status}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint",
        default=None,
        help="sandbox Compute server URL (default: $SANDBOX_COMPUTE_URL)",
    )
    common.add_argument("--project", required=True)
    common.add_argument("--zone", required=True)
    common.add_argument("--timeout", type=float, default=600, help="seconds to wait in all")

    parser = argparse.ArgumentParser(
        prog="python -m provisioning.sandbox.cli", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    register = commands.add_parser("register", parents=[common], help="create or start a VM")
    register.add_argument("--name", required=True)
    register.add_argument("--machine-type", required=True)
    register.add_argument("--data-disk", default="", help="existing disk to attach as data")
    register.add_argument("--version", default="", help="product version (instance metadata)")
    register.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    register.set_defaults(run=_register)

    deregister = commands.add_parser("deregister", parents=[common], help="delete a VM")
    deregister.add_argument("--name", required=True)
    deregister.set_defaults(run=_deregister)

    disk_create = commands.add_parser("disk-create", parents=[common], help="create a disk")
    disk_create.add_argument("--name", required=True)
    disk_create.add_argument("--size-gb", type=int, required=True)
    disk_create.add_argument("--snapshot", default="", help="restore from this snapshot")
    disk_create.set_defaults(run=_disk_create)

    disk_delete = commands.add_parser("disk-delete", parents=[common], help="delete a disk")
    disk_delete.add_argument("--name", required=True)
    disk_delete.set_defaults(run=_disk_delete)

    snapshot = commands.add_parser("snapshot", parents=[common], help="snapshot a disk")
    snapshot.add_argument("--disk", required=True)
    snapshot.add_argument("--name", required=True)
    snapshot.set_defaults(run=_snapshot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any("=" not in pair for pair in getattr(args, "label", [])):
        parser.error("--label takes KEY=VALUE")
    endpoint = args.endpoint or os.environ.get("SANDBOX_COMPUTE_URL")
    if not endpoint:
        parser.error("no sandbox endpoint: pass --endpoint or set SANDBOX_COMPUTE_URL")
    compute = Compute(endpoint, timeout=args.timeout)
    try:
        args.run(compute, args)
    except gexc.GoogleAPICallError as exc:
        reason = error_reason(exc)
        print(f"error: {exc.message}" + (f" ({reason})" if reason else ""), file=sys.stderr)
        return 1
    except ComputeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
