"""import_fleet: the example fleet of docs/examples/fleet read folder by folder, broken folders
named with their reason, idempotency, the dry run, updates, and what the first run imports."""

import re
import shutil
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import hcl2
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.urls import reverse
from hcl2 import SerializationOptions

from provisioning.adoption import folder, hcl, importer, imports
from provisioning.models import Instance, Run
from tests.factories import make_instance

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples" / "fleet"
GOOD = ("dogfood", "hooli", "soylent", "umbrella", "wayne")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def good_fleet(tmp_path):
    """A copy of the example fleet's good folders only."""
    for name in GOOD:
        shutil.copytree(EXAMPLES / name, tmp_path / "fleet" / name)
    return tmp_path / "fleet"


def run_command(*args):
    """(stdout, the CommandError's message or "") of import_fleet."""
    out = StringIO()
    try:
        call_command("import_fleet", *map(str, args), stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


# -- reading folders ---------------------------------------------------------------------------


def test_a_folder_with_terraform_tfvars_only_gives_the_module_its_variables():
    wayne = folder.read(EXAMPLES / "wayne")
    assert (wayne.slug, wayne.customer, wayne.category) == ("wayne", "Wayne Enterprises", "")
    v = wayne.variables
    assert (v["machine_type"], v["data_disk_size"], v["enable_alerting"]) == (
        "n1-standard-16",
        500,
        True,
    )
    assert (v["region"], v["deployments"], v["disks"]) == ("us-central1", ["blue"], {"blue": {}})
    assert v["domain"] == "managed.example.com"  # the module's default
    assert set(v) == set(folder.module_variables())  # every variable of the gcp module
    assert wayne.notes == []


def test_a_module_block_alone_is_read_and_the_customer_is_the_folders_name():
    umbrella = folder.read(EXAMPLES / "umbrella")
    assert (umbrella.customer, umbrella.version) == ("umbrella", "6.0.2")  # v6.0.2 as typed
    v = umbrella.variables
    assert (v["zone"], v["region"], v["public"]) == ("europe-west1-b", "europe-west1", False)
    assert v["allowed_customer_ip_ranges"] == ["198.51.100.0/24", "203.0.113.16/28"]
    assert v["deployments"] == ["green"]


def test_a_module_block_reads_var_references_from_tfvars_and_defaults():
    hooli = folder.read(EXAMPLES / "hooli")
    v = hooli.variables
    assert v["project_id"] == "sourcegraph-managed-hooli"  # "sourcegraph-managed-${var.slug}"
    assert v["machine_type"] == "n1-standard-32"  # tfvars over the variable's default
    assert (v["enable_executors"], v["executor_min_replicas"], v["zone"]) == (
        True,
        1,
        "us-east1-c",
    )
    assert hooli.customer == "Hooli XYZ"  # labels from terraform.tfvars


def test_no_deployment_is_a_suspended_instance_and_the_category_label_is_read():
    assert folder.read(EXAMPLES / "soylent").suspended
    assert not folder.read(EXAMPLES / "wayne").suspended
    assert folder.read(EXAMPLES / "dogfood").category == "internal"


@pytest.mark.parametrize(
    "name, reason",
    [
        (
            "broken-hcl",
            "main.tf: the HCL does not parse (line 7, column 3: unexpected 'instance_version')",
        ),
        ("wrong-type", "machine_type: expected a string, found the number 16"),
        ("bad-slug", 'slug "Bad_Slug" breaks the naming rules'),
        (
            "unresolved",
            'module "instance": machine_type = local.size: only references to variables',
        ),
    ],
)
def test_each_broken_example_folder_is_skipped_with_its_reason(name, reason):
    with pytest.raises(folder.FolderSkipped) as caught:
        folder.read(EXAMPLES / name)
    assert reason in str(caught.value)


def write(path, files):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def tfvars(**values):
    """A terraform.tfvars of a valid instance, with `values` (HCL text) replacing its own."""
    base = {
        "slug": '"acme"',
        "instance_version": '"6.1.0"',
        "deployments": '["blue"]',
        "disks": "{ blue = {} }",
    }
    return "".join(f"{name} = {value}\n" for name, value in {**base, **values}.items())


@pytest.mark.parametrize(
    "values, reason",
    [
        ({"zone": '"us-central9-z"'}, 'zone "us-central9-z" is not a Compute zone'),
        (
            {"public": "false", "allowed_customer_ip_ranges": '["10.0.0.0/33"]'},
            'allowed_customer_ip_ranges: "10.0.0.0/33" is not a CIDR range',
        ),
        (
            {"allowed_customer_ip_ranges": '"10.0.0.0/8"'},
            "allowed_customer_ip_ranges: expected a list of strings, found the string",
        ),
        ({"public": "false"}, "public = false needs at least one range"),
        ({"machine_type": '"e2-standard-4"'}, 'machine_type "e2-standard-4" is not one the portal'),
        ({"deployments": '["blue", "green"]'}, "more than one (an upgrade half done)"),
        ({"deployments": "[]"}, "disks (blue) must be the data disks of the deployments (none)"),
        ({"instance_version": '"latest"'}, 'instance_version "latest" is not a release'),
        ({"project_id": '"1-bad"'}, 'project_id "1-bad" is not a GCP project id'),
        ({"data_disk_size": '"250"'}, 'data_disk_size: expected a number, found the string "250"'),
    ],
)
def test_values_of_the_wrong_type_or_breaking_a_rule_are_named(tmp_path, values, reason):
    path = write(tmp_path / "acme", {"terraform.tfvars": tfvars(**values)})
    with pytest.raises(folder.FolderSkipped) as caught:
        folder.read(path)
    assert reason in str(caught.value)


def test_a_module_literal_wins_over_tfvars_as_in_terraform_and_that_is_noted(tmp_path):
    main = (
        'module "instance" {\n  source = "../modules/gcp"\n  slug = "acme"\n'
        '  machine_type = "n1-standard-8"\n  instance_version = var.version\n'
        '  deployments = ["blue"]\n  disks = { blue = {} }\n}\n'
        'variable "version" {}\n'
    )
    values = 'version = "6.1.0"\nmachine_type = "n1-standard-96"\nzone = "us-east1-b"\n'
    path = write(tmp_path / "acme", {"main.tf": main, "terraform.tfvars": values})
    read = folder.read(path)
    assert (read.variables["machine_type"], read.variables["zone"]) == (
        "n1-standard-8",
        "us-central1-f",
    )
    assert any("machine_type, but the module block gives it as a literal" in n for n in read.notes)
    assert any("zone, but the module block does not pass it on" in n for n in read.notes)


def test_unresolvable_references_and_unknown_arguments_are_named(tmp_path):
    main = (
        'module "instance" {\n  source = "../modules/gcp"\n  slug = "acme"\n'
        '  zone = var.zone\n  machine_type = upper(var.size)\n  instance_version = "6.1.0"\n'
        '  machinetype = "n1-standard-8"\n}\n'
    )
    path = write(tmp_path / "acme", {"main.tf": main})
    with pytest.raises(folder.FolderSkipped) as caught:
        folder.read(path)
    reason = str(caught.value)
    assert "zone = var.zone: var.zone is set neither in terraform.tfvars nor by a default" in reason
    assert "machine_type = upper(var.size)" in reason
    assert "machinetype is not a variable of the gcp module" in reason


def test_a_default_that_cannot_be_read_matters_only_where_it_is_used(tmp_path):
    main = (
        'variable "size" {\n  default = lower("N1-STANDARD-8")\n}\n'
        'module "instance" {\n  source = "../modules/gcp"\n  slug = "acme"\n'
        '  instance_version = "6.1.0"\n  disks = { blue = {} }\n}\n'
    )
    assert folder.read(write(tmp_path / "acme", {"main.tf": main})).slug == "acme"
    used = main.replace('slug = "acme"', 'slug = "acme"\n  machine_type = var.size')
    with pytest.raises(folder.FolderSkipped) as caught:
        folder.read(write(tmp_path / "used", {"main.tf": used}))
    assert 'machine_type = var.size: variable "size": default = lower(' in str(caught.value)


def test_several_module_blocks_need_exactly_one_calling_the_gcp_module(tmp_path):
    dns = 'module "dns" {\n  source = "../modules/dns"\n}\n'
    gcp = 'module "instance" {\n  source = "git::https://x/y.git//modules/gcp?ref=v1"\n'
    gcp += '  slug = "acme"\n  instance_version = "6.1.0"\n  disks = { blue = {} }\n}\n'
    assert folder.read(write(tmp_path / "acme", {"main.tf": dns + gcp})).slug == "acme"
    with pytest.raises(folder.FolderSkipped, match="not exactly one calls the gcp module"):
        folder.read(write(tmp_path / "two", {"main.tf": dns + dns.replace("dns", "mail")}))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('"a\\"b\\\\c\\u00e9\\n"', 'a"b\\cé\n'),
        ('"$${literal}"', "${literal}"),
        ('"mi-${var.slug}-x"', "mi-acme-x"),
        ("${var.size}", 500),  # a reference keeps its type
        ('"${var.size}"', 500),  # so does a string that is only an interpolation
        ('"disk-${var.size}"', "disk-500"),
    ],
)
def test_hcl_values_are_read_as_terraform_reads_them(raw, expected):
    context = hcl.Context({"slug": "acme", "size": 500})
    assert hcl.evaluate(raw, "x", context) == expected


