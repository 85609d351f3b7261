"""docs/writing-a-driver.md shows the example driver the suite runs, and cites only files
that are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance import support
from tests.conformance.targets import THIRD_PARTY_PATH

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-a-driver.md"


def test_the_doc_shows_the_example_driver_exactly_as_tested() -> None:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    source = (THIRD_PARTY_PATH / "eventbench_example_driver" / "__init__.py").read_text()
    assert source in blocks


def test_every_link_and_path_in_the_doc_is_in_the_repository() -> None:
    text = DOC.read_text()
    assert "http://" not in text and "https://" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (DOC.parent / target).resolve().exists(), target
    for path in set(re.findall(r"`((?:bench|tests|docs)/[\w./-]+)`", text)):
        assert (ROOT / path).exists(), path


def test_the_doc_names_the_suite_s_environment_variables() -> None:
    text = DOC.read_text()
    for name in (support.ENV_DRIVER, support.ENV_OPTIONS, support.ENV_UNREACHABLE):
        assert name in text
    assert support.ENV_KEY_ORDER + "=0" in text
