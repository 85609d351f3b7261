"""Fixtures of the driver conformance suite: the live target's address, and the example
third-party driver's folder on sys.path while its cases run."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bench import infra
from bench.errors import InfraError
from tests.conformance import support, targets


@pytest.fixture(scope="session")
def service_address() -> Iterator[Callable[[str], str]]:
    """The address of a service ``bench up`` knows, started if it was not running. A service
    this session started is stopped at its end; one already running is left alone."""
    addresses: dict[str, str] = {}
    started: list[str] = []

    def address(name: str) -> str:
        if name not in addresses:
            was_running = infra.status(name).running
            try:
                infra.up(name)
            except InfraError as exc:
                hint = f" ({exc.hint})" if exc.hint else ""
                pytest.fail(f"{name} is not available: {exc.message}{hint}", pytrace=False)
            if not was_running:
                started.append(name)
            addresses[name] = infra.connection_url(name)
        return addresses[name]

    yield address
    for name in started:
        if infra.status(name).managed:
            infra.down(name)


@pytest.fixture
def address(
    dut: support.DriverUnderTest,
    service_address: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> str | None:
    """Where the driver under test connects (None: its target is in-process)."""
    if dut is targets.EXAMPLE:
        # Registers the example's entry point for this test only, as a pip install would.
        monkeypatch.syspath_prepend(str(targets.THIRD_PARTY_PATH))
    return service_address(dut.service) if dut.service else None
