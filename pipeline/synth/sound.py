"""Rendering scores to audio with fluidsynth and a General MIDI soundfont.

Each player's stem is rendered on its own, with reverb and chorus off, so stems
carry no shared effects; the mixture is the exact sum of the 16-bit stems.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi

from pipeline.audio import read_wav
from pipeline.errors import UserError
from pipeline.instruments import INSTRUMENTS
from pipeline.synth.music import Part, Score

SOUNDFONT_ENV = "MUSIC_GESTURE_SOUNDFONT"
SOUNDFONT_PLACES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
PEAK = 0.9  # the mixture's peak, as a fraction of full scale: no clipping, some headroom


def find_soundfont(setting: str) -> Path:
    """Resolve ``synth.soundfont``: a path, or ``auto`` ($MUSIC_GESTURE_SOUNDFONT, then system places)."""
    if setting != "auto":
        path = Path(setting).expanduser()
        if not path.is_file():
            raise UserError(f"soundfont not found: {path} (set synth.soundfont to a GM .sf2 file)")
        return path
    env = os.environ.get(SOUNDFONT_ENV)
    candidates = ([env] if env else []) + list(SOUNDFONT_PLACES)
    for c in candidates:
        if Path(c).is_file():
            return Path(c)
    raise UserError(
        "no General MIDI soundfont found (looked for $MUSIC_GESTURE_SOUNDFONT and "
        f"{', '.join(SOUNDFONT_PLACES)}); install Debian's fluid-soundfont-gm, or set "
        "synth.soundfont to a .sf2 file"
    )


def check_fluidsynth() -> str:
    """Path of the fluidsynth program, or a UserError saying how to install it."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise UserError("fluidsynth is not installed (Debian/Ubuntu: apt-get install fluidsynth)")
    return exe


def score_midi(score: Score, parts: tuple[Part, ...] | None = None) -> pretty_midi.PrettyMIDI:
    """A MIDI file of ``parts`` (default: all) with each instrument's GM program."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=score.bpm)
    for part in score.parts if parts is None else parts:
        inst = pretty_midi.Instrument(program=INSTRUMENTS[part.code].program, name=part.code)
        inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in part.notes]
        midi.instruments.append(inst)
    return midi


def render_part(score: Score, part: Part, soundfont: Path, rate: int, gain: float) -> np.ndarray:
    """Render one player's part alone to a mono float32 wave of exactly the piece's length."""
    exe = check_fluidsynth()
    with tempfile.TemporaryDirectory(prefix="mg-fluid-") as tmp:
        mid, wav = Path(tmp, "part.mid"), Path(tmp, "part.wav")
        score_midi(score, (part,)).write(str(mid))
        cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain), "-r", str(rate)]
        cmd += ["-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(mid)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"fluidsynth failed on {score.title}/{part.code}: {done.stderr.strip()}")
        wave, got_rate = read_wav(wav)
    if got_rate != rate:
        raise RuntimeError(f"fluidsynth wrote {got_rate} Hz, asked for {rate}")
    n = int(round(score.duration * rate))
    return np.pad(wave, (0, max(0, n - wave.size)))[:n]


def mix_stems(stems: np.ndarray, gains_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale float stems ``(players, samples)`` to 16 bits; the mixture is their exact sum.

    Each stem gets its gain in dB, then all share one factor that puts the
    mixture's (or any stem's) peak at :data:`PEAK`. Returns int16 stems and the
    int16 mixture, equal sample for sample to the sum of the stems.
    """
    scaled = stems.astype(np.float64) * (10.0 ** (gains_db[:, None] / 20.0))
    peak = max(np.abs(scaled.sum(axis=0)).max(), np.abs(scaled).max(), 1e-9)
    pcm = np.round(scaled * (PEAK / peak) * 32767.0).astype(np.int32)
    mix = pcm.sum(axis=0)
    assert np.abs(mix).max() <= 32767, "mixture would clip"  # PEAK leaves room for rounding
    return pcm.astype(np.int16), mix.astype(np.int16)
