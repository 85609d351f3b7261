"""Refused credentials on a real broker: one clear line, exit 1, and the password planted in
the scenario never reaches the terminal, the results, the report or the worker logs."""

import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.cli_support import bench

SECRET = "Pl4nted-S3cret-9f2c"


def test_a_refused_password_is_one_line_and_never_leaks(tmp_path: Path, rabbitmq_url: str):
    parts = urlsplit(rabbitmq_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5672
    bad_url = urlunsplit((parts.scheme, f"guest:{SECRET}@{host}:{port}", parts.path, "", ""))
    path = tmp_path / "s.toml"
    path.write_text(
        f"""
[scenario]
name = "refused"
duration = "1s"
warmup = "0s"

[workload]
rate = 100
producers = 1
consumers = 1

[targets.rabbitmq]
driver = "rabbitmq"
url = "{bad_url}"
connect_timeout = "5s"
"""
    )
    results = tmp_path / "results"
    done = bench("run", str(path), "-o", str(results), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "authentication" in errors[0].lower(), done.stderr
    # The secret is nowhere: not on the terminal, not in any file the run wrote.
    assert SECRET not in done.stdout + done.stderr
    grep = subprocess.run(["grep", "-rl", SECRET, str(results)], capture_output=True, text=True)
    assert grep.stdout == "", f"secret found in: {grep.stdout}"
    assert any(results.rglob("manifest.json")) and any(results.rglob("summary.json"))
