"""Player motion driven by the player's own notes: keypoints for every video frame.

The pipeline of this module, per player:

1. :func:`control_signals` turns the notes (and the stem's loudness) into a few
   signals at the video frame rate: bow position, left-hand position from pitch,
   finger pressure from pitch, attack impulses on onsets, breath before phrases,
   sway from loudness and slow idle motion.
2. :func:`pose_sequence` places a seated body (OpenPose BODY_25) and two hands
   (21 joints each) from those signals, with an instrument-specific posture.
3. :func:`add_nuisances` adds what real keypoints have: jitter, missing joints
   (confidence 0) and detector confidences.

Coordinates are image pixels (x right, y down). A person faces the camera, so
their right side is on the image's left. Lengths are in units of ``L``, the
player's torso length (neck to mid-hip) in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.instruments import INSTRUMENTS
from pipeline.pose.openpose import BODY_25_INDEX as B
from pipeline.pose.openpose import LEFT_HAND, PERSON_JOINTS, RIGHT_HAND
from pipeline.synth.music import Note

# Sizes in torso lengths.
UPPER_ARM, FOREARM, HAND = 0.55, 0.5, 0.36
VALVES = ((0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1))


@dataclass(frozen=True)
class Seat:
    """Where a player sits: mid-hip position in pixels and torso length ``L`` in pixels."""

    x: float
    y: float
    L: float


@dataclass(frozen=True)
class Controls:
    """Per-frame control signals of one player; every array has ``T`` rows."""

    bow: np.ndarray  # (T,) bow position, 0 at the frog .. 1 at the tip (bowed strings)
    pitch: np.ndarray  # (T,) current pitch within the instrument's range, 0..1
    fingers_left: np.ndarray  # (T, 5) finger flexion of the left hand, 0 open .. 1 pressed
    fingers_right: np.ndarray  # (T, 5) same for the right hand
    attack: np.ndarray  # (T,) decaying impulse at each onset, scaled by velocity
    pulse: np.ndarray  # (T,) articulation: a quick dip and return after each onset, 0..1
    breath: np.ndarray  # (T,) 0..1, rises before a phrase starts
    loud: np.ndarray  # (T,) stem loudness, 0..1
    idle: np.ndarray  # (T, 3) slow smooth noise (sway, nod, shift)
    sounding: np.ndarray  # (T,) bool


def control_signals(
    notes: tuple[Note, ...],
    code: str,
    loudness: np.ndarray,
    fps: float,
    lag_frames: int,
    rng: np.random.Generator,
) -> Controls:
    """Control signals at ``fps`` for one player; ``loudness`` is the stem's RMS per frame.

    ``lag_frames`` shifts the motion against the sound (positive: motion late).
    """
    T = loudness.shape[0]
    t = (np.arange(T) - lag_frames) / fps
    inst = INSTRUMENTS[code]
    starts = np.array([n.start for n in notes])
    ends = np.array([n.end for n in notes])
    cur = np.searchsorted(starts, t, side="right") - 1  # index of the last note started
    has = cur >= 0
    ci = np.clip(cur, 0, len(notes) - 1)
    sounding = has & (t < ends[ci])
    pitches = np.array([n.pitch for n in notes], float)
    vel = np.array([n.velocity for n in notes], float) / 127.0
    pitch = np.where(has, (pitches[ci] - inst.low) / max(inst.high - inst.low, 1), 0.5)
    since = np.where(has, t - starts[ci], 1e3)
    attack = np.where(has, vel[ci] * np.exp(-since / 0.09), 0.0)
    x = np.maximum(since, 0.0) / 0.07
    pulse = np.where(has, vel[ci] * x * np.exp(1.0 - x), 0.0)
    left, right = _finger_tracks(notes, code, ci, has, fps)
    loud = loudness / max(float(loudness.max()), 1e-9)
    return Controls(
        bow=_bow_track(notes, ci, has, since, sounding, fps) if inst.family == "bowed" else np.zeros(T),
        pitch=_smooth(pitch, 0.04 * fps),
        fingers_left=left,
        fingers_right=right,
        attack=attack,
        pulse=pulse,
        breath=_breath_track(starts, ends, t),
        loud=_smooth(loud, 0.15 * fps),
        idle=_idle_track(rng, T, fps, sounding),
        sounding=sounding,
    )


def _smooth(x: np.ndarray, frames: float) -> np.ndarray:
    """One-pole low-pass along time (axis 0) with a time constant of ``frames``."""
    a = 1.0 / (1.0 + max(frames, 0.0))
    out = np.empty_like(x, dtype=float)
    acc = x[0].astype(float)
    for i in range(x.shape[0]):
        acc = acc + a * (x[i] - acc)
        out[i] = acc
    return out


def _bow_track(notes, ci, has, since, sounding, fps) -> np.ndarray:
    """Bow position: each note is a stroke in the other direction, fast at its start.

    The stroke's length grows with velocity; speed peaks at the onset and relaxes
    to a sustain speed, as a real bow attack does. Between notes the bow rests.
    """
    T = ci.shape[0]
    vel = np.array([n.velocity for n in notes], float) / 127.0
    dur = np.array([max(n.end - n.start, 0.05) for n in notes])
    length = 0.25 + 0.5 * vel  # fraction of the bow one note uses
    direction = np.where(ci % 2 == 0, 1.0, -1.0)
    shape = 1.0 + 3.0 * np.exp(-since / 0.07)  # attack accent, integrated below
    norm = dur[ci] + 3.0 * 0.07 * (1 - np.exp(-dur[ci] / 0.07))
    speed = np.where(has & sounding, direction * length[ci] * shape / norm, 0.0)
    pos = np.empty(T)
    p = 0.5
    for i in range(T):
        p += speed[i] / fps
        if p > 1.0 or p < 0.0:  # ran out of bow: reflect (a bow change)
            p = 2.0 - p if p > 1.0 else -p
        pos[i] = p
    return pos


def _finger_tracks(notes, code, ci, has, fps) -> tuple[np.ndarray, np.ndarray]:
    """Finger flexion of both hands, from each note's pitch (a fingering chart of sorts)."""
    T = ci.shape[0]
    family = INSTRUMENTS[code].family
    per_note = np.array([_fingering(n.pitch, family) for n in notes])  # (N, 2, 5)
    raw = np.where(has[:, None, None], per_note[ci], 0.25)
    flex = 0.15 + 0.7 * raw
    smooth = _smooth(flex.reshape(T, 10), 0.03 * fps).reshape(T, 2, 5)
    return smooth[:, 0], smooth[:, 1]


