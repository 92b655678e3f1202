"""Values as python-hcl2 (8.x) gives them, read the way Terraform reads them.

python-hcl2 keeps a string literal with its quotes and escapes (`"\\"acme\\""`) and gives any
other expression as `${...}` (`var.machine_type` -> `"${var.machine_type}"`). `evaluate` turns
such a value into plain Python, resolving `var.<name>` references (alone, or inside a string
template) from the variables it is given. Anything else a folder might compute (locals,
functions, other modules' outputs, template directives, heredocs) is not evaluated: it is a
Problem naming the expression, so the folder is skipped rather than read wrong.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Problem(Exception):
    """A value that cannot be read; the message says where and why."""


VAR_REFERENCE = re.compile(r"^var\.([A-Za-z_][A-Za-z0-9_-]*)$")
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


@dataclass
class Context:
    """What `var.<name>` means while evaluating (None: no reference may appear, as in a
    terraform.tfvars or a variable's default), and which names were used."""

    variables: Mapping[str, Any] | None
    used: set[str] = field(default_factory=set)


def evaluate(value: Any, where: str, context: Context) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list):
        return [evaluate(item, f"{where}[{index}]", context) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            key_text(key): evaluate(item, f"{where}.{key_text(key)}", context)
            for key, item in value.items()
            if key != "__is_block__"
        }
    if isinstance(value, str):
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            if value.startswith('"<<'):
                raise Problem(f"{where}: a heredoc string, which the import does not read")
            return _template(value[1:-1], where, context)
        if value.startswith("${") and value.endswith("}"):
            return _expression(value[2:-1], where, context)
    raise Problem(f"{where} = {value!r}: not a value the import can read")


def key_text(key: str) -> str:
    """A map key or block label: quoted ones lose their quotes."""
    return key[1:-1] if len(key) >= 2 and key.startswith('"') and key.endswith('"') else key


def _expression(text: str, where: str, context: Context) -> Any:
    match = VAR_REFERENCE.match(text.strip())
    if match is None:
        raise Problem(
            f"{where} = {text.strip()}: only references to variables (var.<name>, set in "
            "terraform.tfvars or by a default) are read; this expression cannot be resolved"
        )
    name = match.group(1)
    if context.variables is None:
        raise Problem(f"{where} = var.{name}: a reference where only a literal value may stand")
    if name not in context.variables:
        raise Problem(
            f"{where} = var.{name}: var.{name} is set neither in terraform.tfvars nor by a "
            "default, so it cannot be resolved"
        )
    context.used.add(name)
    value = context.variables[name]
    if isinstance(value, Problem):  # a default that could not be read, used here
        raise Problem(f"{where} = var.{name}: {value}")
    return value


def _template(body: str, where: str, context: Context) -> Any:
    """A quoted string: escapes decoded, `${var.x}` interpolated. A string that is a single
    interpolation and nothing else gives the variable's own value (as Terraform does)."""
    parts: list[str | tuple[str]] = []
    text: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            following = body[i + 1]
            if following in ESCAPES:
                text.append(ESCAPES[following])
                i += 2
                continue
            width = {"u": 4, "U": 8}.get(following)
            if width and re.fullmatch(r"[0-9A-Fa-f]+", body[i + 2 : i + 2 + width] or "x"):
                text.append(chr(int(body[i + 2 : i + 2 + width], 16)))
                i += 2 + width
                continue
        if body.startswith(("$${", "%%{"), i):
            text.append(body[i + 1 : i + 3])
            i += 3
            continue
        if body.startswith("%{", i):
            raise Problem(
                f"{where}: a template directive (%{{...}}), which the import does not read"
            )
        if body.startswith("${", i):
            end = _closing_brace(body, i + 2)
            if end < 0:
                raise Problem(f"{where}: an interpolation without its closing brace")
            parts.append("".join(text))
            text = []
            parts.append((body[i + 2 : end],))
            i = end + 1
            continue
        text.append(char)
        i += 1
    parts.append("".join(text))
    pieces = [part for part in parts if part != ""]
    if len(pieces) == 1 and isinstance(pieces[0], tuple):
        return _expression(pieces[0][0], where, context)
    out = []
    for part in pieces:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _expression(part[0], where, context)
        if isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, str | int | float):
            out.append(str(value))
        else:
            raise Problem(f"{where}: interpolates ${{{part[0].strip()}}}, which is not a string")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing an interpolation whose body starts at `start` (-1: none)."""
    depth, i, quoted = 0, start, False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1