@pytest.mark.parametrize(
    "raw", ['"%{ if true }x%{ endif }"', '"<<EOT\nhi\nEOT"', "${local.size}", "${var.nope}"]
)
def test_what_the_import_cannot_evaluate_is_a_problem(raw):
    with pytest.raises(hcl.Problem):
        hcl.evaluate(raw, "x", hcl.Context({"slug": "acme"}))


# -- importing -----------------------------------------------------------------------------------


def test_the_example_fleet_loads_its_good_folders_and_a_second_import_changes_nothing(db):
    result = importer.import_fleet(EXAMPLES, NOW)
    actions = {o.folder: o.action for o in result.outcomes}
    assert actions == {
        **dict.fromkeys(GOOD, "create"),
        **dict.fromkeys(("bad-slug", "broken-hcl", "unresolved", "wrong-type"), "skipped"),
    }
    statuses = dict(Instance.objects.values_list("slug", "status"))
    assert statuses == {
        "dogfood": "active",
        "hooli": "active",
        "soylent": "suspended",
        "umbrella": "active",
        "wayne": "active",
    }
    hooli = Instance.objects.get(slug="hooli")
    assert (hooli.adopted_at, hooli.adopted_from) == (NOW, str(EXAMPLES / "hooli"))
    assert (hooli.gcp_project, hooli.executors_enabled, hooli.customer) == (
        "sourcegraph-managed-hooli",
        True,
        "Hooli XYZ",
    )
    assert hooli.url == "https://hooli.managed.example.com"
    assert hooli.outputs["variables"]["machine_type"] == "n1-standard-32"
    assert hooli.outputs["color"] == "blue" and hooli.awaits_import()
    umbrella = Instance.objects.get(slug="umbrella")
    assert (umbrella.access, umbrella.version) == ("ip_allowlist", "6.0.2")

    stamps = dict(Instance.objects.values_list("slug", "updated_at"))
    again = importer.import_fleet(EXAMPLES, datetime(2026, 3, 3, tzinfo=UTC))
    assert {o.folder: o.action for o in again.outcomes if o.action != "skipped"} == dict.fromkeys(
        GOOD, "unchanged"
    )
    assert not again.changed
    assert dict(Instance.objects.values_list("slug", "updated_at")) == stamps


