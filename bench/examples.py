"""The example scenarios that ship inside the package (``bench/scenarios``, the repository's
``scenarios/`` folder): found by name for ``bench run`` without arguments, and copied out for
editing by ``bench init``."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.errors import ScenarioError

SHIPPED = Path(__file__).resolve().parent / "scenarios"


def shipped_scenarios() -> list[Path]:
    """Every example scenario file, its folder's (failures/…) included."""
    return sorted(SHIPPED.rglob("*.toml"))


def scenario_path(relative: Path) -> Path:
    """``relative`` from the working directory when it is there (a copy from ``bench init``
    wins), else the copy shipped with eventbench."""
    for candidate in (relative, SHIPPED / relative.name):
        if candidate.is_file():
            return candidate
    raise ScenarioError(
        str(relative), None, "not found", hint="name a scenario file, or reinstall eventbench"
    )


def copy_examples(folder: Path) -> list[Path]:
    """Copy the example scenarios into ``folder`` (created if need be). Nothing is copied when
    any of them is there already: a file someone edited is never overwritten."""
    sources = shipped_scenarios()
    if not sources:
        raise ScenarioError(
            str(SHIPPED), None, "no example scenarios found", hint="reinstall eventbench"
        )
    if folder.exists() and not folder.is_dir():
        raise ScenarioError(str(folder), None, "is a file, not a folder")
    relative = [source.relative_to(SHIPPED) for source in sources]
    taken = [folder / name for name in relative if (folder / name).exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise ScenarioError(
            str(taken[0]),
            None,
            f"already exists{more}: nothing was copied",
            hint="move it away, or copy into another folder: bench init OTHER_FOLDER",
        )
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for source, name in zip(sources, relative, strict=True):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        copied.append(target)
    return copied
