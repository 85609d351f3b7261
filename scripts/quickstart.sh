#!/usr/bin/env bash
# Set everything up, then run the main job: `bench run` on the default scenario
# (the embedded memory target: no service needed, about 15 seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/bench run "$@"
