"""The instruments this project knows: URMP's 13 codes, their General MIDI programs and ranges.

URMP (Li et al., 2018) names each player's instrument with a short code; the same
codes label pieces in the synthetic benchmark and in the Parquet shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["bowed", "woodwind", "brass"]


@dataclass(frozen=True)
class Instrument:
    """One instrument: URMP code, name, GM program (0-based), family and playable MIDI range."""

    code: str
    name: str
    program: int
    family: Family
    low: int
    high: int


INSTRUMENTS: dict[str, Instrument] = {
    i.code: i
    for i in (
        Instrument("vn", "violin", 40, "bowed", 55, 93),
        Instrument("va", "viola", 41, "bowed", 48, 86),
        Instrument("vc", "cello", 42, "bowed", 36, 76),
        Instrument("db", "double bass", 43, "bowed", 28, 60),
        Instrument("fl", "flute", 73, "woodwind", 60, 96),
        Instrument("ob", "oboe", 68, "woodwind", 58, 91),
        Instrument("cl", "clarinet", 71, "woodwind", 50, 89),
        Instrument("sax", "saxophone", 65, "woodwind", 49, 81),
        Instrument("bn", "bassoon", 70, "woodwind", 34, 72),
        Instrument("tpt", "trumpet", 56, "brass", 54, 84),
        Instrument("hn", "horn", 60, "brass", 41, 77),
        Instrument("tbn", "trombone", 57, "brass", 40, 72),
        Instrument("tba", "tuba", 58, "brass", 28, 58),
    )
}
CODES: tuple[str, ...] = tuple(INSTRUMENTS)


def fit_to_range(pitches: list[int], code: str) -> int:
    """Octave shift (in semitones, a multiple of 12) that puts most of ``pitches`` in range.

    Chooses the shift that leaves the fewest notes outside the instrument's range,
    preferring the smallest shift on ties.
    """
    inst = INSTRUMENTS[code]
    shifts = sorted((12 * octaves for octaves in range(-4, 5)), key=abs)
    return min(shifts, key=lambda s: (sum(not inst.low <= p + s <= inst.high for p in pitches), abs(s)))