def _fingering(pitch: int, family: str) -> np.ndarray:
    """Which fingers press for ``pitch``: (2 hands, 5 fingers) of 0/1, deterministic."""
    left = np.zeros(5)
    right = np.zeros(5)
    if family == "bowed":
        down = pitch % 5  # 0 = open string, then first to fourth finger
        left[1 : 1 + down] = 1.0
        left[0] = 0.5
        right[:] = (0.6, 0.5, 0.5, 0.5, 0.3)  # the bow grip does not change
    elif family == "woodwind":
        code = (pitch * 37 + 11) % 64
        bits = [(code >> k) & 1 for k in range(6)]
        left[1:4] = bits[:3]
        right[1:4] = bits[3:]
        left[0] = 1.0 if pitch >= 72 else 0.0  # the register key
        right[0] = 0.4
    else:  # brass: three valves under the right hand
        right[1:4] = VALVES[pitch % 7]
        left[:] = 0.6
    return np.stack([left, right])


def _breath_track(starts: np.ndarray, ends: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rises over 0.4 s before each phrase start (an onset after a rest of 0.3 s), then falls."""
    gaps = starts[1:] - ends[:-1]
    phrase_starts = np.concatenate([starts[:1], starts[1:][gaps > 0.3]])
    out = np.zeros_like(t)
    for s in phrase_starts:
        rise = np.clip((t - (s - 0.4)) / 0.4, 0, 1)
        fall = np.exp(-np.maximum(t - s, 0) / 0.8)
        out = np.maximum(out, np.where(t < s, rise, fall))
    return out


def _idle_track(rng: np.random.Generator, T: int, fps: float, sounding: np.ndarray) -> np.ndarray:
    """Slow random motion (three channels), larger while the player rests."""
    noise = rng.normal(0, 1, size=(T, 3))
    slow = _smooth(_smooth(noise, 0.6 * fps), 0.6 * fps)
    slow /= max(float(np.abs(slow).max()), 1e-9)
    gain = _smooth(np.where(sounding, 0.4, 1.0), 0.3 * fps)
    return slow * gain[:, None]


# --- posture -------------------------------------------------------------------------------


def _rot(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate 2-D vectors ``(..., 2)`` by ``angle`` radians (image coordinates)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def _vec(x: float, y: float, T: int) -> np.ndarray:
    return np.tile(np.array([x, y], float), (T, 1))


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, L: float, outward: float) -> np.ndarray:
    """Elbow position by two-link inverse kinematics; ``outward`` (+1/-1) picks the bend side."""
    d = wrist - shoulder
    dist = np.clip(np.linalg.norm(d, axis=-1), 1e-6, None)
    a, b = UPPER_ARM * L, FOREARM * L
    dist_c = np.clip(dist, abs(a - b) + 1e-3, a + b - 1e-3)
    along = (a**2 - b**2 + dist_c**2) / (2 * dist_c)
    h = np.sqrt(np.clip(a**2 - along**2, 0, None))
    u = d / dist[:, None]
    n = np.stack([-u[:, 1], u[:, 0]], axis=-1) * outward
    return shoulder + u * along[:, None] + n * h[:, None]


def hand_points(wrist: np.ndarray, angle: np.ndarray, flex: np.ndarray, L: float, side: int) -> np.ndarray:
    """21 hand joints from the wrist, the hand's pointing angle and per-finger flexion.

    ``side`` is +1 for the person's left hand, -1 for the right (mirrors the thumb
    and the curl). Returns ``(T, 21, 2)``.
    """
    T = wrist.shape[0]
    h = HAND * L
    out = np.zeros((T, 21, 2))
    out[:, 0] = wrist
    spread = np.array([-0.9, -0.3, -0.1, 0.1, 0.3]) * side  # thumb far out, then index..pinky
    base_len = np.array([0.2, 0.45, 0.45, 0.43, 0.4]) * h
    seg = (
        np.array([[0.2, 0.16, 0.13], [0.24, 0.15, 0.11], [0.26, 0.17, 0.12], [0.24, 0.16, 0.11], [0.19, 0.12, 0.1]]) * h
    )
    for f in range(5):
        a = angle + spread[f]
        p = wrist + _rot(np.array([1.0, 0.0]), a) * base_len[f]
        out[:, 1 + 4 * f] = p
        bend = a.copy()
        for k in range(3):
            bend = bend - side * flex[:, f] * (0.5, 0.7, 0.5)[k] * (0.6 if f == 0 else 1.0)
            p = p + _rot(np.array([1.0, 0.0]), bend) * seg[f, k]
            out[:, 2 + 4 * f + k] = p
    return out


def pose_sequence(c: Controls, code: str, seat: Seat) -> np.ndarray:
    """Keypoints of one seated player for every frame: ``(T, 67, 2)`` (body, left hand, right hand)."""
    T = c.bow.shape[0]
    L = seat.L
    inst = INSTRUMENTS[code]
    lean = 0.05 * (c.loud - 0.5) + 0.04 * c.idle[:, 0] + 0.02 * c.attack
    hip = _vec(seat.x, seat.y, T) + np.stack([3 * c.idle[:, 2], np.zeros(T)], -1) * L / 40
    up = _rot(np.array([0.0, -1.0]), lean)
    neck = hip + up * L * (1.0 + 0.03 * c.breath)[:, None]
    side = _rot(np.array([1.0, 0.0]), lean)  # towards the person's left
    kp = np.zeros((T, PERSON_JOINTS, 2))
    kp[:, B["MidHip"]] = hip
    kp[:, B["Neck"]] = neck
    shoulder_lift = up * (0.04 * c.breath * L)[:, None]
    kp[:, B["RShoulder"]] = neck - side * 0.42 * L + shoulder_lift
    kp[:, B["LShoulder"]] = neck + side * 0.42 * L + shoulder_lift
    nod = 0.08 * c.idle[:, 1] + 0.06 * c.attack
    head_up = _rot(up, nod * 0.3)
    nose = neck + head_up * 0.36 * L
    kp[:, B["Nose"]] = nose
    for name, dx, dy in (("REye", -0.07, -0.07), ("LEye", 0.07, -0.07), ("REar", -0.15, -0.03), ("LEar", 0.15, -0.03)):
        kp[:, B[name]] = nose + side * dx * L - head_up * dy * L
    for s, hipn, knee, ankle, big, small, heel in (
        (-1, "RHip", "RKnee", "RAnkle", "RBigToe", "RSmallToe", "RHeel"),
        (1, "LHip", "LKnee", "LAnkle", "LBigToe", "LSmallToe", "LHeel"),
    ):
        h = _vec(seat.x + s * 0.22 * L, seat.y, T)
        kp[:, B[hipn]] = h
        kp[:, B[knee]] = h + np.array([s * 0.12 * L, 0.38 * L])
        kp[:, B[ankle]] = kp[:, B[knee]] + np.array([s * 0.03 * L, 0.85 * L])
        kp[:, B[heel]] = kp[:, B[ankle]] + np.array([0.0, 0.06 * L])
        kp[:, B[big]] = kp[:, B[ankle]] + np.array([-s * 0.02 * L, 0.14 * L])
        kp[:, B[small]] = kp[:, B[ankle]] + np.array([s * 0.08 * L, 0.12 * L])
    wl, wr, al, ar = _hand_targets(c, inst.family, code, kp, L)
    kp[:, B["LWrist"]], kp[:, B["RWrist"]] = wl, wr
    kp[:, B["LElbow"]] = _elbow(kp[:, B["LShoulder"]], wl, L, outward=-1.0)
    kp[:, B["RElbow"]] = _elbow(kp[:, B["RShoulder"]], wr, L, outward=1.0)
    kp[:, LEFT_HAND] = hand_points(wl, al, c.fingers_left, L, side=1)
    kp[:, RIGHT_HAND] = hand_points(wr, ar, c.fingers_right, L, side=-1)
    return kp


def _hand_targets(c: Controls, family: str, code: str, kp: np.ndarray, L: float):
    """Wrist positions and hand angles of both hands for the instrument's posture."""
    neck, hip, nose = kp[:, B["Neck"]], kp[:, B["MidHip"]], kp[:, B["Nose"]]
    T = neck.shape[0]
    bob = (0.09 * c.pulse * L)[:, None] * np.array([0.0, 1.0])  # tonguing moves the instrument
    if code in ("vn", "va"):
        # Held on the left shoulder, pointing to the image's right; the left hand moves
        # along the neck with pitch, the right hand draws the bow across the body.
        wl = neck + np.stack([(0.95 - 0.3 * c.pitch) * L, _const(-0.05 * L, T)], -1)
        wr = neck + np.stack([(0.05 - 0.65 * c.bow) * L, 0.28 * L + 0.06 * L * c.bow], -1)
        return wl, wr, _const(-1.9, T), _const(-0.2, T)
    if family == "bowed":  # cello and bass stand between the knees
        scale = 1.2 if code == "db" else 1.0
        wl = hip + np.stack([_const(0.32 * L, T), (-1.05 + 0.6 * c.pitch) * L * scale], -1)
        wr = hip + np.stack([(0.15 - 0.7 * c.bow) * L, _const(0.1 * L, T)], -1)
        return wl, wr, _const(np.pi, T), _const(0.3, T)
    mouth = nose + np.array([0.0, 0.14 * L])
    if code == "fl":  # held level, to the image's left
        wl = mouth + np.array([-0.35 * L, 0.1 * L]) + bob
        wr = mouth + np.array([-0.85 * L, 0.16 * L]) + bob
        return wl, wr, _const(-np.pi / 2, T), _const(-np.pi / 2, T)
    if code == "bn":  # held diagonally across the body
        wl = hip + np.array([0.05 * L, -0.75 * L]) + bob
        wr = hip + np.array([-0.2 * L, -0.35 * L]) + bob
        return wl, wr, _const(np.pi - 0.4, T), _const(0.4, T)
    if code == "tbn":  # the slide goes out with lower positions
        slide = 0.35 + 0.55 * (1.0 - c.pitch)
        wl = mouth + np.array([0.1 * L, 0.25 * L]) + bob
        wr = mouth + np.stack([-0.25 * slide * L, (0.25 + 0.6 * slide) * L], -1) + bob
        return wl, wr, _const(np.pi, T), _const(-np.pi / 2, T)
    if family == "brass":
        wl = mouth + np.array([0.25 * L, 0.45 * L]) + bob
        wr = mouth + np.array([-0.15 * L, 0.4 * L]) + bob
        return wl, wr, _const(np.pi, T), _const(-1.2, T)
    # clarinet, oboe, saxophone: in front of the body, left hand above the right
    wl = mouth + np.array([0.12 * L, 0.45 * L]) + bob
    wr = mouth + np.array([0.1 * L, 0.85 * L]) + bob
    return wl, wr, _const(np.pi, T), _const(0.0, T)


def _const(value: float, T: int) -> np.ndarray:
    return np.full(T, float(value))


# --- nuisances -----------------------------------------------------------------------------


def add_nuisances(kp: np.ndarray, rng: np.random.Generator, jitter_px: float, missing_rate: float) -> np.ndarray:
    """Keypoints ``(T, J, 2)`` → ``(T, J, 3)`` with jitter, detector confidences and missing joints.

    A missing joint (confidence 0) lasts 1 to 5 frames, as detector drop-outs do.
    """
    T, J, _ = kp.shape
    xy = kp + rng.normal(0, jitter_px, size=kp.shape)
    conf = rng.uniform(0.55, 0.95, size=(T, J))
    starts = rng.random((T, J)) < missing_rate / 3.0  # drop-outs last 3 frames on average
    lengths = rng.integers(1, 6, size=(T, J))
    missing = np.zeros((T, J), bool)
    for k in range(5):
        missing[k:] |= starts[: T - k] & (lengths[: T - k] > k)
    out = np.concatenate([xy, conf[..., None]], axis=-1)
    out[missing] = 0.0
    return out
