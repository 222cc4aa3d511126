#!/usr/bin/env bash
# Set up everything (system packages as root, .venv) and run the main job on an embedded
# local Ray: the demo benchmark for now, later generate → preprocess → train → evaluate.
# Extra arguments go to `python -m pipeline run` (e.g. --preset tiny, --out DIR).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-env.sh
exec .venv/bin/python -m pipeline run "$@"
