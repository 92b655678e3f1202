"""One folder of the older Terraform set-up: what it gives the gcp module, checked against the
module's types and the portal's naming rules.

What Terraform would pass the module is what counts, because that is what built the
infrastructure the instance adopts:

1. The folder's `.tf` files and its `terraform.tfvars` are parsed with python-hcl2.
2. The `module` block (the only one, or the one whose source ends in `gcp`) gives the module's
   variables; a `var.<name>` in it is read from terraform.tfvars, else from the folder's
   `variable "<name>"` default. A literal in the module block wins over terraform.tfvars, as in
   Terraform, where tfvars only set the folder's own variables.
3. A folder without a module block is read as the team's usual layout: terraform.tfvars holds
   the module's variables themselves.
4. Variables not given take the module's defaults (provisioning/terraform/modules/gcp).
5. `labels` (not a module variable; read from the module block or terraform.tfvars) may name
   the `customer` (else the folder's name) and the `category`.
"""

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from provisioning import zones
from provisioning.adoption.hcl import Context, Problem, evaluate, key_text
from provisioning.models import MACHINE_TYPES, PROJECT_ID_PATTERN, SLUG_PATTERN, project_id_for
from provisioning.workspace import MODULES

VARIABLES_TF = MODULES / "gcp" / "variables.tf"
TFVARS = "terraform.tfvars"
LABELS = "labels"
# Arguments of a module block that are not the module's variables.
META_ARGUMENTS = {"source", "version", "providers", "depends_on"}
REPEATING = {"count", "for_each"}
# The module's own rule for a slug (variables.tf), stricter than the database's SLUG_PATTERN.
MODULE_SLUG = re.compile(r"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$")
COLOR = re.compile(r"^[a-z]{1,10}$")
PORTAL_COLORS = ("blue", "green")  # provisioning/workspace.COLORS: the upgrade switches them
VERSION = re.compile(r"^v?([0-9]+\.[0-9]+\.[0-9]+)$")
REQUIRED = object()  # a module variable without a default
HCL = SerializationOptions(with_comments=False)

# The type expressions of variables.tf, and how a value of each is recognised and named.
TYPES = {
    "string": "a string",
    "number": "a number",
    "bool": "true or false",
    "${list(string)}": "a list of strings",
    "${map(object({from_snapshot = optional(string)}))}": (
        "a map of deployment colors to { from_snapshot = optional string }"
    ),
}


@dataclass(frozen=True)
class Description:
    """What one folder says of one instance: every module variable (defaults filled in), and
    the portal's own reading of the labels."""

    folder: str
    path: str
    slug: str
    customer: str
    category: str
    variables: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def suspended(self) -> bool:
        return not self.variables["deployments"]

    @property
    def version(self) -> str:
        match = VERSION.match(self.variables["instance_version"])
        assert match is not None  # checked by read()
        return match.group(1)


class FolderSkipped(Exception):
    """The folder cannot be adopted; the message is the reason (and `slug`, when it was read)."""

    def __init__(self, reason: str, slug: str = "") -> None:
        super().__init__(reason)
        self.slug = slug


@cache
def module_variables() -> dict[str, tuple[str, Any]]:
    """{name: (type expression, default or REQUIRED)} of the gcp module's variables."""
    parsed = hcl2.loads(VARIABLES_TF.read_text(), serialization_options=HCL)
    found: dict[str, tuple[str, Any]] = {}
    for block in parsed.get("variable", []):
        for label, body in block.items():
            name = key_text(label)
            default = body.get("default", REQUIRED)
            if default is not REQUIRED:
                default = evaluate(default, f"variable {name}", Context(None))
            found[name] = (body["type"], default)
    return found


def read(path: Path) -> Description:
    """The instance the folder at `path` describes; FolderSkipped says why not."""
    files = _parse_all(path)
    tfvars = files.pop(TFVARS, None)
    blocks: dict[str, list[dict[str, Any]]] = {}
    for parsed in files.values():
        for kind, items in parsed.items():
            blocks.setdefault(kind, []).extend(items)
    problems: list[str] = []
    given = _tfvars(tfvars, problems)
    defaults = _variable_defaults(blocks.get("variable", []))
    module = _module_block(blocks.get("module", []), tfvars is not None)
    notes: list[str] = []
    if module is None:  # the team's layout: terraform.tfvars holds the module's variables
        arguments = dict(given)
        unknown = set(arguments) - set(module_variables()) - {LABELS}
        notes += [
            f"{TFVARS} sets {name}, which is not a variable of the gcp module"
            for name in sorted(unknown)
        ]
        for name in unknown:
            del arguments[name]
    else:
        label, body = module
        arguments = _module_arguments(label, body, {**defaults, **given}, given, problems, notes)
    if problems:
        slug = arguments.get("slug")
        raise FolderSkipped("; ".join(problems), slug if isinstance(slug, str) else "")
    return _describe(path, arguments, notes)


