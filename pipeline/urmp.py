"""File names of the URMP layout, in one place for the writer (synth) and the readers.

A URMP piece lives in a folder ``NN_Title_i1_i2[_...]`` (``NN`` the two-digit piece
number, ``Title`` without underscores, ``iK`` the instrument code of player K in
seating order, left to right) holding::

    Vid_NN_Title_i1_i2.mp4          the video, with the mixture as its audio track
    AuMix_NN_Title_i1_i2.wav        the mixture
    AuSep_K_iK_NN_Title.wav         player K's stem (K from 1)
    Notes_K_iK_NN_Title.txt         player K's notes: onset_s <tab> midi_pitch <tab> duration_s
    Sco_NN_Title_i1_i2.mid          the score

Keypoints are not part of URMP. The benchmark keeps OpenPose JSON beside the
pieces, in ``openpose/<piece folder>/Vid_<piece>_<frame:012d>_keypoints.json``,
the way OpenPose itself names its per-frame output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.instruments import INSTRUMENTS

_PIECE = re.compile(r"^(\d{2,})_([A-Za-z0-9]+)_((?:[a-z]+_)*[a-z]+)$")


@dataclass(frozen=True)
class Piece:
    """A URMP piece: its number, title and the instrument code of each player, left to right."""

    number: int
    title: str
    codes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9]+", self.title):
            raise ValueError(f"URMP titles are letters and digits only, got {self.title!r}")
        unknown = [c for c in self.codes if c not in INSTRUMENTS]
        if unknown or not self.codes:
            raise ValueError(f"unknown instrument codes {unknown} in piece {self.title!r}")

    @property
    def name(self) -> str:
        """The folder name, e.g. ``03_Dance_fl_cl``."""
        return f"{self.number:02d}_{self.title}_{'_'.join(self.codes)}"

    @property
    def video(self) -> str:
        return f"Vid_{self.name}.mp4"

    @property
    def mix(self) -> str:
        return f"AuMix_{self.name}.wav"

    @property
    def score(self) -> str:
        return f"Sco_{self.name}.mid"

    def stem(self, k: int) -> str:
        """Stem file of player ``k`` (1-based, seating order)."""
        return f"AuSep_{k}_{self.codes[k - 1]}_{self.number:02d}_{self.title}.wav"

    def notes(self, k: int) -> str:
        """Note list of player ``k`` (1-based, seating order)."""
        return f"Notes_{k}_{self.codes[k - 1]}_{self.number:02d}_{self.title}.txt"

    def keypoints(self, frame: int) -> str:
        """OpenPose JSON file name of video frame ``frame`` (0-based)."""
        return f"Vid_{self.name}_{frame:012d}_keypoints.json"


def parse_piece(folder_name: str) -> Piece:
    """Parse a URMP piece folder name; raises ValueError naming the folder if it is not one."""
    m = _PIECE.match(folder_name)
    if not m:
        raise ValueError(f"{folder_name!r} is not a URMP piece folder (NN_Title_i1_i2...)")
    return Piece(int(m.group(1)), m.group(2), tuple(m.group(3).split("_")))
