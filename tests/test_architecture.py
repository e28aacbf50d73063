"""The floors of the package (README, "Architecture"), read from the import graph with ast."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import pytest

from dltools.cli import STEPS

PACKAGE = Path(__file__).resolve().parent.parent / "dltools"

# floor -> the floors it may import (besides itself and dltools.errors)
ALLOWED = {
    "io": {"raster"},
    "raster": set(),
    "engines": {"raster"},
    "models": {"io", "raster", "engines", "figures"},
    "figures": {"io"},
    "gui": {"io", "raster", "figures"},
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


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and its sub-commands' parsers, at any depth."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += parsers(sub)
    return found


def help_problems(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """The options of ``parser`` (and its sub-commands) that write a number as their default
    into their help text, and those whose --help does not show their default."""
    written, silent = [], []
    for each in parsers(parser):
        formatter = each.formatter_class(each.prog)
        for action in each._actions:
            if action.default in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            name = f"{each.prog} {action.option_strings[-1]}"
            if re.search(r"default:? -?\.?\d", action.help or ""):
                written.append(name)
            elif action.nargs != 0 and "default" not in formatter._get_help_string(action):
                silent.append(name)
    return written, silent


@pytest.mark.parametrize("step", sorted(STEPS))
def test_help_shows_every_default_from_the_parser(step: str) -> None:
    """Every option with a default says it in --help, from the parser's value (a number
    written into a help text would drift from it); options whose default depends on others
    (parser default None, e.g. retrain's recipe or --legacy) state theirs in words."""
    parser = importlib.import_module(f"dltools.cli.{STEPS[step][0]}").build_parser()
    assert help_problems(parser) == ([], [])


def test_the_help_check_finds_written_and_silent_defaults() -> None:
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (default: 5)")
    parser.add_argument("--rate", type=float, default=0.1, help="learning rate")
    parser.add_argument("--name", default="run", help="run folder (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="say less")
    assert help_problems(parser) == (["p --epochs"], ["p --rate"])
