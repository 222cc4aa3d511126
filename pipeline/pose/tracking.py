"""One identity per person across frames, and persons put in seating order.

Detections come per frame in any order (detectors list people as they find
them). :func:`track` links them frame to frame by the Hungarian algorithm on
the distance between body centres, scaled by body size; a person that drops
out for a few frames keeps their identity when they come back near where
they left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.pose.layout import BODY, NUM_JOINTS

MAX_JUMP = 0.75  # a match moves less than this many body sizes between sampled frames


class TrackingError(ValueError):
    """The persons found do not fit what the sources say (e.g. fewer persons than stems)."""


@dataclass
class _Track:
    centre: np.ndarray
    scale: float
    frames: dict[int, np.ndarray] = field(default_factory=dict)


def body_centre(kp: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Mean of the found body joints and the body's size (bounding-box diagonal), or None."""
    body = kp[: len(BODY)]
    seen = body[body[:, 2] > 0, :2]
    if len(seen) < 2:
        return None
    size = float(np.linalg.norm(seen.max(axis=0) - seen.min(axis=0)))
    return seen.mean(axis=0), max(size, 1.0)


def track(detections: list[list[np.ndarray]], min_presence: float = 0.5) -> np.ndarray:
    """Link per-frame detections into persons: ``(persons, T, 61, 3)``, left to right.

    ``detections[t]`` lists the ``(61, 3)`` keypoints found in frame ``t``. A
    person is a track present in at least ``min_presence`` of the frames
    (shorter tracks are passers-by or false detections); frames where a person
    was not found are all-zero (missing).
    """
    tracks: list[_Track] = []
    T = len(detections)
    for t, people in enumerate(detections):
        found = [(kp, body_centre(kp)) for kp in people]
        found = [(kp, c) for kp, c in found if c is not None]
        if tracks and found:
            cost = np.array(
                [[np.linalg.norm(tr.centre - c[0]) / max(tr.scale, c[1]) for _, c in found] for tr in tracks]
            )
            rows, cols = linear_sum_assignment(cost)
            matched = {(r, c) for r, c in zip(rows, cols) if cost[r, c] < MAX_JUMP}
        else:
            matched = set()
        used = set()
        for r, c in matched:
            kp, (centre, scale) = found[c]
            tracks[r].centre, tracks[r].scale = centre, scale
            tracks[r].frames[t] = kp
            used.add(c)
        for c, (kp, (centre, scale)) in enumerate(found):
            if c not in used:
                tracks.append(_Track(centre, scale, {t: kp}))
    persons = [tr for tr in tracks if len(tr.frames) >= min_presence * T]
    persons.sort(key=lambda tr: float(np.median([body_centre(k)[0][0] for k in tr.frames.values()])))
    out = np.zeros((len(persons), T, NUM_JOINTS, 3), np.float32)
    for p, tr in enumerate(persons):
        for t, kp in tr.frames.items():
            out[p, t] = kp
    return out


def select_players(persons: np.ndarray, expected: int) -> np.ndarray:
    """Keep ``expected`` persons for ``expected`` sources, in seating order.

    More persons than sources: the ones seen most and largest are the players
    (others are audience or passers-by). Fewer: a :class:`TrackingError` — a
    count mismatch is reported, never guessed.
    """
    n = persons.shape[0]
    if n < expected:
        raise TrackingError(f"found {n} persons, expected {expected} (one per stem)")
    if n == expected:
        return persons
    seen = (persons[..., 2] > 0).any(axis=-1).mean(axis=-1)
    size = np.array([_mean_size(p) for p in persons])
    keep = np.sort(np.argsort(-(seen * size))[:expected])  # sorted indices keep the seating order
    return persons[keep]


def _mean_size(person: np.ndarray) -> float:
    sizes = [c[1] for c in (body_centre(kp) for kp in person) if c is not None]
    return float(np.mean(sizes)) if sizes else 0.0
