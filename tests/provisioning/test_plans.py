"""The plan table: `terraform show -json` of a saved plan as rows a person reads. The resource
changes below are trimmed from real plans of the sandbox module."""

from provisioning import plans

VM = 'module.instance.terraform_data.vm["blue"]'
VM_BEFORE = {
    "color": "blue",
    "machine_type": "n1-standard-8",
    "name": "acme-blue",
    "version": "6.0.0",
}


def resource(address, name, actions, reason=None, **change):
    found = {
        "address": address,
        "module_address": "module.instance",
        "mode": "managed",
        "type": "terraform_data",
        "name": name,
        "change": {"actions": actions, "before": None, "after": None, **change},
    }
    if reason:
        found["action_reason"] = reason
    return found


def replace_vm():
    change = resource(
        VM,
        "vm",
        ["delete", "create"],
        before={
            "id": "902e25c0",
            "input": VM_BEFORE,
            "output": VM_BEFORE,
            "triggers_replace": ["mi-acme", "us-central1-f", "n1-standard-8", "1542ccaa"],
        },
        after={
            "input": {**VM_BEFORE, "machine_type": "n1-standard-16"},
            "triggers_replace": ["mi-acme", "us-central1-f", "n1-standard-16", "1542ccaa"],
        },
        after_unknown={
            "id": True,
            "input": {},
            "output": True,
            "triggers_replace": [False] * 4,
        },
        before_sensitive={"input": {}, "output": {}, "triggers_replace": [False] * 4},
        after_sensitive={"input": {}, "output": {}, "triggers_replace": [False] * 4},
        replace_paths=[["triggers_replace"]],
        reason="replace_because_cannot_update",
    )
    return change


def update_neg():
    before = {"endpoint": "acme-blue", "name": "acme-neg", "zone": "us-central1-f"}
    return resource(
        "module.instance.terraform_data.network_endpoint_group",
        "network_endpoint_group",
        ["update"],
        before={"id": "56d33a11", "input": before, "output": before, "triggers_replace": None},
        after={
            "id": "56d33a11",
            "input": {"name": "acme-neg", "zone": "us-central1-f"},
            "triggers_replace": None,
        },
        after_unknown={"input": {"endpoint": True}, "output": True},
        before_sensitive={"input": {}, "output": {}},
        after_sensitive={"input": {}, "output": {}},
    )


def plan(*changes):
    return {"format_version": "1.2", "resource_changes": list(changes)}


def test_one_row_per_change_most_dangerous_first_no_ops_and_reads_left_out():
    table = plans.build(
        plan(
            resource("module.instance.terraform_data.executors[0]", "executors", ["create"]),
            update_neg(),
            resource("module.instance.terraform_data.project", "project", ["no-op"]),
            {**resource("data.google_project.x", "x", ["read"]), "mode": "data"},
            resource("module.instance.terraform_data.firewall", "firewall", ["read"]),
            replace_vm(),
            resource('module.instance.terraform_data.data_disk["blue"]', "data_disk", ["delete"]),
        )
    )
    assert [(row.action, row.local_address) for row in table.rows] == [
        ("destroy", 'terraform_data.data_disk["blue"]'),
        ("replace", 'terraform_data.vm["blue"]'),
        ("change", "terraform_data.network_endpoint_group"),
        ("add", "terraform_data.executors[0]"),
    ]
    assert table.counts == {"destroy": 1, "replace": 1, "change": 1, "add": 1}
    assert all(
        row.module == "module.instance." and row.type == "terraform_data" for row in table.rows
    )


def test_create_before_destroy_is_a_replace_too():
    assert plans.action_of(["create", "delete"]) == "replace"
    assert plans.action_of(["delete", "create"]) == "replace"
    assert plans.action_of(["no-op"]) is None and plans.action_of(["read"]) is None
    assert plans.action_of(["forget"]) == "forget"  # anything new is shown, in its own words


def test_a_replace_lists_what_forces_it_and_what_else_changes():
    [row] = plans.build(plan(replace_vm())).rows
    assert row.action == "replace"
    assert row.reason == "a change that cannot be made in place"
    assert [(a.path, a.before, a.after, a.forces_replacement) for a in row.attributes] == [
        ("input.machine_type", '"n1-standard-8"', '"n1-standard-16"', False),
        ("triggers_replace[2]", '"n1-standard-8"', '"n1-standard-16"', True),
    ]  # not the id or the output, which every replace recomputes


