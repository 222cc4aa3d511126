import numpy as np
import pytest

from pipeline.pose.openpose import BODY_25_INDEX as B
from pipeline.pose.openpose import RIGHT_HAND
from pipeline.synth import motion
from pipeline.synth.music import Note

FPS = 30


def _controls(code: str, notes: tuple[Note, ...], T: int = 120, lag: int = 0) -> motion.Controls:
    loud = np.ones(T, np.float32)
    return motion.control_signals(notes, code, loud, FPS, lag, np.random.default_rng(0))


def _notes(pitches, step=0.5, length=0.4):
    return tuple(Note(0.2 + i * step, 0.2 + i * step + length, p, 90) for i, p in enumerate(pitches))


def test_hand_points_curl_moves_fingers_not_wrist():
    wrist = np.array([[100.0, 100.0], [100.0, 100.0]])
    angle = np.zeros(2)
    flex = np.array([[0.0] * 5, [0.0, 1.0, 0.0, 0.0, 0.0]])  # second frame: index finger curled
    pts = motion.hand_points(wrist, angle, flex, L=80.0, side=1)
    assert pts.shape == (2, 21, 2)
    moved = np.linalg.norm(pts[1] - pts[0], axis=-1) > 1e-6
    assert not moved[0] and moved[6:9].all()  # wrist still; index PIP, DIP, tip moved
    assert not moved[9:].any() and not moved[1:5].any()  # other fingers untouched


def test_bow_changes_direction_at_every_onset():
    notes = _notes([60, 62, 64, 65, 67, 69])
    c = _controls("vn", notes)
    vel = np.diff(c.bow)
    for i, n in enumerate(notes[1:], start=1):
        f = int(round(n.start * FPS))
        before, after = vel[f - 3], vel[f + 1]
        assert np.sign(before) != np.sign(after), f"no bow change at note {i}"


def test_left_hand_follows_pitch_on_a_cello():
    low, high = _notes([40] * 4), _notes([70] * 4)
    seat = motion.Seat(200, 200, 80)
    wl_low = motion.pose_sequence(_controls("vc", low), "vc", seat)[60, B["LWrist"]]
    wl_high = motion.pose_sequence(_controls("vc", high), "vc", seat)[60, B["LWrist"]]
    assert wl_high[1] > wl_low[1] + 20  # higher notes: the hand is further down the neck


def test_fingers_change_with_pitch_on_winds_and_rest_without_notes():
    c = _controls("cl", _notes([60, 61, 62, 63, 64, 65]))
    flex = np.concatenate([c.fingers_left, c.fingers_right], axis=1)
    change = np.abs(np.diff(flex, axis=0)).sum(axis=1)
    onsets = [int(round((0.2 + i * 0.5) * FPS)) for i in range(1, 6)]
    near = np.array([change[f - 1 : f + 3].sum() for f in onsets])
    assert (near > 0.3).sum() >= 4  # most pitch changes move fingers right at the onset


def test_lag_shifts_motion():
    notes = _notes([60, 64, 67, 72])
    a = _controls("fl", notes, lag=0).pulse
    b = _controls("fl", notes, lag=2).pulse
    assert np.allclose(a[:-2], b[2:])


def test_pose_is_a_seated_person():
    c = _controls("vn", _notes([60, 62, 64]))
    kp = motion.pose_sequence(c, "vn", motion.Seat(320, 216, 79))
    assert kp.shape == (120, 67, 2)
    f = kp[30]
    assert f[B["Nose"], 1] < f[B["Neck"], 1] < f[B["MidHip"], 1] < f[B["RKnee"], 1] < f[B["RAnkle"], 1]
    assert f[B["RShoulder"], 0] < f[B["Neck"], 0] < f[B["LShoulder"], 0]  # facing the camera
    upper = np.linalg.norm(f[B["RElbow"]] - f[B["RShoulder"]])
    assert upper == pytest.approx(motion.UPPER_ARM * 79, rel=1e-3)
    assert np.isfinite(kp[:, RIGHT_HAND]).all()


def test_nuisances_rate_and_format():
    kp = np.zeros((2000, 67, 2)) + 100.0
    out = motion.add_nuisances(kp, np.random.default_rng(0), jitter_px=1.0, missing_rate=0.02)
    assert out.shape == (2000, 67, 3)
    missing = out[..., 2] == 0
    assert 0.01 < missing.mean() < 0.04
    assert (out[missing] == 0).all()
    seen = out[~missing]
    assert abs(seen[:, 0].std() - 1.0) < 0.05 and (seen[:, 2] > 0.5).all()