@pytest.mark.clock  # the command stamps adopted_at with now
def test_the_command_exits_non_zero_while_a_folder_is_skipped_and_says_nothing_changed(db):
    out, error = run_command(EXAMPLES)
    assert "5 created, 0 updated, 0 unchanged, 4 skipped." in out
    assert error.startswith("4 folder(s) skipped: bad-slug, broken-hcl, unresolved, wrong-type")
    assert re.search(r"\nwrong-type +wrongtype +skipped +machine_type: expected a string", out)
    out, error = run_command(EXAMPLES)
    assert "0 created, 0 updated, 5 unchanged, 4 skipped. Nothing changed." in out and error
    assert Instance.objects.count() == 5


@pytest.mark.clock
def test_a_fleet_without_broken_folders_exits_zero_every_time(db, tmp_path):
    fleet = good_fleet(tmp_path)
    assert run_command(fleet)[1] == ""
    out, error = run_command(fleet)
    assert error == "" and "Nothing changed." in out


@pytest.mark.clock
def test_a_dry_run_prints_the_changes_and_writes_nothing(db, tmp_path):
    fleet = good_fleet(tmp_path)
    out, _ = run_command(fleet, "--dry-run")
    assert "Dry run, nothing written: 5 to create, 0 to update, 0 unchanged, 0 skipped." in out
    assert re.search(r"\nwayne +wayne +create +status active, customer Wayne Enterprises", out)
    assert not Instance.objects.exists()

    run_command(fleet)
    tfvars = fleet / "wayne" / "terraform.tfvars"
    tfvars.write_text(
        tfvars.read_text().replace('"n1-standard-16"', '"n1-standard-32"').replace("= 500", "= 750")
    )
    out, _ = run_command(fleet, "--dry-run")
    assert "machine_type: n1-standard-16 -> n1-standard-32" in out
    assert "terraform data_disk_size: 500 -> 750" in out
    assert "1 to update, 4 unchanged" in out
    assert Instance.objects.get(slug="wayne").machine_type == "n1-standard-16"


