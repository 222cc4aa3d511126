"""OpenPose's keypoint formats and its per-frame JSON files.

OpenPose writes one JSON file per video frame::

    {"version": 1.3, "people": [{"person_id": [-1],
                                 "pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...],
                                 "hand_left_keypoints_2d": [...21 x 3...],
                                 "hand_right_keypoints_2d": [...21 x 3...], ...}]}

Coordinates are pixels in the original frame; a joint that was not found is
``0, 0, 0`` (confidence 0). "Left" and "right" are the person's own sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BODY_25: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
BODY_25_INDEX = {name: i for i, name in enumerate(BODY_25)}

# Limbs as OpenPose draws them (pairs of BODY_25 indices).
BODY_25_EDGES: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
    (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)  # fmt: skip

# 21 hand joints: the wrist, then four joints per finger from the palm outwards.
FINGERS: tuple[str, ...] = ("Thumb", "Index", "Middle", "Ring", "Pinky")
HAND_21: tuple[str, ...] = ("Wrist",) + tuple(f"{finger}{k}" for finger in FINGERS for k in range(1, 5))
HAND_21_EDGES: tuple[tuple[int, int], ...] = tuple(
    (0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)
)

# One person as the benchmark stores it: body, then left hand, then right hand.
PERSON_JOINTS = len(BODY_25) + 2 * len(HAND_21)  # 67
LEFT_HAND = slice(len(BODY_25), len(BODY_25) + len(HAND_21))
RIGHT_HAND = slice(len(BODY_25) + len(HAND_21), PERSON_JOINTS)


@dataclass(frozen=True)
class Frame:
    """The people of one frame, each a ``(67, 3)`` array: BODY_25, left hand, right hand (x, y, c).

    ``body_joints`` is the body format's size in the file: 25 (BODY_25) or 18 (COCO-18,
    stored in the first 18 rows in its own order).
    """

    people: tuple[np.ndarray, ...]
    body_joints: int = 25


def write_frame(path: Path, people: list[np.ndarray]) -> None:
    """Write one OpenPose JSON file; ``people`` are ``(67, 3)`` arrays (body, left hand, right hand).

    Values are written rounded to 3 decimals, as drawn: callers round first
    (:func:`round_keypoints`) so what they draw equals what the file says.
    """
    doc = {"version": 1.3, "people": [_person_doc(p) for p in people]}
    path.write_text(json.dumps(doc, separators=(",", ":")))


def round_keypoints(kps: np.ndarray) -> np.ndarray:
    """Round keypoints the way they are stored (3 decimals); missing joints become exactly 0."""
    out = np.round(kps.astype(np.float64), 3)
    out[out[..., 2] <= 0] = 0.0
    return out


def read_frame(path: Path) -> Frame:
    """Read one OpenPose JSON file into ``(67, 3)`` arrays (absent hands are all-zero).

    BODY_25 and COCO-18 bodies are both accepted; a COCO-18 body is returned in
    its own 18-joint order padded to 25 (its joint order differs from BODY_25:
    map it with the pose layout module before use). Raises ValueError naming
    the file when the file is not OpenPose JSON.
    """
    try:
        doc = json.loads(Path(path).read_text())
        people = []
        body_joints = 25
        for p in doc["people"]:
            body = _triples(p.get("pose_keypoints_2d", []))
            if body.shape[0] not in (18, 25):
                raise ValueError(f"{body.shape[0]} body joints (expected 25 or 18)")
            body_joints = body.shape[0]
            arr = np.zeros((PERSON_JOINTS, 3), np.float32)
            arr[: body.shape[0]] = body
            for key, part in (("hand_left_keypoints_2d", LEFT_HAND), ("hand_right_keypoints_2d", RIGHT_HAND)):
                hand = _triples(p.get(key) or [])
                if hand.shape[0] == 21:
                    arr[part] = hand
            people.append(arr)
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable OpenPose JSON file ({e})") from None
    return Frame(tuple(people), body_joints)


def _triples(values: list[float]) -> np.ndarray:
    if len(values) % 3:
        raise ValueError(f"keypoint list of length {len(values)} is not x, y, c triples")
    return np.asarray(values, np.float32).reshape(-1, 3)


def _person_doc(person: np.ndarray) -> dict:
    def flat(a: np.ndarray) -> list[float]:
        return [round(float(v), 3) for v in a.reshape(-1)]

    return {
        "person_id": [-1],
        "pose_keypoints_2d": flat(person[: len(BODY_25)]),
        "face_keypoints_2d": [],
        "hand_left_keypoints_2d": flat(person[LEFT_HAND]),
        "hand_right_keypoints_2d": flat(person[RIGHT_HAND]),
        "pose_keypoints_3d": [],
        "face_keypoints_3d": [],
        "hand_left_keypoints_3d": [],
        "hand_right_keypoints_3d": [],
    }
