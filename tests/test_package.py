"""The package's shape: no import cycles, modules of readable size, one table per extension point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bidir_cli"
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST):
    """Every node of a module except those under ``if TYPE_CHECKING:``, which never run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from runtime_nodes(node)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that a file imports when it runs (top level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def test_no_import_cycles_counting_imports_inside_functions():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(files)) for name, path in files.items()}
    # A package's __init__ runs when any of its modules is imported: importing bidir_cli.losses.kernel
    # imports bidir_cli.losses first, which is not a cycle of the code's own making.
    for name in graph:
        graph[name] -= {p for p in graph if name.startswith(p + ".")}

    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    """The check above is only worth something if it can fail: two modules importing each other in functions."""
    (tmp_path / "a.py").write_text("if TYPE_CHECKING:\n    from . import c\ndef f():\n    from .b import g\n")
    (tmp_path / "c.py").write_text("from . import a\n")
    (tmp_path / "b.py").write_text("def g():\n    from . import a\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        files = {module_name(p): p for p in tmp_path.rglob("*.py")}
        graph = {name: imported_modules(path, set(files)) for name, path in files.items()}
    finally:
        PACKAGE = saved
    prefix = tmp_path.name
    assert graph == {f"{prefix}.a": {f"{prefix}.b"}, f"{prefix}.b": {f"{prefix}.a"}, f"{prefix}.c": {f"{prefix}.a"}}


def test_no_module_is_over_450_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_training_recipe_never_calls_a_command_function():
    tree = ast.parse((PACKAGE / "train" / "recipe.py").read_text(encoding="utf-8"))
    called = {
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name | ast.Attribute)
    }
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for alias in n.names}
    commands = {name for name in called | imported if name.endswith("_command")} - {"train_command"}
    assert not commands


# --- The parts and what each may import -------------------------------------------------------------------------

PARTS = ("runs", "config", "data", "losses", "models", "train", "eval", "compare", "experiment")
# part -> the parts it must never import (each rule the docstring of the part's __init__.py states)
FORBIDDEN = {
    "losses": set(PARTS) - {"losses"},  # the losses import no other part
    "config": set(PARTS) - {"config", "losses"},  # the schema knows the loss registry's names, nothing else
    "runs": set(PARTS) - {"runs"},  # what a run leaves on disk imports no recipe
    "compare": {"train", "eval", "losses", "models", "data", "experiment"},  # comparing never loads a model
    "train": {"experiment", "compare"},
    "eval": {"train", "compare", "experiment"},
    "data": {"train", "eval", "compare", "experiment"},
    "models": {"data", "losses", "train", "eval", "compare", "experiment"},
    "experiment": {"models", "losses", "data"},  # cells are runs: the experiment builds no model, loss or data
}


def part_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PARTS else None


def part_violations(package: Path) -> list[str]:
    files = {module_name(p): p for p in package.rglob("*.py")}
    found = []
    for name, path in sorted(files.items()):
        for imported in sorted(imported_modules(path, set(files))):
            here, there = part_of(name), part_of(imported)
            if here and there and there in FORBIDDEN.get(here, set()):
                found.append(f"{name} imports {imported} ({here} must not import {there})")
    return found


def test_every_part_imports_only_what_its_rules_allow():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} >= set(PARTS)
    assert part_violations(PACKAGE) == []


def test_the_part_rules_catch_a_violation(tmp_path):
    """Each rule can fail: a copy of the package where the experiment builds a model itself, and compare imports
    the evaluation, is refused naming both imports."""
    import shutil

    global PACKAGE
    copy = tmp_path / "bidir_cli"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "demo"))
    with (copy / "experiment" / "cells.py").open("a") as f:
        f.write("\n\ndef _base():\n    from ..models.build import build_model\n")
    with (copy / "compare" / "build.py").open("a") as f:
        f.write("\n\ndef _encode():\n    from ..eval.encode import encode\n")
    saved, PACKAGE = PACKAGE, copy
    try:
        found = part_violations(copy)
    finally:
        PACKAGE = saved
    assert "bidir_cli.experiment.cells imports bidir_cli.models.build (experiment must not import models)" in found
    assert "bidir_cli.compare.build imports bidir_cli.eval.encode (compare must not import eval)" in found


def test_every_part_says_what_it_owns_and_may_import():
    for part in PARTS:
        doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text(encoding="utf-8")))
        assert doc and ("import" in doc.lower()), part


def test_config_validation_and_the_cli_import_no_torch():
    code = "import sys, bidir_cli.config.schema, bidir_cli.cli, bidir_cli.losses; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "False"


def test_compare_formats_are_one_table_used_by_help_and_command():
    from typer.testing import CliRunner

    from bidir_cli.cli import app
    from bidir_cli.compare.render import FORMATS

    help_text = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "200"}).output
    assert all(name in help_text for name in FORMATS)
    result = CliRunner().invoke(app, ["compare", "x", "--format", "yaml"])
    assert result.exit_code == 2 and all(name in result.output for name in FORMATS)
