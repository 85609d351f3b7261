"""The host's CPU over the window: the client, a local target, and host-bound (issue 16)."""

import socket
import subprocess
import sys
import time

import pytest
from pydantic import SecretStr

from bench.engine.host import HOST_SATURATED_PCT, HostSampler, host_bound, local_ports


@pytest.mark.parametrize(
    ("settings", "ports"),
    [
        ({"servers": ["nats://127.0.0.1:4222", "nats://10.0.0.5:4223"]}, {4222}),
        ({"url": "amqp://guest:guest@127.0.0.1:5672/"}, {5672}),
        ({"url": "amqps://u:p@[::1]:5671/vhost"}, {5671}),
        ({"bootstrap_servers": "localhost:9092,127.0.0.1:9093,broker:9094"}, {9092, 9093}),
        ({"dsn": "postgresql://postgres@127.0.0.1:5432/test"}, {5432}),
        ({"dsn": "postgresql://db.example.com:5432/test"}, set()),
        ({"nested": {"list": [{"x": "127.0.0.1:1234"}]}, "n": 5}, {1234}),
        # Credentials make RabbitMQ's url a SecretStr: its port still counts (issue 16: a
        # RabbitMQ run was never found host-bound). A URL without a port uses its scheme's.
        ({"url": SecretStr("amqp://guest:guest@127.0.0.1:5672/")}, {5672}),
        ({"url": SecretStr("amqp://guest:guest@127.0.0.1/")}, {5672}),
        ({"servers": ["nats://localhost"], "dsn": "postgresql://u@127.0.0.1/db"}, {4222, 5432}),
        ({"url": "amqp://guest:guest@rabbit.example.com/"}, set()),
        ({"url": "weird://127.0.0.1/"}, set()),
    ],
)
def test_the_local_ports_a_target_names(settings, ports):
    assert local_ports(settings) == ports


def _host(busy, client, target):
    return {
        "cores": 2,
        "window_s": 5.0,
        "busy_pct": busy,
        "client_pct": client,
        "target_pct": target,
        "target_processes": ["nats-server"],
        "target_ports": [4222],
    }


def test_a_saturated_host_shared_with_the_target_is_host_bound_whatever_the_client_share():
    bound, reasons = host_bound(_host(97.0, 70.0, 83.0))
    assert bound
    (reason,) = reasons
    assert reason.startswith("host-bound: the host's 2 cores were 97% busy")
    assert "client 70%" in reason and "target (nats-server) 83%" in reason
    assert "other 41% of a core" in reason


def test_a_host_with_cpu_to_spare_or_no_local_target_is_not_host_bound():
    assert host_bound(_host(HOST_SATURATED_PCT - 1, 100.0, 79.0)) == (False, [])
    assert host_bound(_host(100.0, 100.0, None)) == (False, [])
    assert host_bound(None) == (False, [])


def test_the_sampler_measures_a_busy_local_listener_and_the_client():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    # A stand-in target: listens on the port and spins for a bounded time.
    code = (
        "import socket,time\n"
        f"s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen()\n"
        "end=time.monotonic()+20\n"
        "while time.monotonic()<end: pass\n"
    )
    target = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        sampler = HostSampler({port}, lambda: [])
        while time.monotonic() < deadline:
            sampler.mark()
            if sampler._target:
                break
            time.sleep(0.05)
        assert [p.pid for p in sampler._target] == [target.pid]
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # the client spins too
            pass
        host = sampler.result()
    finally:
        target.kill()
        target.wait()
    assert host is not None
    assert host["target_ports"] == [port]
    # Each spun for the whole window (a loaded machine gives each less than a core).
    assert host["target_pct"] > 20
    assert host["client_pct"] > 20
    assert 0 < host["busy_pct"] <= 100