def test_a_changed_folder_updates_its_adopted_instance(db, tmp_path):
    fleet = good_fleet(tmp_path)
    importer.import_fleet(fleet, NOW)
    tfvars = fleet / "soylent" / "terraform.tfvars"
    text = tfvars.read_text().replace("deployments      = []", 'deployments = ["green"]')
    tfvars.write_text(text.replace("disks            = {}", "disks = { green = {} }"))
    result = importer.import_fleet(fleet, datetime(2026, 3, 9, tzinfo=UTC))
    soylent = next(o for o in result.outcomes if o.folder == "soylent")
    assert soylent.action == "update"
    assert ("status", "suspended", "active") in soylent.changes
    assert ("terraform deployments", [], ["green"]) in soylent.changes
    instance = Instance.objects.get(slug="soylent")
    assert (instance.status, instance.outputs["color"], instance.adopted_at) == (
        "active",
        "green",
        NOW,  # adopted when first read
    )


def test_instances_the_portal_runs_are_not_changed_by_a_folder(db, tmp_path):
    fleet = good_fleet(tmp_path)
    make_instance("wayne", customer="Wayne", outputs={})  # made by a request, not adopted
    importer.import_fleet(fleet, NOW)
    hooli = Instance.objects.get(slug="hooli")
    run = Run.objects.create(instance=hooli, kind="upgrade", state="planned", created_at=NOW)
    for path in (fleet / "hooli" / "infrastructure.tf", fleet / "umbrella" / "main.tf"):
        path.write_text(
            re.sub(r"enable_alerting\s*= true", "enable_alerting = false", path.read_text())
        )
    umbrella = Instance.objects.get(slug="umbrella")
    Run.objects.create(instance=umbrella, kind="upgrade", state="applied", created_at=NOW)

    result = {o.folder: o for o in importer.import_fleet(fleet, NOW).outcomes}
    assert result["wayne"].action == "skipped"
    assert "already runs an instance wayne (not adopted)" in result["wayne"].reason
    assert result["hooli"].action == "skipped"
    assert f"run #{run.pk} is planned on hooli" in result["hooli"].reason
    assert result["umbrella"].action == "unchanged"  # taken over: the folder is history
    assert (
        "no longer read for it (it differs in terraform enable_alerting)"
        in (result["umbrella"].notes[0])
    )
    assert Instance.objects.get(slug="umbrella").outputs["variables"]["enable_alerting"]


