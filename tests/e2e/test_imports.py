"""What a fresh interpreter pulls in when it imports bench: only bench locust's own processes
import Locust (whose gevent monkey-patching would change every socket of the importing process)."""

from __future__ import annotations

import subprocess
import sys


def test_bench_itself_never_imports_locust():
    code = (
        "import sys\n"
        "import bench.cli, bench.engine.runner, bench.locust.cluster, bench.locust.wire\n"
        "from bench.report import commands\n"
        "bad = sorted(m for m in ('locust', 'gevent') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
