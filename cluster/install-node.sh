#!/usr/bin/env bash
# Install this project's requirements into the current Python environment of a cluster node
# (the launcher's setup_commands and cluster/Dockerfile run it). System packages need sudo/root.
# Unlike scripts/setup-env.sh it makes no .venv: Ray on a node runs from the node's own Python.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg fluidsynth fluid-soundfont-gm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v -e '--no-deps' requirements.txt >"$tmp/with-deps.txt"
grep -e '--no-deps' requirements.txt | sed 's/#.*//' >"$tmp/no-deps.txt"
python -m pip install --quiet --disable-pip-version-check -r "$tmp/with-deps.txt"
python -m pip install --quiet --disable-pip-version-check --no-deps -r "$tmp/no-deps.txt"
python -c "import pipeline, ray, torch, decord, mir_eval; print('node ready: ray', ray.__version__, 'torch', torch.__version__)"