def test_two_folders_of_one_slug_are_both_skipped(db, tmp_path):
    fleet = good_fleet(tmp_path)
    shutil.copytree(fleet / "wayne", fleet / "wayne-copy")
    result = {o.folder: o for o in importer.import_fleet(fleet, NOW).outcomes}
    assert result["wayne"].action == result["wayne-copy"].action == "skipped"
    assert result["wayne"].reason == "wayne-copy describes wayne too: keep one folder per instance"
    assert not Instance.objects.filter(slug="wayne").exists()


def test_each_folder_loads_in_its_own_transaction(db, tmp_path, monkeypatch):
    fleet = good_fleet(tmp_path)
    write_one = importer._write

    def failing(description, instance, outcome, now):
        write_one(description, instance, outcome, now)
        if description.slug == "hooli":
            raise IntegrityError("boom")

    monkeypatch.setattr(importer, "_write", failing)
    result = {o.folder: o for o in importer.import_fleet(fleet, NOW).outcomes}
    assert result["hooli"].action == "skipped"
    assert result["hooli"].reason == "the database refused it: boom"
    assert set(Instance.objects.values_list("slug", flat=True)) == set(GOOD) - {"hooli"}


@pytest.mark.clock  # the page shows SLA timers
def test_the_instance_page_says_it_was_adopted(client, users, db):
    importer.import_fleet(EXAMPLES, NOW)
    client.force_login(users["ce"])
    html = client.get(reverse("instance_detail", args=["wayne"])).content.decode()
    assert "Adopted from Terraform on" in html and "2026-03-02" in html
    assert str(EXAMPLES / "wayne") in html and "its next run imports its resources" in html


# -- what the first run imports ------------------------------------------------------------------


def adopted(tmp_path, name="hooli"):
    importer.import_fleet(EXAMPLES, NOW)
    return Instance.objects.get(slug=name)


@pytest.mark.parametrize(
    "kind, destroy, planned, first",
    [
        ("enable_executors", False, 10, 0),  # everything stays: imported by the plan
        ("suspend", False, 8, 2),  # the VM and disk go: imported before the plan
        ("teardown", True, 0, 10),  # Terraform imports nothing while it destroys
    ],
)
def test_the_first_run_imports_by_plan_what_it_keeps_and_first_what_it_removes(
    db, tmp_path, kind, destroy, planned, first
):
    from provisioning import workspace

    instance = adopted(tmp_path)
    params = workspace.desired_variables(instance, kind, {}, 1)
    adoption = imports.for_run(instance, params, destroy, "sandbox")
    assert (len(adoption.planned), len(adoption.first)) == (planned, first)
    vm = 'module.instance.terraform_data.vm["blue"]'
    assert adoption.all[vm] == (
        "projects/sourcegraph-managed-hooli/zones/us-east1-c/instances/hooli-blue"
    )
    Run.objects.create(instance=instance, kind=kind, state="applied", created_at=NOW)
    assert imports.for_run(instance, params, destroy, "sandbox") is None  # imported since


def test_every_import_address_of_the_gcp_module_is_a_resource_of_it(db, tmp_path):
    instance = adopted(tmp_path)
    declared = set()
    options = SerializationOptions(with_comments=False)
    for path in (ROOT / "provisioning" / "terraform" / "modules" / "gcp").glob("*.tf"):
        for block in hcl2.loads(path.read_text(), serialization_options=options).get(
            "resource", []
        ):
            for kind, named in block.items():
                declared |= {f"{hcl.key_text(kind)}.{hcl.key_text(n)}" for n in named}
    addresses = imports.resources(instance.outputs["variables"], "gcp")
    assert len(addresses) == 28
    for address in addresses:
        resource = address.removeprefix(imports.PREFIX).split("[")[0]
        assert resource in declared, address
    written = hcl2.loads(imports.blocks(addresses))["import"]
    assert len(written) == 28 and written[0]["to"] == "${module.instance.google_project.instance}"
