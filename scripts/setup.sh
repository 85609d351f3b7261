#!/usr/bin/env bash
# Create .venv and install eventbench with every driver and the dev tools.
# Safe to run again: it only installs what is missing. Needs Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "eventbench needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing python3-venv (Debian/Ubuntu)…"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "Python's venv module is missing: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
# Headless Chromium renders the HTML report in the tests (Debian's package; root only).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium (for the report rendering test)…"
  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
    || echo "chromium could not be installed: the browser test will be skipped" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.eventbench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # Some machines' pip configuration names find-links folders that do not exist; pip warns
  # about each on every call. Keep its real warnings and errors, drop those.
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  quiet .venv/bin/python -m pip install -q --upgrade pip
  # setuptools' notes about editable installs are for package authors, not for users.
  PYTHONWARNINGS=ignore quiet .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
