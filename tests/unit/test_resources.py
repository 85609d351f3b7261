"""A local target's resource use (issue 21): CPU, memory, disk and descriptors of a process tree
found by its port, against a stand-in target that spends known amounts of each."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.engine.resources import Reading, TargetProcesses, window_figures
from tests.fabricate import make_run, points

MIB = 2**20
# The stand-in target: listens on a port, holds an allocation, and on each command spends a
# known amount of CPU (by its own clock), writes a known number of bytes to disk with fsync,
# opens files, or forks a child that spends CPU. It answers each command with a line.
STAND_IN = r"""
import os, socket, subprocess, sys, time
port, hold_mib, scratch = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
held = bytearray(hold_mib * 2**20)
held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touch every page
files, children = [], []
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "burn":
        burn(float(arg))
    elif cmd == "write":
        with open(os.path.join(scratch, "data.bin"), "wb") as f:
            f.write(os.urandom(int(arg))); f.flush(); os.fsync(f.fileno())
    elif cmd == "open":
        files += [open(os.path.join(scratch, f"f{i}"), "w") for i in range(int(arg))]
    elif cmd == "fork":
        code = f"import time\nend=time.process_time()+{arg}\nwhile time.process_time()<end: pass\n"
        code += "import sys\nprint('spent', flush=True)\nsys.stdin.read()\n"
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        children.append(child)
    print("done", flush=True)
