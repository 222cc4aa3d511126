"""The canonical joint layout every pose backend maps into, and its graph.

61 joints per person: 19 body joints (OpenPose BODY_25 without the feet), then
the left hand and the right hand, 21 joints each (OpenPose / COCO-WholeBody hand
order: wrist, then four joints per finger from thumb to pinky). "Left" and
"right" are the person's own sides.

Each joint is ``(x, y, confidence)`` in pixels of the decoded frame.

**Missing joints**: a joint the backend did not find has confidence 0 and
``x = y = 0``. Joints some formats lack (the neck and the mid-hip in COCO) are
derived as the midpoint of their two neighbours, with the smaller of their two
confidences, and are missing if either neighbour is.

This module is the only place that defines joints and edges.
"""

from __future__ import annotations

import numpy as np

from pipeline.pose.openpose import BODY_25, BODY_25_EDGES, HAND_21, HAND_21_EDGES

BODY: tuple[str, ...] = BODY_25[:19]
JOINTS: tuple[str, ...] = BODY + tuple(f"LHand{n}" for n in HAND_21) + tuple(f"RHand{n}" for n in HAND_21)
NUM_JOINTS = len(JOINTS)  # 61
INDEX = {name: i for i, name in enumerate(JOINTS)}
LEFT_HAND = slice(len(BODY), len(BODY) + 21)
RIGHT_HAND = slice(len(BODY) + 21, NUM_JOINTS)

EDGES: tuple[tuple[int, int], ...] = (
    tuple((a, b) for a, b in BODY_25_EDGES if a < len(BODY) and b < len(BODY))
    + tuple((LEFT_HAND.start + a, LEFT_HAND.start + b) for a, b in HAND_21_EDGES)
    + tuple((RIGHT_HAND.start + a, RIGHT_HAND.start + b) for a, b in HAND_21_EDGES)
    + ((INDEX["LWrist"], LEFT_HAND.start), (INDEX["RWrist"], RIGHT_HAND.start))  # arm to hand
)


def adjacency(self_loops: bool = True) -> np.ndarray:
    """Symmetric 0/1 adjacency matrix ``(61, 61)`` of the skeleton graph."""
    a = np.zeros((NUM_JOINTS, NUM_JOINTS), np.float32)
    for i, j in EDGES:
        a[i, j] = a[j, i] = 1.0
    if self_loops:
        a += np.eye(NUM_JOINTS, dtype=np.float32)
    return a


def hops_from(root: int) -> np.ndarray:
    """Each joint's number of edges from ``root`` (breadth-first over :data:`EDGES`), ``(61,)``."""
    hop = np.full(NUM_JOINTS, -1, np.int64)
    hop[root], frontier = 0, [root]
    while frontier:
        nxt = []
        for i, j in EDGES:
            for a, b in ((i, j), (j, i)):
                if a in frontier and hop[b] < 0:
                    hop[b] = hop[a] + 1
                    nxt.append(b)
        frontier = nxt
    if (hop < 0).any():
        raise ValueError(f"joints not connected to {JOINTS[root]}: {[JOINTS[k] for k in np.flatnonzero(hop < 0)]}")
    return hop


def parents(root: str = "Neck") -> np.ndarray:
    """Each joint's neighbour one hop nearer to ``root`` (the root is its own parent), ``(61,)``."""
    hop = hops_from(INDEX[root])
    out = np.arange(NUM_JOINTS)
    for i, j in EDGES:
        if hop[i] == hop[j] + 1:
            out[i] = j
        elif hop[j] == hop[i] + 1:
            out[j] = i
    return out


def empty(n: int = 1) -> np.ndarray:
    """``(n, 61, 3)`` of missing joints."""
    return np.zeros((n, NUM_JOINTS, 3), np.float32)


def clean(kp: np.ndarray) -> np.ndarray:
    """Apply the missing-joint rule: confidence <= 0 (or NaN) means x = y = c = 0."""
    out = np.nan_to_num(np.asarray(kp, np.float32), nan=0.0)
    out[out[..., 2] <= 0] = 0.0
    return out


def midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A derived joint between ``a`` and ``b`` (``(..., 3)``); missing if either is."""
    out = np.concatenate([(a[..., :2] + b[..., :2]) / 2, np.minimum(a[..., 2:], b[..., 2:])], axis=-1)
    out[(a[..., 2] <= 0) | (b[..., 2] <= 0)] = 0.0
    return out


def from_openpose(person: np.ndarray, body_format: str = "BODY_25") -> np.ndarray:
    """One OpenPose person ``(67, 3)`` (body padded to 25, left hand, right hand) → ``(61, 3)``."""
    out = empty()[0]
    body = person[:25]
    if body_format == "BODY_25":
        out[: len(BODY)] = body[: len(BODY)]
    elif body_format == "COCO_18":
        coco = body[:18]
        # COCO-18 has BODY_25's first eight joints, then no MidHip: the rest shift by one
        out[:8] = coco[:8]
        out[9:19] = coco[8:18]
        out[INDEX["MidHip"]] = midpoint(coco[8], coco[11])
    else:
        raise ValueError(f"unknown OpenPose body format {body_format!r} (BODY_25 or COCO_18)")
    out[LEFT_HAND] = person[25:46]
    out[RIGHT_HAND] = person[46:67]
    return clean(out)


assert len(INDEX) == NUM_JOINTS, "joint names must be unique"

# COCO-17 (mmpose body and the first 17 of COCO-WholeBody) → our body joints.
_COCO17 = {
    "Nose": 0, "LEye": 1, "REye": 2, "LEar": 3, "REar": 4, "LShoulder": 5, "RShoulder": 6,
    "LElbow": 7, "RElbow": 8, "LWrist": 9, "RWrist": 10, "LHip": 11, "RHip": 12,
    "LKnee": 13, "RKnee": 14, "LAnkle": 15, "RAnkle": 16,
}  # fmt: skip


def from_coco_wholebody(kp: np.ndarray) -> np.ndarray:
    """COCO-WholeBody keypoints ``(133, 3)`` (mmpose's whole-body models) → ``(61, 3)``.

    Its layout: 17 body, 6 feet, 68 face, then 21 left-hand and 21 right-hand joints.
    A body-only COCO model's ``(17, 3)`` is taken too: its hands are then missing.
    """
    if kp.shape[0] not in (17, 133):
        raise ValueError(f"expected COCO (17) or COCO-WholeBody (133) keypoints, got {kp.shape[0]}")
    if kp.shape[0] == 17:
        kp = np.concatenate([kp, np.zeros((133 - 17, kp.shape[1]), kp.dtype)])
    out = empty()[0]
    for name, i in _COCO17.items():
        out[INDEX[name]] = kp[i]
    out[INDEX["Neck"]] = midpoint(kp[5], kp[6])
    out[INDEX["MidHip"]] = midpoint(kp[11], kp[12])
    out[LEFT_HAND] = kp[91:112]
    out[RIGHT_HAND] = kp[112:133]
    return clean(out)


# MediaPipe Pose's 33 landmarks → our body joints.
_MEDIAPIPE = {
    "Nose": 0, "LEye": 2, "REye": 5, "LEar": 7, "REar": 8, "LShoulder": 11, "RShoulder": 12,
    "LElbow": 13, "RElbow": 14, "LWrist": 15, "RWrist": 16, "LHip": 23, "RHip": 24,
    "LKnee": 25, "RKnee": 26, "LAnkle": 27, "RAnkle": 28,
}  # fmt: skip


def from_mediapipe(pose: np.ndarray | None, left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray:
    """MediaPipe Pose ``(33, 3)`` and Hands ``(21, 3)`` each (or None) → ``(61, 3)``.

    MediaPipe's hand landmarks use the same 21-joint order as OpenPose.
    """
    out = empty()[0]
    if pose is not None:
        for name, i in _MEDIAPIPE.items():
            out[INDEX[name]] = pose[i]
        out[INDEX["Neck"]] = midpoint(pose[11], pose[12])
        out[INDEX["MidHip"]] = midpoint(pose[23], pose[24])
    if left is not None:
        out[LEFT_HAND] = left
    if right is not None:
        out[RIGHT_HAND] = right
    return clean(out)


def bounding_box(kp: np.ndarray) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` around the found joints of one person ``(61, 3)``, or None if none is."""
    seen = kp[kp[:, 2] > 0, :2]
    if len(seen) == 0:
        return None
    return np.concatenate([seen.min(axis=0), seen.max(axis=0)])
