"""Driver conformance: every driver, built-in or third-party, against a live target.

One parametrised case per (check, driver). The in-process drivers (memory, and the example
third-party driver of docs/writing-a-driver.md) are in the quick subset; the broker and
database drivers carry the ``integration`` marker. tests/conformance/support.py holds the
checks and says how to run them against a driver of your own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bench.errors import DriverNotFound
from tests.conformance import support, targets
from tests.conformance.support import DriverUnderTest


def _cases(kind: str | None = None) -> list[object]:
    chosen = support.from_environment()
    candidates = [chosen] if chosen is not None else [*targets.BUILT_IN, targets.EXAMPLE]
    if chosen is not None:
        try:
            chosen.kinds()
        except DriverNotFound as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            raise pytest.UsageError(f"{support.ENV_DRIVER}={chosen.name}: {exc}{hint}") from None
    return [
        pytest.param(dut, id=dut.name, marks=[pytest.mark.integration] if dut.service else [])
        for dut in candidates
        if kind is None or kind in dut.kinds()
    ]


def conforms(check: Callable[[], Awaitable[list[str]]]) -> None:
    try:
        problems = support.run(check)
    except support.NotObservable as exc:
        pytest.skip(f"not checked: {exc}")
    assert problems == []


@pytest.mark.parametrize("dut", _cases())
def test_describe_says_what_answered_without_secrets(
    dut: DriverUnderTest, address: str | None
) -> None:
    conforms(lambda: support.check_describe(dut, address))


@pytest.mark.parametrize("dut", _cases())
def test_an_unreachable_address_is_one_line_error_within_connect_timeout(
    dut: DriverUnderTest, address: str | None
) -> None:
    conforms(lambda: support.check_unreachable(dut))


@pytest.mark.parametrize("dut", _cases("stream"))
def test_a_fresh_topology_delivers_every_message_once_and_in_key_order(
    dut: DriverUnderTest, address: str | None
) -> None:
    conforms(lambda: support.check_exchange(dut, address))


@pytest.mark.parametrize("dut", _cases("stream"))
def test_cleanup_removes_what_prepare_made(dut: DriverUnderTest, address: str | None) -> None:
    conforms(lambda: support.check_cleanup(dut, address))


@pytest.mark.parametrize("dut", _cases("store"))
def test_appends_keep_expected_versions_and_the_store_verifies(
    dut: DriverUnderTest, address: str | None
) -> None:
    conforms(lambda: support.check_store(dut, address))


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"drop_rate": 0.1}, "lost is "), ({"duplicate_rate": 0.1}, "duplicated is ")],
)
def test_the_suite_fails_a_driver_that_loses_or_duplicates(
    options: dict[str, float], problem: str
) -> None:
    # The memory target acknowledges, then drops or delivers twice, as told.
    broken = DriverUnderTest("memory", options=options, kind="both")
    # A lost message never arrives: waiting a second for it is enough here.
    problems = support.run(lambda: support.check_exchange(broken, None, drain_deadline_s=1.0))
    assert any(p.startswith(problem) for p in problems), problems


def test_a_loss_the_target_no_longer_stores_is_never_excused_as_a_delivery_gap() -> None:
    # A driver allowed Tansu's delivery gaps still fails when the re-read finds the lost
    # messages gone (the memory target's drops are never stored).
    broken = DriverUnderTest("memory", options={"drop_rate": 0.05}, kind="both", delivery_gaps=1000)
    problems = support.run(lambda: support.check_exchange(broken, None, drain_deadline_s=1.0))
    assert any(p.startswith("lost is ") for p in problems), problems