"""


class StandIn:
    def __init__(self, tmp_path: Path, hold_mib: int) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", STAND_IN, str(self.port), str(hold_mib), str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def do(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def stand_in(tmp_path: Path):
    target = StandIn(tmp_path, hold_mib=200)
    yield target
    target.stop()


def _reader(port: int) -> TargetProcesses:
    target = TargetProcesses({port}, lambda: [])
    deadline = time.monotonic() + 10
    while not target.find():  # the listener shows in the socket table a moment later
        assert time.monotonic() < deadline, target.why
        time.sleep(0.05)
    return target


def test_cpu_memory_disk_and_descriptors_of_a_target_agree_with_what_it_spent(stand_in):
    target = _reader(stand_in.port)
    start = target.read()
    assert start is not None
    # Memory: the 200 MiB held, plus the interpreter's few MiB (within 10%).
    assert 200 * MIB <= start.mem_bytes <= 220 * MIB
    assert target.names and target.names[0].startswith("python")
    stand_in.do("burn 1.0")
    burnt = target.read()
    assert burnt is not None
    assert burnt.cpu_s - start.cpu_s == pytest.approx(1.0, rel=0.10)
    stand_in.do("write 20000000")  # making 20 MB of random bytes costs CPU too: read apart
    stand_in.do("open 40")
    end = target.read()
    assert end is not None
    assert end.disk_write_bytes - start.disk_write_bytes == pytest.approx(20_000_000, rel=0.10)
    assert start.fds is not None and end.fds is not None
    assert end.fds - start.fds == 40
    assert end.processes == start.processes == 1


def test_a_process_born_under_load_counts_all_it_spent_and_the_tree_is_read_whole(stand_in):
    target = _reader(stand_in.port)
    start = target.read()
    assert start is not None
    stand_in.do("fork 0.5")  # a child that spends half a CPU-second, then waits
    end = target.read()
    assert end is not None
    assert end.processes == 2
    assert end.cpu_s - start.cpu_s == pytest.approx(0.5, rel=0.10, abs=0.05)
    # Accumulated figures never go back, whoever exits.
    stand_in.do("burn 0.2")
    later = target.read()
    assert later is not None and later.cpu_s >= end.cpu_s + 0.15


def test_no_listener_says_why_and_reads_nothing():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    target = TargetProcesses({port}, lambda: [])
    assert not target.find()
    assert target.why == f"no process on this host listens on port {port}"
    assert target.read() is None
    none = TargetProcesses(set(), lambda: [])
    assert not none.find() and none.why == "the target names no port on this host"


def _reading(at, cpu_user, cpu_system, mem, written, fds=10):
    return Reading(at, cpu_user, cpu_system, mem, 0, written, fds, 1)


def test_window_figures_per_event_and_per_payload_byte():
    start = _reading(10.0, 1.0, 0.5, 100 * MIB, 1_000)
    middle = _reading(12.0, 2.0, 1.0, 140 * MIB, 2_000_000, fds=12)
    end = _reading(14.0, 3.0, 1.5, 120 * MIB, 4_001_000)
    figures = window_figures(
        start,
        end,
        [middle, end],
        acked_in_window=2_000,
        payload_bytes=1000.0,
        source="local",
        processes=["nats-server"],
        mem_kind="pss",
    )
    assert figures["cpu_s"] == 3.0
    assert figures["cpu_pct"] == 75.0  # 3 CPU-seconds over 4 s, of one core
    assert figures["cpu_s_per_mev"] == 1500.0  # 3 s per 2,000 events
    assert figures["mem_peak_bytes"] == 140 * MIB
    assert figures["mem_mean_bytes"] == 130 * MIB
    assert figures["disk_write_bytes"] == 4_000_000
    assert figures["disk_write_per_event"] == 2000.0
    assert figures["write_amplification"] == 2.0  # 4 MB written for 2 MB of payload
    assert figures["fds_peak"] == 12
    none = window_figures(
        start, end, [end], 0, 1000.0, source="local", processes=[], mem_kind="rss"
    )
    assert none["cpu_s_per_mev"] is None and none["write_amplification"] is None


def test_a_costlier_event_fails_the_gate_and_shows_in_compare(tmp_path):
    base = make_run(tmp_path, "base", points(kafka={"cpu_s_per_mev": 100.0}), seed=1)
    same = make_run(tmp_path, "same", points(kafka={"cpu_s_per_mev": 104.0}), seed=1)
    costly = make_run(tmp_path, "costly", points(kafka={"cpu_s_per_mev": 150.0}), seed=1)
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(costly), "--baseline", str(base)])
    assert result.exit_code == 1, result.output
    assert "FAIL  kafka  resources.cpu_s_per_mev" in result.output
    assert "50.0% worse" in result.output
    result = runner.invoke(app, ["check", str(same), "--baseline", str(base)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["compare", str(base), str(costly)], terminal_width=200)
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.output.splitlines() if "resources.cpu_s_per_mev" in line]
    assert "kafka" in row and "100" in row and "150" in row and "+50.0%" in row
    assert "worse" in row


def test_the_timeline_writes_a_row_per_interval_and_a_load_ending_early_still_ends_the_window(
    stand_in, tmp_path
):
    from bench.engine.resources import ResourceTimeline

    timeline = ResourceTimeline(_reader(stand_in.port), 0.2, 0.2, 10.0, tmp_path / "resources.csv")
    t0 = time.monotonic()
    assert timeline.open(t0)
    while time.monotonic() < t0 + 1.05:  # the coordinator polls every 50 ms
        timeline.poll(time.monotonic())
        time.sleep(0.05)
    stand_in.do("burn 0.3")
    timeline.close()  # the load ended 9 s before the window's nominal end
    lines = (tmp_path / "resources.csv").read_text().splitlines()
    assert lines[0].startswith("interval,t_s,phase,cpu_pct")
    phases = [line.split(",")[2] for line in lines[1:]]
    assert phases[0] == "warmup" and set(phases[1:]) == {"measure"}
    assert len(phases) >= 5
    figures = timeline.figures(acked_in_window=1000, payload_bytes=100.0)
    assert figures is not None
    assert figures["cpu_s"] == pytest.approx(0.3, abs=0.06)
    assert figures["cpu_s_per_mev"] == pytest.approx(figures["cpu_s"] * 1000, rel=0.01)
    assert figures["mem_peak_bytes"] >= 200 * MIB


def test_a_prometheus_endpoint_gives_cpu_memory_and_descriptors_and_leaves_disk_unmeasured(
    tmp_path,
):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench.engine.resources import RemoteTarget, ResourceTimeline
    from bench.engine.scrape import PrometheusEndpoint

    exposition = {"cpu": 10.0, "rss": 300 * MIB, "fds": 40}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (
                f"process_cpu_seconds_total {exposition['cpu']}\n"
                f"process_resident_memory_bytes {exposition['rss']}\n"
                f"process_open_fds {exposition['fds']}\n"
            ).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        source = RemoteTarget(PrometheusEndpoint(url))
        timeline = ResourceTimeline(source, 0.1, 0.0, 10.0, tmp_path / "resources.csv")
        t0 = time.monotonic()
        assert timeline.open(t0)
        timeline.poll(t0 + 0.01)  # the window starts
        exposition.update(cpu=12.5, rss=400 * MIB, fds=55)
        timeline.close()
    finally:
        server.shutdown()
    figures = timeline.figures(acked_in_window=10_000, payload_bytes=100.0)
    assert figures is not None and figures["source"] == "remote"
    assert figures["cpu_s"] == 2.5  # the process collector's cumulative CPU moved by 2.5 s
    assert figures["cpu_s_per_mev"] == 250.0  # 2.5 s per 10,000 events
    assert figures["mem_peak_bytes"] == 400 * MIB and figures["fds_peak"] == 55
    assert figures["disk_write_bytes"] is None and figures["write_amplification"] is None
    assert figures["broker_lag"] is None
    assert figures["metrics"]["cpu_s"] == {"start": 10.0, "end": 12.5}


def test_a_restarted_target_is_found_again_by_its_port(tmp_path):
    first = StandIn(tmp_path, hold_mib=8)
    target = _reader(first.port)
    try:
        assert target.read() is not None
    finally:
        first.stop()
    assert target.read() is None  # nothing listens on the port for now
    # The same port comes back under a new process (a restart).
    second = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, str(first.port), "8", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert second.stdout is not None and second.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while (reading := target.read()) is None:
            assert time.monotonic() < deadline, target.why
            time.sleep(0.05)
        assert reading.processes == 1 and target.roots[0].pid == second.pid
    finally:
        second.kill()
        second.wait(timeout=10)
