"""Running the tools around a service: bounded commands, apt installs, versions, log lines.

Every command runs with a timeout and fails as one :class:`InfraError` line naming what could
not be done and the line of output that best explains why.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from bench.errors import InfraError

COMMAND_TIMEOUT_S = 60.0
# Installing a broker downloads and configures packages; that is not part of the caller's
# "become healthy" budget, but it is bounded all the same.
APT_TIMEOUT_S = 900.0


def run(argv: list[str], timeout_s: float, *, what: str, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        raise InfraError(f"could not {what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise InfraError(
            f"could not {what}: {' '.join(argv)} took more than {timeout_s:.0f}s"
        ) from None
    if done.returncode != 0:
        raise InfraError(
            f"could not {what}: {' '.join(argv)} exited {done.returncode}: "
            f"{last_line(done.stderr + done.stdout)}"
        )
    return done.stdout


def stop_quietly(argv: list[str]) -> None:
    # Cleanup after a failed start: the failure being reported matters more than this one.
    with contextlib.suppress(InfraError):
        run(argv, COMMAND_TIMEOUT_S, what="stop")


def apt_install(package: str) -> None:
    command = f"apt-get update && apt-get install -y {package}"
    if os.geteuid() != 0:
        raise InfraError(f"{package} is not installed", hint=f"sudo sh -c '{command}'")
    if shutil.which("apt-get") is None:
        raise InfraError(
            f"{package} is not installed and apt-get is not available",
            hint=f"install {package} with this system's package manager",
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], APT_TIMEOUT_S, what="apt-get update", env=env)
    run(["apt-get", "install", "-y", package], APT_TIMEOUT_S, what=f"install {package}", env=env)


def find(command: str) -> str | None:
    # Debian puts server tools in /usr/sbin, which a non-login root shell may lack on PATH.
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/lib/rabbitmq/bin")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_LINE = re.compile(r"error|panicked|fatal|failed", re.IGNORECASE)


def last_line(text: str) -> str:
    """The line that best explains a failure: the first error-looking one, else the last one."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "(no output)"
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    # The first error is the cause; later ones (a panic, a shutdown) are its consequences.
    return (errors[0] if errors else lines[-1])[:300]


def read_log(log: Path) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, log.stat().st_size - 16384))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


@functools.lru_cache(maxsize=8)
def binary_version(binary: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [binary, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        match = re.search(r"v?(\d+\.\d+[\w.+-]*)", done.stdout + done.stderr)
        if match:
            return match.group(1)
    return None
