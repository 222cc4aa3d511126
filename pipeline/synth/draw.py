"""Drawing players from their keypoints: what is drawn is exactly what the JSON says.

Every element (limb, hand, instrument) is placed from the stored keypoints of
that frame only; an element whose joints are missing (confidence 0) is not
drawn, as if occluded. So a pose estimator that reads these frames perfectly
would return the OpenPose files the benchmark writes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.instruments import INSTRUMENTS
from pipeline.pose.openpose import BODY_25_INDEX as B
from pipeline.pose.openpose import HAND_21_EDGES, LEFT_HAND, RIGHT_HAND

SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << SHIFT

WOOD = (150, 90, 40)
DARK_WOOD = (90, 50, 25)
BRASS = (220, 180, 60)
SILVER = (205, 205, 215)
BLACK = (30, 30, 30)


@dataclass(frozen=True)
class Look:
    """How a player looks (RGB colours): shirt, trousers, skin."""

    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]


def random_look(rng: np.random.Generator) -> Look:
    """A random but plausible look; players of one piece usually differ."""
    shirt = tuple(int(v) for v in rng.integers(40, 230, size=3))
    trousers = tuple(int(v) for v in rng.integers(20, 110, size=3))
    tone = float(rng.uniform(0.35, 1.0))
    skin = (int(120 + 120 * tone), int(80 + 110 * tone), int(60 + 90 * tone))
    return Look(shirt, trousers, skin)  # type: ignore[arg-type]


def background(height: int, width: int, wall: tuple[int, int, int], shake: np.ndarray) -> np.ndarray:
    """An empty stage: wall, floor line (moved by the camera shake ``(dx, dy)``), floor."""
    floor_y = int(round(height * 0.86 + shake[1]))
    return _stage(height, width, wall, floor_y).copy()


@functools.lru_cache(maxsize=16)
def _stage(height: int, width: int, wall: tuple[int, int, int], floor_y: int) -> np.ndarray:
    floor = (int(wall[0] * 0.6), int(wall[1] * 0.55), int(wall[2] * 0.5))
    rows = np.where((np.arange(height) < floor_y)[:, None], np.array(wall), np.array(floor))
    return np.ascontiguousarray(np.broadcast_to(rows[:, None, :], (height, width, 3)).astype(np.uint8))


def draw_person(img: np.ndarray, kp: np.ndarray, look: Look, code: str) -> None:
    """Draw one player, ``kp`` of shape ``(67, 3)`` (x, y, confidence), in place."""
    ok = kp[:, 2] > 0
    L = _torso(kp, ok)
    if L is None:
        L = 0.22 * img.shape[0]
    _chair(img, kp, ok, L)
    _segments(img, kp, ok, ((B["RHip"], B["RKnee"]), (B["RKnee"], B["RAnkle"]), (B["LHip"], B["LKnee"]),
                            (B["LKnee"], B["LAnkle"])), look.trousers, 0.16 * L)  # fmt: skip
    _segments(img, kp, ok, ((B["RAnkle"], B["RBigToe"]), (B["LAnkle"], B["LBigToe"]), (B["RAnkle"], B["RHeel"]),
                            (B["LAnkle"], B["LHeel"])), BLACK, 0.08 * L)  # fmt: skip
    torso = [B["RShoulder"], B["LShoulder"], B["LHip"], B["RHip"]]
    if ok[torso].all():
        cv2.fillPoly(img, [_px(kp[torso, :2])], look.shirt, cv2.LINE_AA, SHIFT)
    _segments(img, kp, ok, ((B["Neck"], B["MidHip"]),), look.shirt, 0.3 * L)
    _instrument(img, kp, ok, code, L)
    _segments(img, kp, ok, ((B["Neck"], B["Nose"]),), look.skin, 0.12 * L)
    if ok[B["Nose"]]:
        _circle(img, kp[B["Nose"], :2], 0.2 * L, look.skin)
        for eye in ("REye", "LEye"):
            if ok[B[eye]]:
                _circle(img, kp[B[eye], :2], 0.03 * L, BLACK)
    arms = ((B["RShoulder"], B["RElbow"]), (B["RElbow"], B["RWrist"]), (B["LShoulder"], B["LElbow"]),
            (B["LElbow"], B["LWrist"]))  # fmt: skip
    _segments(img, kp, ok, arms, look.shirt, 0.13 * L)
    for part in (LEFT_HAND, RIGHT_HAND):
        _hand(img, kp[part], ok[part], look.skin, L)


def _torso(kp: np.ndarray, ok: np.ndarray) -> float | None:
    if ok[B["Neck"]] and ok[B["MidHip"]]:
        return float(np.linalg.norm(kp[B["Neck"], :2] - kp[B["MidHip"], :2]))
    return None


def _px(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, float) * _ONE).astype(np.int32).reshape(-1, 2)


def _line(img, a, b, color, width: float) -> None:
    pa = (int(round(a[0] * _ONE)), int(round(a[1] * _ONE)))
    pb = (int(round(b[0] * _ONE)), int(round(b[1] * _ONE)))
    cv2.line(img, pa, pb, color, max(1, int(round(width))), cv2.LINE_AA, SHIFT)


def _circle(img, c, r: float, color) -> None:
    pc = (int(round(c[0] * _ONE)), int(round(c[1] * _ONE)))
    cv2.circle(img, pc, max(1, int(round(r * _ONE))), color, -1, cv2.LINE_AA, SHIFT)


def _segments(img, kp, ok, pairs, color, width: float) -> None:
    for a, b in pairs:
        if ok[a] and ok[b]:
            _line(img, kp[a, :2], kp[b, :2], color, width)


def _chair(img, kp, ok, L: float) -> None:
    if ok[B["RHip"]] and ok[B["LHip"]]:
        y = max(kp[B["RHip"], 1], kp[B["LHip"], 1]) + 0.08 * L
        x0, x1 = kp[B["RHip"], 0] - 0.2 * L, kp[B["LHip"], 0] + 0.2 * L
        _line(img, (x0, y), (x1, y), DARK_WOOD, 0.12 * L)
        for x in (x0, x1):
            _line(img, (x, y), (x, y + 1.0 * L), DARK_WOOD, 0.06 * L)


def _hand(img, hand: np.ndarray, ok: np.ndarray, skin, L: float) -> None:
    palm = [0, 5, 17]
    if ok[palm].all():
        cv2.fillPoly(img, [_px(hand[palm, :2])], skin, cv2.LINE_AA, SHIFT)
    dark = tuple(int(v * 0.8) for v in skin)
    width = max(1, int(round(0.045 * L)))
    pts = np.round(hand[:, :2] * _ONE).astype(np.int32)
    lines = [pts[[a, b]] for a, b in HAND_21_EDGES if ok[a] and ok[b]]
    if lines:  # one call for all finger bones: drawing them one by one is the slow part
        cv2.polylines(img, lines, False, dark, width, cv2.LINE_AA, SHIFT)


def _instrument(img, kp, ok, code: str, L: float) -> None:
    """The instrument, placed from the hands and body of this frame."""
    family = INSTRUMENTS[code].family

    def at(name: str) -> np.ndarray | None:
        return kp[B[name], :2] if ok[B[name]] else None

    lw, rw, nose, hip, ls = at("LWrist"), at("RWrist"), at("Nose"), at("MidHip"), at("LShoulder")
    if code in ("vn", "va") and lw is not None and ls is not None:
        body = ls + (lw - ls) * 0.2 + np.array([0.0, 0.12 * L])
        size = (0.24 if code == "vn" else 0.28) * L
        _ellipse(img, body, (size, size * 0.6), 0.0, WOOD)
        _line(img, body, lw + (lw - body) * 0.15, BLACK, 0.05 * L)
        if rw is not None:
            _line(img, rw, rw + np.array([0.95 * L, -0.12 * L]), (200, 190, 160), 0.025 * L)
    elif family == "bowed" and hip is not None:
        scale = 1.3 if code == "db" else 1.0
        body = hip + np.array([0.15 * L, 0.15 * L])
        _ellipse(img, body, (0.3 * L * scale, 0.5 * L * scale), 0.0, WOOD)
        if lw is not None:
            _line(img, body, lw + (lw - body) * 0.3, BLACK, 0.06 * L)
        _line(img, body, body + np.array([0.0, 0.9 * L]), BLACK, 0.03 * L)
        if rw is not None:
            _line(img, rw, rw + np.array([1.0 * L, 0.05 * L]), (200, 190, 160), 0.025 * L)
    elif family == "woodwind" and lw is not None and rw is not None:
        color = {"fl": SILVER, "sax": BRASS, "bn": WOOD}.get(code, BLACK)
        far = rw + (rw - lw) * 0.45
        near = lw - (rw - lw) * (0.35 if code != "bn" else 0.9)
        if nose is not None and code in ("cl", "ob", "sax"):
            near = nose + np.array([0.0, 0.14 * L])
        _line(img, near, far, color, (0.11 if code == "bn" else 0.07) * L)
        if code in ("cl", "sax"):
            _circle(img, far, 0.09 * L, color)
    elif family == "brass" and lw is not None and rw is not None:
        mid = (lw + rw) / 2
        if code == "tbn" and nose is not None:
            mouth = nose + np.array([0.0, 0.14 * L])
            _line(img, mouth, rw, BRASS, 0.04 * L)
            _line(img, mouth, lw + np.array([0.1 * L, 0.5 * L]), BRASS, 0.05 * L)
            _circle(img, lw + np.array([0.1 * L, 0.5 * L]), 0.12 * L, BRASS)
        elif code == "tba":
            _ellipse(img, mid + np.array([0.0, 0.15 * L]), (0.28 * L, 0.5 * L), 0.0, BRASS)
            _circle(img, mid + np.array([-0.1 * L, -0.45 * L]), 0.25 * L, BRASS)
        elif code == "hn":
            _ellipse(img, mid, (0.3 * L, 0.22 * L), 0.0, BRASS)
            _circle(img, rw + np.array([-0.1 * L, 0.1 * L]), 0.15 * L, BRASS)
        else:  # trumpet
            _line(img, mid + np.array([0.0, -0.35 * L]), mid + np.array([-0.1 * L, 0.3 * L]), BRASS, 0.08 * L)
            _circle(img, mid + np.array([-0.1 * L, 0.3 * L]), 0.1 * L, BRASS)


def _ellipse(img, centre, axes, angle: float, color) -> None:
    c = _px(centre)[0]
    ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, (int(c[0]), int(c[1])), ax, angle, 0, 360, color, -1, cv2.LINE_AA, SHIFT)
