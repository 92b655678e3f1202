"""Per-instance Terraform workspaces: a root module that calls the shared module, and
terraform.tfvars written with python-hcl2 and formatted by `terraform fmt`. State lives in the
portal's PostgreSQL (the `pg` backend, a schema per instance) when the database is PostgreSQL,
in a local file under var/ otherwise."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from provisioning import terraform
from provisioning.models import Instance

MODULES = Path(__file__).resolve().parent / "terraform" / "modules"
COLORS = ("blue", "green")


def workspace_dir(instance: Instance) -> Path:
    return Path(settings.VAR_DIR) / "workspaces" / f"{instance.slug}-{instance.pk}"


def state_schema(instance: Instance) -> str:
    return f"tfstate_{instance.slug.replace('-', '_')}_{instance.pk}"


def base_variables(instance: Instance) -> dict[str, Any]:
    """The variables of an instance that has never been applied."""
    zone = instance.zone or "us-central1-f"
    return {
        "slug": instance.slug,
        "project_id": instance.gcp_project,
        "region": zone.rsplit("-", 1)[0],
        "zone": zone,
        "machine_type": instance.machine_type,
        "data_disk_size": 250,
        "deployments": ["blue"],
        "disks": {"blue": {}},
        "public": instance.access != "ip_allowlist",
        "allowed_customer_ip_ranges": list(instance.allowed_ip_ranges or []),
        "enable_alerting": True,
        "enable_executors": bool(instance.executors_enabled),
        "executor_min_replicas": 1 if instance.executors_enabled else 0,
        "executor_max_replicas": 4 if instance.executors_enabled else 0,
        "instance_version": instance.version or settings.INSTANCE_DEFAULT_VERSION,
        "domain": settings.INSTANCE_DOMAIN,
    }


def desired_variables(
    instance: Instance, kind: str, changes: dict[str, Any], run_key: object
) -> dict[str, Any]:
    """What the instance's Terraform variables become for a run of `kind`: the last applied
    ones (so a restored disk is never replaced by accident) with this kind's change."""
    current = dict(instance.outputs.get("variables") or base_variables(instance))
    color = (current["deployments"] or [instance.outputs.get("color", "blue")])[0]
    if kind == "create":
        current = base_variables(instance)
    elif kind == "suspend":
        current.update(deployments=[], disks={})
    elif kind == "resume":
        snapshot = instance.outputs.get("snapshot")
        disk = {"from_snapshot": snapshot} if snapshot else {}
        current.update(deployments=[color], disks={color: disk})
    elif kind == "upgrade":
        new = COLORS[1 - COLORS.index(color)] if color in COLORS else "blue"
        current.update(
            deployments=[new],
            disks={new: {"from_snapshot": upgrade_snapshot(instance, new, run_key)}},
            instance_version=changes.get("version") or current["instance_version"],
        )
    elif kind == "enable_executors":
        current.update(enable_executors=True, executor_min_replicas=1, executor_max_replicas=4)
    # teardown keeps the variables: it is a destroy of what they describe.
    return without_legacy(current)


# Variables of how one machine ran the sandbox module (a Python path, the sandbox's URL), which
# runs planned before they became the environment of Terraform (sandbox_environment) still
# hold: never passed to the module, never recorded.
LEGACY_VARIABLES = ("python_bin", "sandbox_endpoint")


def without_legacy(variables: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in variables.items() if name not in LEGACY_VARIABLES}


# What the sandbox module's VM and data disks kept in their `input` while they carried how to
# reach the CLI (a Python path, this checkout's path, the sandbox URL). State written then still
# holds them; left there, every plan would show them going away (local paths and all), and every
# verification would report it as drift. forget_legacy_state removes them from the state.
LEGACY_INPUTS = ("python_bin", "pythonpath", "endpoint")


def strip_legacy_inputs(state: dict[str, Any]) -> bool:
    """Remove LEGACY_INPUTS from the `input` and `output` of the sandbox module's
    terraform_data resources that have them (the ones holding `python_bin`), in place. Returns
    whether anything changed."""
    changed = False
    for resource in state.get("resources") or []:
        if resource.get("type") != "terraform_data" or resource.get("mode") != "managed":
            continue
        for item in resource.get("instances") or []:
            attributes = item.get("attributes") or {}
            for name in ("input", "output"):
                dynamic = attributes.get(name)
                if not isinstance(dynamic, dict):
                    continue
                value, kind = dynamic.get("value"), dynamic.get("type")
                if not isinstance(value, dict) or "python_bin" not in value:
                    continue
                for key in LEGACY_INPUTS:
                    value.pop(key, None)
                    if isinstance(kind, list) and len(kind) == 2 and isinstance(kind[1], dict):
                        kind[1].pop(key, None)
                changed = True
    return changed


