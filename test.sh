#!/usr/bin/env bash
# Set up the environment if needed, then lint and run the whole test suite.
# Extra arguments go to pytest (e.g. -k synth, -x).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-env.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
