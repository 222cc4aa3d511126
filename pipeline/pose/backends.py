"""Pose backends: each turns the frames of a video into persons in the canonical layout.

Every backend answers :meth:`PoseBackend.detect` for a list of frame times and
returns, per time, a list of ``(61, 3)`` arrays in the original video's pixels.

- ``openpose``: reads precomputed OpenPose JSON (BODY_25 or COCO-18, hands
  optional); needs no pixels at all.
- ``mediapipe`` and ``mmpose`` (in later modules) look at the pixels.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from pipeline import storage
from pipeline.pose import layout
from pipeline.pose.openpose import read_frame


class PoseBackend:
    """Interface: persons per requested frame."""

    name = "base"
    needs_pixels = True

    def detect(self, frames: np.ndarray, scale: tuple[float, float]) -> list[list[np.ndarray]]:
        """Persons in each of ``frames`` ``(n, h, w, 3)``; ``scale`` maps their pixels to the original's."""
        raise NotImplementedError

    def detect_indices(self, native_indices: np.ndarray) -> list[list[np.ndarray]]:
        """Persons at native frame indices, for backends that need no pixels (``needs_pixels`` False)."""
        raise NotImplementedError


class OpenPoseJSON(PoseBackend):
    """Precomputed OpenPose output: one ``*_keypoints.json`` per native video frame."""

    name = "openpose"
    needs_pixels = False

    def __init__(self, folder_uri: str) -> None:
        entries = [e for e in storage.list_files(folder_uri) if e.rel.endswith("_keypoints.json")]
        if not entries:
            raise ValueError(f"{folder_uri}: no OpenPose *_keypoints.json files")
        self.folder = folder_uri
        self.files = sorted(e.rel for e in entries)

    def detect_indices(self, native_indices: np.ndarray) -> list[list[np.ndarray]]:
        """Persons at the given native frame indices (files are in frame order)."""
        out = []
        for i in native_indices:
            if i >= len(self.files):
                out.append([])  # OpenPose stopped early: no persons there
                continue
            with storage.local_copy(storage.join(self.folder, self.files[int(i)])) as local:
                frame = read_frame(local)
            fmt = "COCO_18" if frame.body_joints == 18 else "BODY_25"
            out.append([layout.from_openpose(p, fmt) for p in frame.people])
        return out

    def __repr__(self) -> str:
        return f"OpenPoseJSON({PurePosixPath(self.folder).name}, {len(self.files)} frames)"