def stored_state_text(instance: Instance) -> str:
    """The instance's Terraform state as stored ("" when there is none), read without Terraform:
    the pg backend's row, or the local file of the SQLite set-up."""
    if connection.vendor != "postgresql":
        path = workspace_dir(instance) / "terraform.tfstate"
        return path.read_text() if path.exists() else ""
    schema = connection.ops.quote_name(state_schema(instance))
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT data FROM {schema}.states WHERE name = 'default'")  # noqa: S608
            row = cursor.fetchone()
    except DatabaseError:  # no schema yet: never applied
        return ""
    return row[0] if row else ""


def has_legacy_state(instance: Instance) -> bool:
    return '"python_bin"' in stored_state_text(instance)


def lacks_identity(instance: Instance) -> bool:
    """Whether the state has sandbox data disks but not the terraform_data.identity records
    that now hold what replaces them (states written before they existed): a plan of it would
    add them, which verification would report as drift."""
    text = stored_state_text(instance)
    if '"terraform_data"' not in text:
        return False
    names = {
        resource.get("name")
        for resource in json.loads(text).get("resources") or []
        if resource.get("type") == "terraform_data" and resource.get("instances")
    }
    return "data_disk" in names and "identity" not in names


def record_identity(folder: Path, env: dict[str, str]) -> None:
    """Create the missing identity records (state only: they have no provisioner and replace
    nothing when created) in the initialised workspace `folder`."""
    terraform.run(
        [
            "apply",
            "-input=false",
            "-no-color",
            "-auto-approve",
            "-target=module.instance.terraform_data.identity",
        ],
        folder,
        env,
    )