def _parse_all(path: Path) -> dict[str, dict[str, Any]]:
    """Every .tf file and terraform.tfvars of the folder, parsed; FolderSkipped naming the file,
    line and column of the first that does not parse."""
    names = sorted(p.name for p in path.glob("*.tf") if p.is_file())
    if (path / TFVARS).is_file():
        names.append(TFVARS)
    if not names:
        raise FolderSkipped(f"no .tf file and no {TFVARS}: nothing describes an instance")
    parsed = {}
    for name in names:
        try:
            parsed[name] = hcl2.loads((path / name).read_text(), serialization_options=HCL)
        except UnexpectedInput as exc:
            raise FolderSkipped(
                f"{name}: the HCL does not parse (line {exc.line}, column {exc.column}: "
                f"{_unexpected(exc)})"
            ) from None
        except OSError as exc:
            raise FolderSkipped(f"{name}: cannot be read ({exc.strerror})") from None
        except Exception as exc:  # noqa: BLE001 - whatever else the parser raises: unreadable
            raise FolderSkipped(f"{name}: the HCL does not parse ({exc})") from None
    return parsed


def _unexpected(exc: UnexpectedInput) -> str:
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return "unexpected end of file"
        return f"unexpected {str(exc.token.value).strip()[:40]!r}"
    if isinstance(exc, UnexpectedCharacters):
        return f"unexpected character {exc.char!r}"
    if isinstance(exc, UnexpectedEOF):
        return "unexpected end of file"
    return str(exc).strip().splitlines()[0]


def _tfvars(parsed: dict[str, Any] | None, problems: list[str]) -> dict[str, Any]:
    values = {}
    for name, raw in (parsed or {}).items():
        try:
            values[name] = evaluate(raw, f"{TFVARS}: {name}", Context(None))
        except Problem as exc:
            problems.append(str(exc))
    return values


