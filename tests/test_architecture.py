"""The shape of the code: no import cycles, dependencies that point one way.

The graph is read from the source (every import statement, including those inside functions, so
a lazy import that hides a cycle still counts), not from what happens to be loaded at runtime.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "portal",
    "requests_app",
    "provisioning",
    "releases",
    "incidents",
    "dashboards",
    "audit",
    "accounts",
)


def _modules():
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name):
    """The project module an imported name lands in (a.b.c may be the attribute c of a.b)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module):
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved and resolved != module:
                found.add(resolved)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def strongly_connected(graph):
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_graph_sees_lazy_imports():
    # Jobs are enqueued by their dotted path: nothing imports the jobs modules, not even
    # lazily, but the scheduler's registry (the composition root)...
    for jobs in ("provisioning.jobs", "requests_app.jobs", "incidents.jobs"):
        importers = {m for m, targets in GRAPH.items() if jobs in targets}
        assert importers <= {"portal.cron"}, (jobs, importers)
    # ...while a function-level import (the app registry's signal hookup) is an edge.
    assert "requests_app.workflow" in GRAPH["requests_app.apps"]


def test_there_are_no_import_cycles():
    cycles = [sorted(group) for group in strongly_connected(GRAPH) if len(group) > 1]
    assert cycles == []


def test_a_found_cycle_would_be_reported():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [sorted(g) for g in strongly_connected(graph) if len(g) > 1] == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "low, high",
    [
        ("provisioning", "requests_app"),
        ("provisioning", "releases"),
        ("provisioning", "dashboards"),
        ("requests_app", "releases"),
        ("requests_app", "dashboards"),
        ("releases", "dashboards"),
        # Incidents sit beside releases: over requests_app (the SLA engine, notifications) and
        # provisioning (instances), under dashboards; the instance page shows them through a
        # template tag, not an import.
        ("provisioning", "incidents"),
        ("requests_app", "incidents"),
        ("releases", "incidents"),
        ("incidents", "releases"),
        ("incidents", "dashboards"),
    ],
)
def test_dependencies_point_one_way(low, high):
    """Provisioning tells of its runs through signals; the request domain knows nothing of the
    pages built over it."""
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == high)
        for module, targets in GRAPH.items()
        if module.split(".")[0] == low and any(t.split(".")[0] == high for t in targets)
    }
    assert offenders == {}


def test_the_sla_calendar_is_pure_python():
    tree = ast.parse(MODULES["requests_app.sla.calendar"].read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {
        "django",
        "requests_app",
        "provisioning",
        "releases",
        "portal",
        "dashboards",
    }


def test_run_states_change_only_through_run_methods():
    """Every write of a run's `state` is one of Run's conditional moves (claim, confirm, ...)."""
    writers = []
    for module, path in MODULES.items():
        if module == "provisioning.models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
                and any(k.arg == "state" for k in node.keywords)
                and "Run" in ast.unparse(node.func.value)
            ):
                writers.append(f"{module}:{node.lineno}")
    assert writers == []
