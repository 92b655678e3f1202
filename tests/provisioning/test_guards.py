"""Plan guards on `terraform show -json` plans: which kind may create or destroy what."""

import pytest

from provisioning import guards


def plan(*changes):
    return {
        "resource_changes": [
            {
                "address": f"module.instance.{kind}.{name}",
                "type": kind,
                "name": name,
                "change": {"actions": list(actions)},
            }
            for kind, name, actions in changes
        ]
    }


PROJECT_CREATED = plan(("terraform_data", "project", ["create"]))
PROJECT_DESTROYED = plan(("google_project", "instance", ["delete"]))
ADDRESS_DESTROYED = plan(("google_compute_global_address", "address", ["delete"]))
DISK_REPLACED = plan(("terraform_data", "data_disk", ["delete", "create"]))
DISK_DESTROYED = plan(("google_compute_disk", "data", ["delete"]))
VM_REPLACED = plan(("google_compute_instance", "vm", ["delete", "create"]))


@pytest.mark.parametrize("kind", ["suspend", "resume", "upgrade", "enable_executors", "teardown"])
def test_only_a_create_creates_the_project(kind):
    [found] = guards.violations(kind, PROJECT_CREATED)
    assert "terraform_data.project" in found and "only a create" in found
    assert guards.violations("create", PROJECT_CREATED) == []


@pytest.mark.parametrize("destroyed", [PROJECT_DESTROYED, ADDRESS_DESTROYED])
@pytest.mark.parametrize("kind", ["create", "suspend", "resume", "upgrade", "enable_executors"])
def test_only_a_teardown_destroys_the_project_or_its_address(kind, destroyed):
    [found] = guards.violations(kind, destroyed)
    assert "only a teardown" in found
    assert guards.violations("teardown", destroyed) == []


@pytest.mark.parametrize("disk", [DISK_REPLACED, DISK_DESTROYED])
def test_a_data_disk_goes_only_with_a_snapshot_or_a_teardown(disk):
    for kind in ("create", "resume", "enable_executors"):
        [found] = guards.violations(kind, disk)
        assert "data disk" in found and kind in found
    for kind in ("suspend", "upgrade", "teardown"):
        assert guards.violations(kind, disk) == []


def test_replacing_a_vm_breaks_no_rule():
    for kind in ("create", "suspend", "resume", "upgrade", "enable_executors", "teardown"):
        assert guards.violations(kind, VM_REPLACED) == []


def test_the_summary_lists_what_is_destroyed_and_whether_data_goes():
    summary = guards.summary(
        "upgrade",
        plan(
            ("terraform_data", "data_disk", ["delete"]),
            ("terraform_data", "vm", ["delete", "create"]),
            ("terraform_data", "network", ["update"]),
            ("terraform_data", "alerting", ["create"]),
        ),
    )
    assert (summary["add"], summary["change"], summary["destroy"]) == (2, 1, 2)
    assert summary["destroyed"] == [
        "module.instance.terraform_data.data_disk",
        "module.instance.terraform_data.vm",
    ]
    assert summary["replaced"] == ["module.instance.terraform_data.vm"]
    assert summary["data_destroyed"] is True and summary["violations"] == []


def imported(*changes):
    """A plan whose changes import their resource (the first run of an adopted instance)."""
    found = plan(*changes)
    for change in found["resource_changes"]:
        change["change"]["importing"] = {"id": f"projects/mi-acme/{change['name']}"}
    return found


def test_a_plan_may_not_destroy_what_it_imports_and_imports_are_counted():
    vm_replaced = imported(("terraform_data", "vm", ["delete", "create"]))
    for kind in ("suspend", "upgrade", "enable_executors", "teardown"):
        [found] = guards.violations(kind, vm_replaced)
        assert "terraform_data.vm: imported and destroyed by the same plan" in found
    kept = imported(("terraform_data", "vm", ["update"]), ("terraform_data", "project", ["no-op"]))
    summary = guards.summary("enable_executors", kept)
    assert (summary["import"], summary["change"], summary["violations"]) == (2, 1, [])
