"""Numbers in a report's verdict banner against the numbers in its tables.

A number is a token as the report prints it, unit included: ``4``, ``1,000``, ``72.7%``,
``70.84ms``, ``390/s``. The banner's numbers must each be printed in some table of the same
report, so a reader can find what every verdict stands on.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:%|/s|us|ms|s(?![a-z]))?")


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def missing_numbers(banner: str, tables: str) -> list[str]:
    """The banner's numbers that no table prints."""
    printed = set(numbers(tables))
    return [n for n in numbers(banner) if n not in printed]


class _Sections(HTMLParser):
    """The text of ``div#verdicts`` and of every ``<table>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.banner: list[str] = []
        self.tables: list[str] = []
        self._banner_depth = 0
        self._div_depth = 0
        self._table_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div":
            self._div_depth += 1
            if dict(attrs).get("id") == "verdicts":
                self._banner_depth = self._div_depth
        elif tag == "table":
            self._table_depth += 1
        elif tag in ("td", "th"):
            self.tables.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self._banner_depth == self._div_depth:
                self._banner_depth = 0
            self._div_depth -= 1
        elif tag == "table":
            self._table_depth -= 1
        elif tag == "li" and self._banner_depth:
            self.banner.append("\n")

    def handle_data(self, data: str) -> None:
        if self._banner_depth:
            self.banner.append(data)
        if self._table_depth:
            self.tables.append(data)


def banner_and_tables(page: str) -> tuple[str, str]:
    """(the verdict banner's text, every table's text) of an HTML report."""
    parser = _Sections()
    parser.feed(page)
    return "".join(parser.banner), "".join(parser.tables)