def test_an_in_place_change_lists_values_known_only_after_apply():
    [row] = plans.build(plan(update_neg())).rows
    assert row.action == "change"
    assert [(a.path, a.before, a.after) for a in row.attributes] == [
        ("input.endpoint", '"acme-blue"', "(known after apply)")
    ]


def test_adds_and_destroys_list_no_attributes():
    table = plans.build(
        plan(
            resource(
                "module.instance.terraform_data.alerting[0]",
                "alerting",
                ["create"],
                after={"input": {"uptime_check": "https://acme.example.com/sign-in"}},
            ),
            resource(
                'module.instance.terraform_data.vm["blue"]',
                "vm",
                ["delete"],
                before={"input": VM_BEFORE},
                reason="delete_because_each_key",
            ),
        )
    )
    assert [(row.action, row.attributes, row.reason) for row in table.rows] == [
        ("destroy", [], "its key left for_each"),
        ("add", [], ""),
    ]


def test_sensitive_values_are_never_shown():
    change = resource(
        "module.instance.google_sql_user.admin",
        "admin",
        ["update"],
        before={"name": "admin", "password": "old-secret", "tags": {"a": "1"}},
        after={"name": "root", "password": "new-secret", "tags": {"a": "2"}},
        after_unknown={},
        before_sensitive={"password": True, "tags": True},
        after_sensitive={"password": True, "tags": {"a": True}},
    )
    change["type"] = "google_sql_user"
    [row] = plans.build(plan(change)).rows
    shown = {a.path: (a.before, a.after) for a in row.attributes}
    assert shown == {
        "name": ('"admin"', '"root"'),
        "password": ("(sensitive)", "(sensitive)"),
        "tags.a": ("(sensitive)", "(sensitive)"),
    }
    assert "secret" not in repr(row)


def test_added_and_removed_attributes_and_long_lists_are_cut():
    before = {f"k{i:02}": i for i in range(20)}
    change = resource(
        "module.instance.terraform_data.many",
        "many",
        ["update"],
        before={"input": before},
        after={"input": {"k00": 0, "new key": "x" * 300}},
        after_unknown={},
    )
    [row] = plans.build(plan(change)).rows
    assert len(row.attributes) == plans.MAX_ATTRIBUTES and row.more == 8
    assert row.attributes[0].path == "input.k01" and row.attributes[0].after == "—"
    table = plans.build(plan(change))
    every = plans.attribute_changes(change["change"])
    added = next(a for a in every if a.before == "—")
    assert added.path == 'input["new key"]' and added.after.endswith("…")
    assert len(added.after) == plans.MAX_VALUE
    assert table.rows[0].more == len(every) - plans.MAX_ATTRIBUTES


def test_an_empty_or_missing_plan_has_no_rows():
    assert not plans.build({}) and not plans.build(None)
    assert not plans.build(plan(resource("module.instance.terraform_data.x", "x", ["no-op"])))


def test_outputs_of_an_applied_run():
    shown = plans.outputs_shown(
        {
            "url": "https://acme.managed.example.com",
            "instance_ip": "203.0.113.42",
            "instance_name": "",
            "deployments": {"blue": "acme-blue"},
            "zone": "us-central1-f",
        }
    )
    assert shown == [
        ("deployments", "blue: acme-blue", False),
        ("instance_ip", "203.0.113.42", False),
        ("url", "https://acme.managed.example.com", True),
        ("zone", "us-central1-f", False),
    ]


def test_imports_are_rows_of_their_own_or_say_so_beside_their_change():
    project = "module.instance.terraform_data.project"
    table = plans.build(
        plan(
            resource(project, "project", ["no-op"], importing={"id": "projects/mi-acme"}),
            resource(VM, "vm", ["update"], importing={"id": "projects/mi-acme/vm"}),
        )
    )
    assert [(row.action, row.address, row.reason) for row in table.rows] == [
        ("change", VM, "imported from projects/mi-acme/vm"),
        ("import", project, "imported from projects/mi-acme"),
    ]
