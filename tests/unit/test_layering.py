"""The house's layering, checked rather than described: no import cycle among radstream's modules,
counting the imports made inside functions (only `if TYPE_CHECKING:` blocks are exempt, they never
run). import-linter's contracts in pyproject.toml hold the direction between packages."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped |= {id(inner) for inner in ast.walk(node)}
    return skipped


def imported_modules(path: Path, name: str, modules: set[str]) -> set[str]:
    """The modules of `modules` that module `name` (at `path`) imports anywhere in its body (the
    longest known prefix of each)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped, found = _type_checking_only(tree), set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (REPO / "radstream").rglob("*.py")}
    return {name: imported_modules(path, name, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path: Path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    module = tmp_path / "mod.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import radstream.cli\n"
                      "def f():\n    from radstream.aws import iam\n")
    assert imported_modules(module, "radstream.mod", {"radstream.cli", "radstream.aws", "radstream.aws.iam"}) == {"radstream.aws.iam"}


def test_no_import_cycle_among_radstream_modules():
    graph = import_graph()
    assert "radstream.context" in graph and graph["radstream.context"], "the graph must see imports"
    assert cycles(graph) == []


def target_name_comparisons(path: Path) -> list[int]:
    """Lines where `<something>.target` is compared with a target's name ("sandbox", "aws")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = any(isinstance(s, ast.Attribute) and s.attr == "target" for s in sides)
            if named and any(isinstance(s, ast.Constant) and s.value in ("sandbox", "aws") for s in sides):
                found.append(node.lineno)
    return found


def test_only_the_targets_package_and_the_settings_ask_which_target_this_is(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text('if ctx.config.target == "sandbox":\n    pass\n')
    assert target_name_comparisons(probe) == [1]
    # The settings choose per-target defaults; everything else asks radstream.targets.
    allowed = {REPO / "radstream" / "config.py", *(REPO / "radstream" / "targets").rglob("*.py")}
    asking = {str(p.relative_to(REPO)): lines for p in (REPO / "radstream").rglob("*.py")
              if p not in allowed and (lines := target_name_comparisons(p))}
    assert asking == {}
