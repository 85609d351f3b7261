"""Turning results into tables, reports and verdicts."""
