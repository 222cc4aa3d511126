"""The CPU pose backend whose weights ship inside the wheel: MediaPipe Holistic (body + both hands).

Holistic sees one person per image. To find several, the backend runs it,
greys out the person it found, and runs it again, up to :data:`MAX_PERSONS`
times per frame. Runs offline: mediapipe 0.10.21's legacy solutions carry their
models (with ``model_complexity=1``; the other complexities download theirs).
"""

from __future__ import annotations

import numpy as np

from pipeline.pose import layout
from pipeline.pose.backends import PoseBackend

MAX_PERSONS = 5
MIN_VISIBILITY = 0.2  # pose landmarks less visible than this are missing joints
HAND_CONFIDENCE = 0.8  # Holistic gives hand landmarks no per-joint score: a found hand is this sure


class MediaPipeBackend(PoseBackend):
    """MediaPipe Holistic, repeated with found persons masked out."""

    name = "mediapipe"

    def __init__(self, max_persons: int = MAX_PERSONS) -> None:
        import mediapipe as mp

        self.max_persons = max_persons
        self._holistic = mp.solutions.holistic.Holistic(
            static_image_mode=True, model_complexity=1, enable_segmentation=False, refine_face_landmarks=False
        )

    def detect(self, frames: np.ndarray, scale: tuple[float, float]) -> list[list[np.ndarray]]:
        """Persons in each frame ``(n, h, w, 3)`` RGB, in original pixels (``scale`` = original / decoded)."""
        return [self._frame(np.ascontiguousarray(f), scale) for f in frames]

    def _frame(self, frame: np.ndarray, scale: tuple[float, float]) -> list[np.ndarray]:
        h, w = frame.shape[:2]
        work = frame.copy()
        fill = np.array(frame.reshape(-1, 3).mean(axis=0), np.uint8)
        people = []
        for _ in range(self.max_persons):
            res = self._holistic.process(work)
            if res.pose_landmarks is None:
                break
            pose = _points(res.pose_landmarks, w, h, visibility=True)
            left = _points(res.left_hand_landmarks, w, h) if res.left_hand_landmarks else None
            right = _points(res.right_hand_landmarks, w, h) if res.right_hand_landmarks else None
            kp = layout.from_mediapipe(pose, left, right)
            box = layout.bounding_box(kp)
            if box is None:
                break
            kp[:, 0] *= scale[0]
            kp[:, 1] *= scale[1]
            people.append(layout.clean(kp))
            _mask(work, box, fill)
        return people


def _points(landmarks, w: int, h: int, visibility: bool = False) -> np.ndarray:
    pts = np.array([(p.x * w, p.y * h, p.visibility if visibility else HAND_CONFIDENCE) for p in landmarks.landmark])
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    pts[~inside | (pts[:, 2] < MIN_VISIBILITY)] = 0.0
    return pts.astype(np.float32)


def _mask(img: np.ndarray, box: np.ndarray, fill: np.ndarray) -> None:
    """Grey out a found person (box grown by 15%) so the next pass finds someone else."""
    x0, y0, x1, y1 = box
    mx, my = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    h, w = img.shape[:2]
    img[int(max(y0 - my, 0)) : int(min(y1 + my, h)), int(max(x0 - mx, 0)) : int(min(x1 + mx, w))] = fill
