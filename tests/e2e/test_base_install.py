"""A base install must work (issue 15): the core install alone runs the memory target end to
end from any folder, each extra alone loads its own driver, and what the CLI says about a
missing extra names the extra. The extras that are "not installed" are refused at import
(tests/install_support.py); the run with live brokers per extra is in
tests/integration/test_extras_alone.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib.util import find_spec

import pytest

from bench.examples import SHIPPED, shipped_scenarios
from tests.cli_support import run_bench_captured
from tests.install_support import (
    DRIVER_EXTRAS,
    EXTRA_MODULES,
    ROOT,
    bench_with_extras,
    python_with_extras,
)

QUICK = ["--set", "scenario.duration=1s", "--set", "scenario.warmup=0s", "-q"]
REPORT_HINT = "pip install 'eventbench[report]'"


def test_the_blocker_refuses_every_extra_in_child_processes_too(tmp_path):
    modules = sorted(m for ms in EXTRA_MODULES.values() for m in ms)
    check = (
        "import importlib\n"
        "def importable(name):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        return False\n"
        "    return True\n"
        f"print([m for m in {modules!r} if importable(m)])\n"
    )
    # This process, and a Python it starts (as bench starts its workers).
    code = (
        f"import subprocess, sys\nexec({check!r})\n"
        f"subprocess.run([sys.executable, '-c', {check!r}])\n"
    )
    done = python_with_extras(tmp_path, (), code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "[]"]


@pytest.mark.slow
def test_core_install_runs_bench_run_from_an_empty_folder(tmp_path):
    """No scenario named, no extra installed, a folder with nothing in it: the shipped
    quickstart runs on the memory target, prints its table, writes summary.json and the
    .hlog files, skips the report with one line naming the extra, and exits 0."""
    empty = tmp_path / "empty"
    empty.mkdir()
    done = bench_with_extras(tmp_path, (), "run", *QUICK, cwd=empty)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "internal error" not in output and "Traceback" not in output
    assert "e2e p99" in done.stdout  # the summary table
    [run] = list((empty / "results").iterdir())
    assert (run / "000-memory" / "summary.json").is_file()
    assert list((run / "000-memory").glob("*.hlog"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert manifest["scenario"]["scenario"]["name"] == "quickstart"
    hints = [line for line in output.splitlines() if REPORT_HINT in line]
    assert len(hints) == 1, output
    assert not (run / "report.html").exists()


@pytest.mark.slow
def test_target_loads_only_the_selected_targets_drivers(tmp_path):
    """brokers.toml names kafka, rabbitmq and nats; --target memory needs none of them."""
    done = bench_with_extras(
        tmp_path,
        (),
        "run",
        "scenarios/brokers.toml",
        "--target",
        "memory",
        *QUICK,
        "--no-report",
        "-o",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = list((tmp_path / "r").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert [p["target"] for p in manifest["points"]] == ["memory"]


@pytest.mark.parametrize("extra", DRIVER_EXTRAS)
def test_each_extra_alone_loads_its_own_driver(tmp_path, extra):
    done = bench_with_extras(tmp_path, (extra,), "drivers")
    assert done.returncode == 0, done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    assert " ok " in rows[extra]
    assert " ok " in rows["memory"]
    for other in DRIVER_EXTRAS:
        if other != extra:
            # the hint keeps its extra (rich markup once ate "[kafka]")
            assert f"pip install 'eventbench[{other}]'" in rows[other], rows[other]


@pytest.mark.parametrize("extra", DRIVER_EXTRAS)
def test_each_extra_alone_validates_a_scenario_of_its_driver(tmp_path, extra):
    """brokers.toml and eventstore.toml with only this extra: its targets validate, the
    others' name the extra they need."""
    source = "scenarios/eventstore.toml" if extra == "postgres" else "scenarios/brokers.toml"
    done = bench_with_extras(tmp_path, (extra,), "validate", source)
    if extra == "postgres":
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 2
    wanted = next(o for o in ("kafka", "rabbitmq", "nats") if o != extra)
    assert f"pip install 'eventbench[{wanted}]'" in done.stderr, done.stderr


def test_report_commands_name_the_extra_they_need(tmp_path):
    for args in (["report", str(tmp_path)], ["compare", str(tmp_path), str(tmp_path)]):
        done = bench_with_extras(tmp_path, ("nats",), *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "internal error" not in done.stderr
        assert "needs pandas, which is not installed" in done.stderr
        assert REPORT_HINT in done.stderr


def test_debug_works_after_the_subcommand_too(tmp_path):
    missing = str(tmp_path / "missing.toml")
    for args in (["--debug", "run", missing], ["run", "--debug", missing], ["run", missing]):
        done = bench_with_extras(tmp_path, ("report",), *args)
        assert done.returncode != 0
        assert "No such option" not in done.stderr
        assert ("Traceback" in done.stderr) == ("--debug" in args), (args, done.stderr)


def test_init_copies_the_example_scenarios_and_never_overwrites(tmp_path, capsys):
    folder = tmp_path / "mine"
    code, out, _ = run_bench_captured(["init", str(folder)], capsys)
    assert code == 0
    assert f"copied {len(shipped_scenarios())} example scenarios" in out
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.toml"))
    assert names == sorted(p.relative_to(SHIPPED).as_posix() for p in shipped_scenarios())
    assert "quickstart.toml" in names and "brokers.toml" in names
    assert "failures/order_inversion.toml" in names
    for name in names:
        assert (folder / name).read_bytes() == (ROOT / "scenarios" / name).read_bytes()

    edited = folder / "quickstart.toml"
    edited.write_text("# mine\n")
    code, out, err = run_bench_captured(["init", str(folder)], capsys)
    assert code == 2
    assert re.search(r"error: .*: already exists \(and \d+ more\): nothing was copied", err)
    assert edited.read_text() == "# mine\n"


def test_the_shipped_scenarios_are_the_repository_folder():
    assert SHIPPED.resolve() == (ROOT / "scenarios").resolve()


@pytest.mark.slow
def test_the_wheel_carries_the_example_scenarios(tmp_path):
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip, str(ROOT), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = list(tmp_path.glob("eventbench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        for source in (ROOT / "scenarios").rglob("*.toml"):
            name = source.relative_to(ROOT / "scenarios").as_posix()
            assert archive.read(f"bench/scenarios/{name}") == source.read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(find_spec("locust") is None, reason="locust is not installed")
def test_bench_locust_removes_its_log_folder(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = bench_with_extras(
        tmp_path,
        ("locust",),
        "locust",
        "scenarios/quickstart.toml",
        "--workers",
        "1",
        *QUICK,
        "--no-report",
        "-o",
        str(tmp_path / "r"),
        env={"TMPDIR": str(scratch)},
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logs in" in done.stdout
    assert list(scratch.glob("eventbench-locust-*")) == []
