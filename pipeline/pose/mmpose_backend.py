"""The GPU-cluster pose backend: a top-down whole-body model from the mmpose model zoo.

``preprocess.mmpose_config`` names the model (a config file, or a path inside
mmpose's own config tree such as ``wholebody_2d_keypoint/rtmpose/coco-wholebody/
rtmpose-m_8xb64-270e_coco-wholebody-256x192.py``) and
``preprocess.mmpose_checkpoint`` its weights (a path or URL; mmengine
downloads URLs). With ``preprocess.detector_config`` / ``detector_checkpoint``
an mmdet person detector gives the boxes; without one, the whole frame is one
box (one person per video).

The model outputs COCO-WholeBody's 133 keypoints, mapped into the canonical
layout. Runs on CUDA when the actor has a GPU (``preprocess.pose_gpus``), on
the CPU otherwise.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

from pipeline.config import PreprocessConfig
from pipeline.pose import layout
from pipeline.pose.backends import PoseBackend

PERSON_SCORE = 0.5  # detector boxes below this are not persons


def install_mmcv_ext_placeholder() -> None:
    """Let mmpose import on ``mmcv-lite`` (no compiled ops).

    mmpose imports a deformable-attention op at import time although RTMPose
    never runs it. The placeholder module names every op (mmcv checks they
    exist) and makes calling one a clear error. Does nothing with full mmcv.
    """
    if "mmcv._ext" in sys.modules or importlib.util.find_spec("mmcv") is None:
        return
    try:
        if importlib.util.find_spec("mmcv._ext") is not None:
            return
    except ModuleNotFoundError:
        pass
    ext = types.ModuleType("mmcv._ext")
    ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)

    def __getattr__(name: str):  # noqa: N807 (module-level __getattr__)
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise RuntimeError(f"mmcv op {name} needs full mmcv with compiled ops (mmcv-lite has none)")

        return missing

    ext.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules["mmcv._ext"] = ext


def resolve_config(name: str) -> str:
    """A config file path: ``name`` itself if it exists, else inside mmpose's config tree."""
    if Path(name).is_file():
        return name
    import mmpose

    tree = Path(mmpose.__file__).parent / ".mim" / "configs"
    path = tree / name
    if not path.is_file():
        raise ValueError(f"mmpose config {name!r} not found (not a file, not under {tree})")
    return str(path)


class MMPoseBackend(PoseBackend):
    """Top-down whole-body pose (mmpose) with an optional mmdet person detector."""

    name = "mmpose"

    def __init__(self, cfg: PreprocessConfig, device: str | None = None) -> None:
        import torch

        install_mmcv_ext_placeholder()
        from mmpose.apis import init_model

        self.device = device or ("cuda" if torch.cuda.is_available() and cfg.pose_gpus > 0 else "cpu")
        checkpoint = cfg.mmpose_checkpoint or None
        try:
            self.model = init_model(resolve_config(cfg.mmpose_config), checkpoint, device=self.device)
        except OSError as e:  # a URL that cannot be fetched, a missing file
            raise ValueError(f"cannot load mmpose checkpoint {checkpoint}: {e}") from None
        self.detector = None
        if cfg.detector_config:
            from mmdet.apis import init_detector

            self.detector = init_detector(cfg.detector_config, cfg.detector_checkpoint or None, device=self.device)

    def detect(self, frames: np.ndarray, scale: tuple[float, float]) -> list[list[np.ndarray]]:
        """Persons in each frame ``(n, h, w, 3)`` RGB, in original pixels."""
        from mmpose.apis import inference_topdown

        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            bgr = np.ascontiguousarray(frame[..., ::-1])  # mmpose's pipelines expect OpenCV's BGR
            boxes = self._boxes(bgr)
            people = []
            if len(boxes):
                for sample in inference_topdown(self.model, bgr, bboxes=boxes, bbox_format="xyxy"):
                    inst = sample.pred_instances
                    # SimCC scores are not probabilities: clip them to [0, 1]; a joint placed
                    # outside the frame was not seen.
                    scores = np.clip(inst.keypoint_scores[0], 0.0, 1.0)
                    xy = inst.keypoints[0]
                    scores[(xy[:, 0] < 0) | (xy[:, 0] >= w) | (xy[:, 1] < 0) | (xy[:, 1] >= h)] = 0.0
                    kp = np.concatenate([xy, scores[:, None]], axis=1)
                    person = layout.from_coco_wholebody(kp.astype(np.float32))
                    person[:, 0] *= scale[0]
                    person[:, 1] *= scale[1]
                    people.append(layout.clean(person))
            out.append(people)
        return out

    def _boxes(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if self.detector is None:
            return np.array([[0, 0, w, h]], np.float32)
        from mmdet.apis import inference_detector

        pred = inference_detector(self.detector, bgr).pred_instances
        keep = (pred.labels == 0) & (pred.scores > PERSON_SCORE)
        return pred.bboxes[keep].cpu().numpy().astype(np.float32)
