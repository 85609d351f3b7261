#!/usr/bin/env bash
# Run the test suite: the quick subset first, then the slow and integration tests.
# Integration tests talk to real PostgreSQL, RabbitMQ and NATS on 127.0.0.1 (reused when they
# run, started with `bench up` otherwise) and to a Tansu broker that the tests start.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

run_pytest() {
  set +e
  .venv/bin/python -m pytest "$@"
  local code=$?
  set -e
  # Exit 5 means no test ran: that is a failure, never a pass.
  if [ $code -eq 5 ]; then echo "pytest ran no tests ($*)" >&2; return 1; fi
  return $code
}

echo "== lint =="
.venv/bin/ruff check bench tests benchmarks
# The engine is checked against the driver seam's protocols (bench/drivers/base.py).
.venv/bin/mypy bench
echo "== quick tests =="
# The quick tests share nothing (temporary directories, no fixed ports, no services), so two
# processes run them; the slow and integration tests measure throughput and latency and run
# one at a time.
run_pytest -q -n 2 -m "not slow and not integration" "$@"
echo "== slow and integration tests =="
# The slowest tests are listed at the end: CI's time budget is 20 minutes in all.
run_pytest -q -m "slow or integration" --durations=15 "$@"
