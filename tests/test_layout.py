"""The package's shape: command drivers in labor_cli/stages/ never import each other, and no function is longer than 70 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import labor_cli

STAGES = Path(labor_cli.__file__).parent / "stages"

# Drivers of drivers: the demo runs the whole chain, and bench times `labor extract` as a user
# runs it (its end-to-end rows).
MAY_RUN_STAGES = {"demo": {"evaluate", "extract", "label", "select", "train"}, "bench": {"extract"}}


def stages_imported_by(path: Path) -> set[str]:
    """The labor_cli.stages modules that ``path`` imports, anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:  # relative, inside labor_cli/stages/: from . import x, from .x import y
                module = "labor_cli.stages" + (f".{module}" if module else "")
            if module == "labor_cli.stages":
                found |= {alias.name for alias in node.names}
            elif module.startswith("labor_cli.stages."):
                found.add(module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("labor_cli.stages.")}
    return found


def test_no_stage_imports_another():
    stages = sorted(p for p in STAGES.glob("*.py") if p.stem != "__init__")
    assert len(stages) >= 10
    imports = {p.stem: stages_imported_by(p) - {p.stem} for p in stages}
    allowed = {name: MAY_RUN_STAGES.get(name, set()) for name in imports}
    assert {name: found - allowed[name] for name, found in imports.items() if found - allowed[name]} == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from labor_cli.stages.extract import run_extract\n    from . import select\n")
    assert stages_imported_by(source) == {"extract", "select"}


def test_design_md_layout_is_the_trees_import_graph():
    """docs/design.md's layout table is generated from the tree; `make design` rewrites it."""
    import import_graph

    design = import_graph.DESIGN.read_text()
    assert import_graph.rewritten(design) == design, "docs/design.md's layout is stale: run `make design`"


def test_the_import_graph_has_layers_and_refuses_a_cycle():
    import import_graph

    found = {"a.py": {"imports": {"b.py"}}, "b.py": {"imports": set()}, "c.py": {"imports": {"a.py", "b.py"}}}
    assert import_graph.layers(found) == {"a.py": 1, "b.py": 0, "c.py": 2}
    found["b.py"]["imports"] = {"c.py"}
    with pytest.raises(ValueError, match="import cycle"):
        import_graph.layers(found)
    assert import_graph.room_of("labor_cli.artifacts.masks") == "artifacts/"
    assert import_graph.room_of("labor_cli.stages.extract") == "stages/extract.py"
    assert import_graph.room_of("labor_cli.data") == "data/"


LONGEST_FUNCTION = 70  # lines, docstring included; beyond it a function is split (ruff checks arguments and branches)


def long_functions(path: Path) -> list[str]:
    """The functions (and methods) in ``path`` longer than LONGEST_FUNCTION lines, as NAME:LINE (LENGTH)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > LONGEST_FUNCTION:
                found.append(f"{node.name}:{node.lineno} ({length})")
    return found


def test_no_function_in_the_package_is_longer_than_70_lines():
    package = Path(labor_cli.__file__).parent
    too_long = {str(p.relative_to(package)): long_functions(p) for p in sorted(package.rglob("*.py"))}
    assert {path: found for path, found in too_long.items() if found} == {}


def test_the_length_check_counts_a_function_from_def_to_its_last_line(tmp_path):
    source = tmp_path / "x.py"
    body = "".join(f"x{i} = {i}\n" for i in range(70))
    indented = body.replace("x", "    x")
    method = body.replace("x", "        x")
    source.write_text(
        f"def long():\n{indented}\n\ndef short():\n    return 1\n\n\nclass C:\n    def method(self):\n{method}"
    )
    assert long_functions(source) == ["long:1 (71)", "method:79 (71)"]
