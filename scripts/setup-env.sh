#!/usr/bin/env bash
# Create .venv and install everything this project needs. Safe to run again: it reuses
# what is installed and only reinstalls when requirements*.txt or pyproject.toml change.
#
#   scripts/setup-env.sh            # system packages (as root) + .venv
#
# System programs: ffmpeg, fluidsynth and a General MIDI soundfont. As root with apt-get
# they are installed; otherwise the script names the missing ones and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

# --- system programs --------------------------------------------------------------------
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
soundfont_found=""
for sf in "${MUSIC_GESTURE_SOUNDFONT:-}" /usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/soundfonts/FluidR3_GM.sf2 \
    /usr/share/sounds/sf2/TimGM6mb.sf2 /usr/share/soundfonts/default.sf2; do
    if [ -n "$sf" ] && [ -f "$sf" ]; then soundfont_found=$sf; break; fi
done
[ -n "$soundfont_found" ] || missing+=(fluid-soundfont-gm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "error: missing system packages: ${missing[*]}" >&2
        echo "  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}" >&2
        echo "  macOS:         brew install ffmpeg fluid-synth  (and set MUSIC_GESTURE_SOUNDFONT to a GM .sf2)" >&2
        exit 1
    fi
fi

# --- Python environment -----------------------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for candidate in python3.11 python3.12 python3.10 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
    done
fi
"$PY" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' || {
    echo "error: need Python 3.10 to 3.12 (mediapipe 0.10.21 has no wheels for others); set PYTHON=" >&2
    exit 1
}
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "environment .venv is up to date"
    exit 0
fi
[ -x .venv/bin/python ] || { say "creating .venv with $PY"; "$PY" -m venv .venv; }
say "installing Python packages into .venv (several GB the first time, a few minutes)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v -e '--no-deps' requirements.txt >"$tmp/with-deps.txt"
grep -e '--no-deps' requirements.txt | sed 's/#.*//' >"$tmp/no-deps.txt"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$tmp/with-deps.txt" -r requirements-dev.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r "$tmp/no-deps.txt"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" >"$stamp"
say "environment ready: .venv"
