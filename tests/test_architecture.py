"""The floors of the package (README, "Architecture"), read from the import graph with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dltools"

# floor -> the floors it may import (besides itself and dltools.errors)
ALLOWED = {
    "io": {"raster"},
    "raster": set(),
    "engines": {"raster"},
    "models": {"io", "raster", "engines", "figures"},
    "figures": {"io"},
    "gui": {"io", "figures"},
    "synthetic": {"io", "raster"},
    "spectral": {"io", "raster", "engines", "models", "figures", "scale"},
    "pipeline": {"io", "raster", "engines", "models", "figures", "gui", "spectral", "scale"},
    "server": {"io", "raster", "engines", "models", "figures", "spectral", "pipeline", "scale"},
    "scale": {"io", "raster"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``dltools`` module that ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {name for name in found if name.split(".")[0] == "dltools"}


def floor(module: str) -> str | None:
    """``dltools.<floor>.x`` -> floor; top-level modules (errors, __main__) have none."""
    parts = module.split(".")
    return (
        parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None
    )


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if floor(module_name(p)) not in {"cli", None})
MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def test_every_floor_is_known() -> None:
    assert {floor(module_name(p)) for p in LIBRARY} <= set(ALLOWED)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: module_name(p))
def test_imports_go_down_the_floors(path: Path) -> None:
    own = floor(module_name(path))
    wrong = []
    for name in imported_modules(path):
        target = floor(name)
        if name in MODULES and target not in {own, None} and target not in ALLOWED[own]:
            wrong.append(name)
    assert not wrong, f"{module_name(path)} ({own}/) may not import {sorted(wrong)}"


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "pipeline").glob("*.py")), ids=lambda p: module_name(p)
)
def test_a_step_never_imports_another_step(path: Path) -> None:
    steps = {
        name
        for name in imported_modules(path)
        if name.startswith("dltools.pipeline.") and name in MODULES
    }
    assert steps <= {module_name(path)}, f"{module_name(path)} imports {sorted(steps)}"


def test_the_graph_reader_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from dltools.cli import main\n    import dltools.io.geo\n")
    assert imported_modules(source) >= {"dltools.cli", "dltools.io.geo"}
