"""Helpers for tests that start a private server of their own.

A free loopback port to listen on; a CA and certificates made with ``openssl`` for a server
on 127.0.0.1 / localhost (and for a client that must show one); and checks on what the real
``bench`` command printed or wrote when a connection is refused: exactly one ``error:``
line, nothing stray beside it, and no planted secret anywhere.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port nobody listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(directory: Path, *args: str) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=directory, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: ``directory/<name>.pem`` and its key ``directory/<name>.key``."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        directory,
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", str(key), "-out", str(cert), "-subj", f"/CN=eventbench test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def make_cert(
    directory: Path, name: str, ca: Path, ca_key: Path, *, client: bool = False
) -> tuple[Path, Path]:
    """A leaf certificate and key signed by ``ca``: a server's for 127.0.0.1 and localhost,
    or (``client=True``) a client's."""
    cert, key, csr = directory / f"{name}.pem", directory / f"{name}.key", directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text(
        ("extendedKeyUsage=clientAuth\n" if client
         else "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )  # fmt: skip
    _openssl(
        directory,
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN=eventbench {name}" if client else "/CN=127.0.0.1",
    )  # fmt: skip
    _openssl(
        directory,
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "1", "-out", str(cert),
        "-extfile", str(ext),
    )  # fmt: skip
    return cert, key


def leaks(done: subprocess.CompletedProcess[str], results: Path, *planted: str) -> list[str]:
    """Where any of ``planted`` shows up: the command's stdout or stderr, or a results file."""
    found = []
    for secret in planted:
        found += [f"{name}: {secret}" for name, text in (("stdout", done.stdout),
                  ("stderr", done.stderr)) if secret in text]  # fmt: skip
        if results.exists():
            for path in results.rglob("*"):
                if path.is_file() and secret.encode() in path.read_bytes():
                    found.append(f"{path}: {secret}")
    return found


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a command that exited 1 without a traceback."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def stray_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """What the terminal's stderr shows besides the error line and its hint."""
    return [line for line in done.stderr.splitlines()
            if line.strip() and not line.startswith(("error:", "  hint:"))]  # fmt: skip
