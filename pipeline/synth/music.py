"""The music of the benchmark: excerpts of real scores (music21 corpus) and generated melodies.

A :class:`Score` is a list of :class:`Part` (one per player, in seating order),
each a tuple of :class:`Note` in seconds. Everything here is a pure function of
a numpy random generator, so the same seed gives the same music.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from pipeline.instruments import CODES, INSTRUMENTS, fit_to_range

log = logging.getLogger(__name__)

# Works the corpus excerpts are taken from: (music21 corpus path, title). The chorales
# are four-part homophony; the quartet movements give independent lines.
CORPUS_WORKS: tuple[tuple[str, str], ...] = (
    ("bach/bwv269", "Bwv269"),
    ("bach/bwv347", "Bwv347"),
    ("bach/bwv66.6", "Bwv66"),
    ("bach/bwv281", "Bwv281"),
    ("bach/bwv330", "Bwv330"),
    ("bach/bwv438", "Bwv438"),
    ("haydn/opus1no1/movement1", "HaydnOp1no1"),
    ("haydn/opus74no1/movement1", "HaydnOp74no1"),
    ("haydn/opus74no1/movement3", "HaydnOp74no1"),
    ("beethoven/opus18no1/movement1", "BeethovenOp18no1"),
    ("beethoven/opus18no1/movement2", "BeethovenOp18no1"),
    ("mozart/k80/movement1", "MozartK80"),
    ("mozart/k155/movement1", "MozartK155"),
    ("mozart/k155/movement3", "MozartK155"),
    ("mozart/k156/movement1", "MozartK156"),
    ("mozart/k156/movement2", "MozartK156"),
)
GENERATED_TITLES = ("Aria", "Etude", "Canon", "Dance", "Air", "Song", "March", "Rondo", "Jig", "Hymn")


@dataclass(frozen=True)
class Note:
    """One note: onset and release in seconds, MIDI pitch, MIDI velocity."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """What one player plays: an instrument code and its notes, sorted by onset."""

    code: str
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Score:
    """A piece: title, where the music came from, tempo, duration and one part per player."""

    title: str
    source: str
    bpm: float
    duration: float
    parts: tuple[Part, ...]


def choose_codes(rng: np.random.Generator, players: int, homo: bool) -> tuple[str, ...]:
    """Instrument codes for a piece; a homo-musical piece repeats one instrument."""
    if homo:
        return (str(rng.choice(CODES)),) * players
    return tuple(str(c) for c in rng.choice(CODES, size=players, replace=False))


def make_score(rng: np.random.Generator, codes: tuple[str, ...], duration: float, from_corpus: bool) -> Score:
    """A score for ``codes`` (seating order) lasting ``duration`` seconds.

    Corpus excerpts fall back to generated melodies when the chosen work has no
    window where every part plays enough notes.
    """
    if from_corpus:
        score = corpus_excerpt(rng, codes, duration)
        if score is not None:
            return score
    return generated_score(rng, codes, duration)


# --- corpus excerpts -----------------------------------------------------------------------


@functools.cache
def _corpus_lines(path: str) -> tuple[tuple[tuple[float, float, int], ...], ...]:
    """Monophonic lines of a corpus work: per part, (offset_q, length_q, midi) of each note.

    Chords keep their top note; tied notes are merged. Cached per process because
    parsing a score takes up to a second.
    """
    from music21 import corpus  # slow import: only when the corpus is used

    score = corpus.parse(path)
    lines = []
    for part in score.parts:
        notes: list[tuple[float, float, int]] = []
        for n in part.flatten().notes:
            pitch = max(p.midi for p in n.pitches)
            off, length = float(n.offset), float(n.quarterLength)
            tied = n.tie is not None and n.tie.type in ("stop", "continue")
            if tied and notes and notes[-1][2] == pitch:
                notes[-1] = (notes[-1][0], off + length - notes[-1][0], pitch)  # merge the tie
            elif not notes or abs(notes[-1][0] - off) > 1e-9:  # a second voice at one onset: skip
                notes.append((off, length, int(pitch)))
        if notes:
            lines.append(tuple(notes))
    return tuple(lines)


def corpus_excerpt(rng: np.random.Generator, codes: tuple[str, ...], duration: float) -> Score | None:
    """An excerpt of a corpus work with one of its parts per player, or None if none fits.

    Tries a few works and windows; a window fits when every part plays enough
    and no two parts move in lockstep (see :func:`_distinct_rhythms`).
    """
    for _ in range(6):
        path, title = CORPUS_WORKS[int(rng.integers(len(CORPUS_WORKS)))]
        lines = _corpus_lines(path)
        if len(lines) < len(codes):
            continue
        bpm = float(rng.uniform(66, 108))
        window_q = duration * bpm / 60.0
        end_q = max(n[0] + n[1] for line in lines for n in line)
        chosen = rng.choice(len(lines), size=len(codes), replace=False)  # seats in random order
        for _ in range(6):
            start_q = float(np.floor(rng.uniform(0, max(end_q - window_q, 0.0) + 1e-9)))
            parts = [
                _to_range(Part(code, _window(lines[line], start_q, window_q, bpm, duration, rng)))
                for code, line in zip(codes, chosen)
            ]
            if all(_plays_enough(p, duration) for p in parts) and _distinct_rhythms(parts):
                return Score(title, f"music21:{path}", bpm, duration, tuple(parts))
    return None


def _window(line, start_q, window_q, bpm, duration, rng) -> tuple[Note, ...]:
    spq = 60.0 / bpm
    dyn = _dynamics(rng)
    notes = []
    for off, length, pitch in line:
        if off < start_q or off >= start_q + window_q:
            continue
        start = (off - start_q) * spq + 0.25  # a short lead-in before the first note
        end = min(start + length * spq * 0.95, duration - 0.5)
        if end - start > 0.05:
            notes.append(Note(start, end, pitch, _velocity(dyn, start / duration, rng)))
    return tuple(notes)


# --- generated melodies --------------------------------------------------------------------

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def generated_score(rng: np.random.Generator, codes: tuple[str, ...], duration: float) -> Score:
    """Independent melodies in a shared key and tempo, each with its own rhythmic character.

    Players get different note densities, so in a duet of one instrument the two
    lines differ in when they move, the information a gesture model can use.
    """
    bpm = float(rng.uniform(72, 120))
    tonic = int(rng.integers(0, 12))
    scale = _MAJOR if rng.random() < 0.6 else _MINOR
    densities = rng.permutation([0.5, 1.0, 2.0, 1.5, 3.0])[: len(codes)]
    parts = tuple(
        _to_range(Part(code, _melody(rng, code, duration, bpm, tonic, scale, float(d))))
        for code, d in zip(codes, densities)
    )
    title = str(rng.choice(GENERATED_TITLES))
    return Score(title, "generated", bpm, duration, parts)


def _melody(rng, code, duration, bpm, tonic, scale, density) -> tuple[Note, ...]:
    inst = INSTRUMENTS[code]
    beat = 60.0 / bpm
    pool = [p for p in range(inst.low, inst.high + 1) if (p - tonic) % 12 in scale]
    lo, hi = len(pool) // 5, len(pool) - len(pool) // 5  # comfortable middle of the range
    idx = int(rng.integers(lo, hi))
    t = float(rng.uniform(0.1, 0.6))
    dyn = _dynamics(rng)
    notes = []
    while t < duration - 0.8:
        phrase_end = t + beat * float(rng.integers(4, 12))
        while t < min(phrase_end, duration - 0.8):
            length = max(beat / density * float(rng.choice([1.0, 1.0, 2.0, 0.5])), 0.2)
            idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3]), lo, hi - 1))
            end = min(t + length * 0.92, duration - 0.5)
            notes.append(Note(t, end, pool[idx], _velocity(dyn, t / duration, rng)))
            t += length
        t += beat * float(rng.choice([0.5, 1.0, 1.5, 2.0]))  # breathe between phrases
    return tuple(notes)


# --- shared helpers ------------------------------------------------------------------------


def _dynamics(rng: np.random.Generator) -> np.ndarray:
    """A slow loudness curve over the piece: base velocity at 5 points, interpolated."""
    return rng.uniform(55, 105, size=5)


def _velocity(dyn: np.ndarray, pos: float, rng: np.random.Generator) -> int:
    base = np.interp(pos, np.linspace(0, 1, len(dyn)), dyn)
    return int(np.clip(base + rng.normal(0, 6), 30, 127))


def _to_range(part: Part) -> Part:
    """Transpose a part by octaves into its instrument's range, folding stray notes inside."""
    inst = INSTRUMENTS[part.code]
    shift = fit_to_range([n.pitch for n in part.notes], part.code)
    notes = []
    for n in part.notes:
        p = n.pitch + shift
        while p < inst.low:
            p += 12
        while p > inst.high:
            p -= 12
        notes.append(Note(n.start, n.end, p, n.velocity))
    return Part(part.code, tuple(notes))


def _plays_enough(part: Part, duration: float) -> bool:
    sounding = sum(n.end - n.start for n in part.notes)
    return len(part.notes) >= 4 and sounding >= 0.4 * duration


def _distinct_rhythms(parts: list[Part], tolerance: float = 0.06, max_shared: float = 0.6) -> bool:
    """True when no two parts share most of their onsets (within ``tolerance`` seconds).

    Homophonic passages (every voice moving together) are left out on purpose:
    there, who plays what cannot be told from when hands move, so such a passage
    would not test what the benchmark is for.
    """
    onsets = [np.array([n.start for n in p.notes]) for p in parts]
    for i in range(len(onsets)):
        for j in range(i + 1, len(onsets)):
            a, b = onsets[i], onsets[j]
            near = np.abs(a[:, None] - b[None, :]).min(axis=1) <= tolerance
            if near.sum() > max_shared * min(len(a), len(b)):
                return False
    return True
