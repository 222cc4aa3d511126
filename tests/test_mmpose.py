"""The mmpose backend: the real whole-body model from mmpose's own configs (random weights offline)."""

import numpy as np
import pytest
import torch

from conftest import shared_data
from pipeline.config import load_config
from pipeline.pose import layout
from pipeline.pose.mmpose_backend import MMPoseBackend, resolve_config
from pipeline.video import iter_frames

RANDOM = ["preprocess.mmpose_checkpoint="]  # model-zoo URLs cannot be fetched here


@pytest.fixture(scope="module")
def frames():
    path = shared_data("raga_performance", "example_3people", "short_video.mp4")
    return next(iter_frames(path, fps=8, size=(384, 288), chunk=4))[1]


@pytest.fixture(scope="module")
def backend():
    torch.manual_seed(0)
    return MMPoseBackend(load_config("tiny", overrides=RANDOM).preprocess)


def test_whole_body_model_from_mmpose_configs(backend, frames):
    assert backend.device == "cpu"
    head = backend.model.head
    assert head.out_channels == 133  # COCO-WholeBody: body, feet, face and both hands
    found = backend.detect(frames, (2.0, 2.0))
    assert len(found) == 4 and all(len(p) == 1 for p in found)  # no detector: the frame is one box
    kp = found[0][0]
    assert kp.shape == (layout.NUM_JOINTS, 3)
    seen = kp[kp[:, 2] > 0]
    assert ((seen[:, 2] <= 1) & (seen[:, 0] < 768) & (seen[:, 1] < 576)).all()  # scaled to the original 768x576
    assert (kp[kp[:, 2] == 0] == 0).all()


def test_checkpoint_saved_with_mmengine_loads_through_our_config(backend, frames, tmp_path):
    from mmengine.runner.checkpoint import save_checkpoint

    with torch.no_grad():
        for p in backend.model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # weights no fresh init would give
    path = tmp_path / "wholebody.pth"
    save_checkpoint({"state_dict": backend.model.state_dict()}, str(path))
    loaded = MMPoseBackend(load_config("tiny", overrides=[f"preprocess.mmpose_checkpoint={path}"]).preprocess)
    for (name, a), b in zip(backend.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert np.array_equal(backend.detect(frames[:1], (1, 1))[0][0], loaded.detect(frames[:1], (1, 1))[0][0])


def test_bad_model_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="not_a_model.py"):
        resolve_config("body_2d_keypoint/not_a_model.py")
    missing = tmp_path / "gone.pth"
    with pytest.raises(ValueError, match="gone.pth"):
        MMPoseBackend(load_config("tiny", overrides=[f"preprocess.mmpose_checkpoint={missing}"]).preprocess)