def forget_legacy_state(instance: Instance, folder: Path, env: dict[str, str]) -> bool:
    """Remove LEGACY_INPUTS from the instance's state through `terraform state pull` and `push`
    (in the initialised workspace `folder`), when it holds them. Nothing changes outside the
    state: no provisioner runs, and the resources keep what they describe."""
    if not has_legacy_state(instance):
        return False
    pulled = subprocess.run(
        [*terraform.command(), "state", "pull"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if pulled.returncode != 0:
        raise terraform.TerraformError("terraform state pull failed", pulled.stderr)
    state = json.loads(pulled.stdout)
    if not strip_legacy_inputs(state):
        return False
    state["serial"] = int(state.get("serial") or 0) + 1
    path = folder / "forget-legacy.tfstate"
    path.write_text(json.dumps(state, indent=2))
    try:
        terraform.run(["state", "push", path.name], folder, env)
    finally:
        path.unlink(missing_ok=True)
    return True


def upgrade_snapshot(instance: Instance, color: str, run_key: object) -> str:
    return f"{instance.slug}-{color}-r{run_key}"


def _hcl(value: Any) -> Any:
    """Python -> the form hcl2.dumps expects: strings already quoted (and `${` escaped)."""
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, dict):
        return {key: _hcl(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_hcl(item) for item in value]
    return value


def tfvars_text(variables: dict[str, Any]) -> str:
    return terraform.fmt(hcl2.dumps(_hcl(variables)))


def digest(variables: dict[str, Any], module: Path | str) -> str:
    """What a saved plan was made from: its variables and the module's source."""
    h = hashlib.sha256(json.dumps(variables, sort_keys=True).encode())
    for path in sorted(Path(module).glob("*.tf")):
        h.update(path.read_bytes())
    return h.hexdigest()


def module_dir() -> Path:
    return MODULES / ("gcp" if settings.PROVISIONING_BACKEND == "gcp" else "sandbox")


def render(
    instance: Instance,
    variables: dict[str, Any],
    folder: Path | None = None,
    imports: str = "",
) -> tuple[Path, dict[str, str]]:
    """Write the workspace (in the instance's own folder unless told another), with `imports`
    as its imports.tf (the `import` blocks of an adopted instance's first run; none: no such
    file); returns (directory, environment for terraform)."""
    folder = folder or workspace_dir(instance)
    folder.mkdir(parents=True, exist_ok=True)
    if imports:
        (folder / "imports.tf").write_text(terraform.fmt(imports))
    else:
        (folder / "imports.tf").unlink(missing_ok=True)
    variables = without_legacy(variables)
    pg = connection.vendor == "postgresql"
    backend = (
        f'  backend "pg" {{\n    schema_name = "{state_schema(instance)}"\n  }}\n'
        if pg
        else '  backend "local" {\n    path = "terraform.tfstate"\n  }\n'
    )
    main = (
        "# Written by the portal for this instance; edits are overwritten on the next run.\n"
        f"terraform {{\n{backend}}}\n\n"
        'module "instance" {\n'
        # A relative source: Terraform uses the module in place (an absolute path is copied).
        # Through a link in the workspace, so no plan names where this checkout lives.
        f'  source = "./{link_module(folder).name}"\n\n'
        + "".join(f"  {name} = var.{name}\n" for name in variables)
        + "}\n\n"
        + "".join(f'variable "{name}" {{}}\n' for name in variables)
        + "\n"
        + "".join(
            f'output "{name}" {{\n  value = module.instance.{name}\n}}\n'
            for name in (
                "instance_name",
                "instance_ip",
                "url",
                "project_id",
                "zone",
                "data_disk",
                "deployments",
            )
        )
    )
    (folder / "main.tf").write_text(terraform.fmt(main))
    (folder / "terraform.tfvars").write_text(tfvars_text(variables))
    cli_config = folder / "terraform.rc"
    cli_config.write_text("")
    env = {
        **terraform_environment(),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_CLI_CONFIG_FILE": os.environ.get("PORTAL_TF_CLI_CONFIG_FILE", str(cli_config)),
        **sandbox_environment(),
    }
    if pg:
        env["PG_CONN_STR"] = postgres_conn_str()
    return folder, env


def link_module(folder: Path) -> Path:
    """`folder`/module: a link to the module of the configured backend."""
    link, target = folder / "module", module_dir()
    if link.is_symlink() and Path(os.readlink(link)) != target:
        link.unlink()
    if not link.is_symlink():
        try:
            link.symlink_to(target, target_is_directory=True)
        except FileExistsError:  # another process made it meanwhile
            pass
    return link


# What Terraform and its providers may see of the worker's environment: the system basics, proxy
# and certificate settings, Google credentials, and Terraform's own variables. Never the
# portal's secrets (SECRET_KEY, DATABASE_URL, EMAIL_URL, Slack tokens...): the state backend gets
# its connection string as PG_CONN_STR alone.
ENV_ALLOWED = {
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT",
}
ENV_ALLOWED_PREFIXES = ("LC_", "TF_", "CLOUDSDK_")


def sandbox_environment() -> dict[str, str]:
    """How the sandbox module's provisioners run provisioning.sandbox.cli on this machine: this
    Python, this checkout on its path, and the sandbox Compute server. Environment, not
    variables: no plan, tfvars or state holds a local path (the gcp module ignores them)."""
    env = {"SANDBOX_PYTHON": sys.executable, "PYTHONPATH": str(Path(settings.BASE_DIR))}
    if settings.SANDBOX_COMPUTE_URL:
        env["SANDBOX_COMPUTE_URL"] = settings.SANDBOX_COMPUTE_URL
    return env


def terraform_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name in ENV_ALLOWED or name.startswith(ENV_ALLOWED_PREFIXES)
    }


def _libpq(value: object) -> str:
    """A value for a libpq key=value connection string: quoted when it has spaces, quotes or
    backslashes (a password may), with those escaped."""
    text = str(value)
    if text and not any(c in text for c in " '\\\t\n"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def postgres_conn_str() -> str:
    db = connection.settings_dict
    parts = {
        "host": db.get("HOST") or "localhost",
        "port": db.get("PORT") or 5432,
        "dbname": db["NAME"],
        "user": db.get("USER") or "postgres",
        "sslmode": db.get("OPTIONS", {}).get("sslmode") or "disable",
    }
    if db.get("PASSWORD"):
        parts["password"] = db["PASSWORD"]
    return " ".join(f"{key}={_libpq(value)}" for key, value in parts.items())