def _variable_defaults(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The folder's variable defaults; one that cannot be read is a Problem, raised only if
    the module block uses it (an unused one is no reason to skip the folder)."""
    defaults: dict[str, Any] = {}
    for block in blocks:
        for label, body in block.items():
            name = key_text(label)
            if "default" in body:
                try:
                    defaults[name] = evaluate(
                        body["default"], f'variable "{name}": default', Context(None)
                    )
                except Problem as exc:
                    defaults[name] = exc
    return defaults


def _module_block(
    blocks: list[dict[str, Any]], has_tfvars: bool
) -> tuple[str, dict[str, Any]] | None:
    modules = [(key_text(label), body) for block in blocks for label, body in block.items()]
    if not modules:
        if not has_tfvars:
            raise FolderSkipped(f"no module block and no {TFVARS}: nothing describes an instance")
        return None
    if len(modules) == 1:
        return modules[0]
    calling_gcp = [
        (label, body)
        for label, body in modules
        if re.search(r"(^|[/:])gcp/?(\?.*)?$", _source(body))
    ]
    if len(calling_gcp) != 1:
        names = ", ".join(label for label, _ in modules)
        raise FolderSkipped(
            f"{len(modules)} module blocks ({names}) and not exactly one calls the gcp module "
            "(a source ending in gcp)"
        )
    return calling_gcp[0]


def _source(body: dict[str, Any]) -> str:
    try:
        source = evaluate(body.get("source", '""'), "source", Context(None))
    except Problem:
        return ""
    return source if isinstance(source, str) else ""


def _module_arguments(
    label: str,
    body: dict[str, Any],
    variables: dict[str, Any],
    tfvars: dict[str, Any],
    problems: list[str],
    notes: list[str],
) -> dict[str, Any]:
    where = f'module "{label}"'
    repeating = sorted(REPEATING & set(body))
    if repeating:
        problems.append(
            f"{where} uses {' and '.join(repeating)}: it describes more than one instance"
        )
    known = set(module_variables()) | {LABELS}
    context = Context(variables)
    arguments = {}
    for name, raw in body.items():
        if name == "__is_block__" or name in META_ARGUMENTS | REPEATING:
            continue
        if name not in known:
            problems.append(f"{where}: {name} is not a variable of the gcp module")
            continue
        try:
            arguments[name] = evaluate(raw, f"{where}: {name}", context)
        except Problem as exc:
            problems.append(str(exc))
    for name in sorted(set(tfvars) - context.used):
        if name in module_variables() and name in arguments:
            notes.append(
                f"{TFVARS} sets {name}, but the module block gives it as a literal, which "
                "wins (as in Terraform)"
            )
        elif name in module_variables():
            notes.append(
                f"{TFVARS} sets {name}, but the module block does not pass it on: the module's "
                "default applies (as in Terraform)"
            )
    if LABELS not in arguments and LABELS in tfvars:
        arguments[LABELS] = tfvars[LABELS]
    return arguments


def _describe(path: Path, arguments: dict[str, Any], notes: list[str]) -> Description:
    problems: list[str] = []
    labels = arguments.pop(LABELS, None)
    if labels is None:
        labels = {}
    elif not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        problems.append(f"labels: expected a map of strings, found {_describe_value(labels)}")
        labels = {}
    for name, value in arguments.items():
        problem = _type_problem(name, value)
        if problem:
            problems.append(problem)
    if problems:
        slug = arguments.get("slug")
        raise FolderSkipped("; ".join(problems), slug if isinstance(slug, str) else "")
    variables = {
        name: copy.deepcopy(default)
        for name, (_, default) in module_variables().items()
        if default is not REQUIRED
    }
    variables.update({name: value for name, value in arguments.items() if value is not None})
    if "slug" not in variables:
        variables["slug"] = path.name
        notes.append(f"slug is not set: the folder's name, {path.name}, is taken")
    derived_project = "project_id" not in variables
    if derived_project:
        variables["project_id"] = project_id_for(variables["slug"])
        notes.append(f"project_id is not set: the portal's {variables['project_id']} is taken")
    if "region" not in arguments:
        variables["region"] = variables["zone"].rsplit("-", 1)[0]
    problems = _rule_problems(variables, derived_project)
    customer = labels.get("customer", "").strip() or path.name
    if len(customer) > 200:
        problems.append("labels.customer: longer than 200 characters")
    if problems:
        raise FolderSkipped("; ".join(problems), variables["slug"])
    return Description(
        folder=path.name,
        path=str(path),
        slug=variables["slug"],
        customer=customer,
        category=labels.get("category", "").strip(),
        variables=variables,
        notes=notes,
    )


def _type_problem(name: str, value: Any) -> str:
    if value is None:  # null: the module's default, as in Terraform
        return ""
    kind = module_variables()[name][0]
    ok = {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "${list(string)}": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "${map(object({from_snapshot = optional(string)}))}": isinstance(value, dict)
        and all(
            isinstance(disk, dict)
            and set(disk) <= {"from_snapshot"}
            and isinstance(disk.get("from_snapshot", ""), str | None)
            for disk in value.values()
        ),
    }.get(kind)
    if ok is None:
        raise AssertionError(f"variables.tf: type {kind} of {name} is new to the import")
    return "" if ok else f"{name}: expected {TYPES[kind]}, found {_describe_value(value)}"


def _describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, list):
        return f"a list ({', '.join(_describe_value(v) for v in value[:3])})"
    return "a map"


def _rule_problems(v: dict[str, Any], derived_project: bool) -> list[str]:
    """The module's validations and the portal's rules, on values of the right types."""
    problems = []
    slug, project = v["slug"], v["project_id"]
    slug_ok = bool(MODULE_SLUG.match(slug) and re.match(SLUG_PATTERN, slug))
    if not slug_ok:
        problems.append(
            f'slug "{slug}" breaks the naming rules: 1-24 lowercase letters, digits and hyphens, '
            "starting with a letter and not ending with a hyphen"
        )
    if (slug_ok or not derived_project) and not re.match(PROJECT_ID_PATTERN, project):
        problems.append(
            f'project_id "{project}" is not a GCP project id: 6-30 lowercase letters, digits and '
            "hyphens, starting with a letter and not ending with a hyphen"
        )
    if v["zone"] not in zones.zones():
        problems.append(f'zone "{v["zone"]}" is not a Compute zone (such as us-central1-f)')
    elif not v["zone"].startswith(f"{v['region']}-"):
        problems.append(f'zone "{v["zone"]}" is not in region "{v["region"]}"')
    if v["machine_type"] not in MACHINE_TYPES:
        problems.append(
            f'machine_type "{v["machine_type"]}" is not one the portal runs '
            f"({', '.join(MACHINE_TYPES)})"
        )
    if not VERSION.match(v["instance_version"]):
        problems.append(
            f'instance_version "{v["instance_version"]}" is not a release such as 6.1.0'
        )
    size = v["data_disk_size"]
    if size < 10 or size != int(size):
        problems.append(f"data_disk_size: a whole number of GB, at least 10 (found {size})")
    deployments, disks = v["deployments"], v["disks"]
    if len(deployments) > 1:
        problems.append(
            f"deployments {deployments}: more than one (an upgrade half done); the portal "
            "adopts an instance with one deployment, or none (suspended)"
        )
    for color in deployments:
        if not COLOR.match(color) or color not in PORTAL_COLORS:
            problems.append(f'deployments: "{color}" is not a color the portal uses (blue, green)')
    if set(disks) != set(deployments):
        problems.append(
            f"disks ({', '.join(disks) or 'none'}) must be the data disks of the deployments "
            f"({', '.join(deployments) or 'none'}): one per deployment, none when suspended"
        )
    ranges = v["allowed_customer_ip_ranges"]
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            problems.append(f'allowed_customer_ip_ranges: "{cidr}" is not a CIDR range ({exc})')
    if len(ranges) > 10:
        problems.append("allowed_customer_ip_ranges: more than 10 ranges")
    if not v["public"] and not ranges:
        problems.append("public = false needs at least one range in allowed_customer_ip_ranges")
    low, high = v["executor_min_replicas"], v["executor_max_replicas"]
    if low < 0 or high < low or low != int(low) or high != int(high):
        problems.append(
            f"executor replicas {low}-{high}: whole numbers, the maximum at least the minimum"
        )
    return problems
