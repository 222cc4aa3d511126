"""Does the motion carry the information? A check that reads only the written files.

For each player of a piece, the hand-motion energy (mean speed of the 42 hand
joints, from the OpenPose JSON) is correlated with the onset envelope of every
player's stem (from the wav files). In a benchmark worth its name, a player's
hands move with their own onsets clearly more than with anyone else's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.audio import onset_envelope, read_wav
from pipeline.pose.openpose import BODY_25, LEFT_HAND, RIGHT_HAND, read_frame
from pipeline.urmp import parse_piece

SMOOTH_FRAMES = 9  # ~0.3 s at 30 fps
MAX_LAG = 4  # frames: the benchmark's ±2-frame gesture-sound lag, plus the width of a gesture


def load_keypoints(root: Path, name: str) -> np.ndarray:
    """Keypoints of a piece ``(T, P, 67, 3)``, people put in seat order (left to right by body x)."""
    piece = parse_piece(name)
    files = sorted((root / "openpose" / name).glob("*_keypoints.json"))
    P = len(piece.codes)
    out = np.zeros((len(files), P, 67, 3), np.float32)
    for t, f in enumerate(files):
        people = read_frame(f).people
        xs = [_body_x(p) for p in people]
        for seat, i in enumerate(np.argsort(xs)[:P]):
            out[t, seat] = people[i]
    return out


def _body_x(person: np.ndarray) -> float:
    body = person[: len(BODY_25)]
    seen = body[body[:, 2] > 0, 0]
    return float(np.median(seen)) if seen.size else np.inf


def hand_speed(kp: np.ndarray) -> np.ndarray:
    """Mean speed (pixels/frame) of the joints of both hands that are seen in consecutive frames.

    ``kp`` is ``(T, P, 67, 3)``; returns ``(T - 1, P)``.
    """
    hands = np.concatenate([kp[:, :, LEFT_HAND], kp[:, :, RIGHT_HAND]], axis=2)
    step = np.linalg.norm(np.diff(hands[..., :2], axis=0), axis=-1)
    seen = (hands[1:, ..., 2] > 0) & (hands[:-1, ..., 2] > 0)
    return (step * seen).sum(-1) / np.maximum(seen.sum(-1), 1)


def smooth(x: np.ndarray, frames: int = SMOOTH_FRAMES) -> np.ndarray:
    """Hann-window moving average along axis 0."""
    w = np.hanning(frames + 2)[1:-1]
    w /= w.sum()
    return np.apply_along_axis(lambda v: np.convolve(v, w, mode="same"), 0, x)


def motion_sound_correlation(root: Path, name: str, fps: float) -> np.ndarray:
    """``C[k, j]``: correlation of player k's hand speed with player j's stem onset envelope.

    Reads the piece's OpenPose JSON and stems; see :func:`correlation_matrix`.
    """
    speed, env = motion_and_onsets(root, name, fps)
    return correlation_matrix(speed, env)


def motion_and_onsets(root: Path, name: str, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Hand speed per player and onset envelope per stem, both ``(T - 1, P)``, seat order."""
    piece = parse_piece(name)
    kp = load_keypoints(root, name)
    onsets = []
    for k in range(1, len(piece.codes) + 1):
        wave, rate = read_wav(root / name / piece.stem(k))
        onsets.append(onset_envelope(wave, rate, fps, kp.shape[0])[1:])
    return hand_speed(kp), np.stack(onsets, axis=1)


def correlation_matrix(speed: np.ndarray, env: np.ndarray) -> np.ndarray:
    """``C[k, j]`` for motion ``speed[:, k]`` and sound ``env[:, j]``, both smoothed.

    The correlation is the best over lags of up to :data:`MAX_LAG` frames either
    way: the same tolerance for every pair.
    """
    speed, env = smooth(speed), smooth(env)
    P = speed.shape[1]
    return np.array([[_lagged_corr(speed[:, k], env[:, j]) for j in range(P)] for k in range(P)])


def _lagged_corr(motion: np.ndarray, sound: np.ndarray) -> float:
    n = motion.size - 2 * MAX_LAG
    a = motion[MAX_LAG : MAX_LAG + n]
    return max(float(np.corrcoef(a, sound[MAX_LAG + d : MAX_LAG + d + n])[0, 1]) for d in range(-MAX_LAG, MAX_LAG + 1))
