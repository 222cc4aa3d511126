import json

import numpy as np
import pytest

from conftest import shared_data
from pipeline.pose.openpose import (
    BODY_25,
    HAND_21,
    HAND_21_EDGES,
    LEFT_HAND,
    PERSON_JOINTS,
    RIGHT_HAND,
    read_frame,
    round_keypoints,
    write_frame,
)


def test_formats():
    assert len(BODY_25) == 25 and len(HAND_21) == 21 and PERSON_JOINTS == 67
    # the hand is a tree rooted at the wrist: 20 bones, each joint but the wrist has one parent
    assert len(HAND_21_EDGES) == 20
    assert sorted(b for _, b in HAND_21_EDGES) == list(range(1, 21))


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    people = [round_keypoints(np.concatenate([rng.uniform(0, 600, (67, 2)), rng.uniform(0.1, 1, (67, 1))], 1))]
    people[0][5] = 0.0  # a missing joint
    path = tmp_path / "f_000000000000_keypoints.json"
    write_frame(path, people)
    doc = json.loads(path.read_text())
    person = doc["people"][0]
    assert len(person["pose_keypoints_2d"]) == 75
    assert len(person["hand_left_keypoints_2d"]) == len(person["hand_right_keypoints_2d"]) == 63
    back = read_frame(path).people[0]
    assert np.allclose(back, people[0], atol=1e-3)
    assert (back[5] == 0).all()
    assert np.allclose(back[LEFT_HAND], people[0][LEFT_HAND], atol=1e-3)
    assert np.allclose(back[RIGHT_HAND], people[0][RIGHT_HAND], atol=1e-3)


def test_reads_real_openpose_output():
    """Real OpenPose BODY_25 output (three seated musicians, no hands)."""
    folder = shared_data("raga_performance", "example_3people", "output_json")
    files = sorted(folder.glob("*_keypoints.json"))
    assert len(files) == 125
    frame = read_frame(files[0])
    assert len(frame.people) == 3
    for person in frame.people:
        assert person.shape == (67, 3)
        assert (person[LEFT_HAND] == 0).all()  # no hands in this file: all missing
        body = person[: len(BODY_25)]
        seen = body[body[:, 2] > 0]
        assert len(seen) >= 5  # seated, partly occluded people at the frame's edge: some joints found
        assert (seen[:, 0] > 0).all() and (seen[:, 0] < 768 + 16).all() and (seen[:, 1] < 576).all()
    # the three musicians sit side by side
    xs = sorted(float(np.median(p[:25][p[:25, 2] > 0, 0])) for p in frame.people)
    assert xs[1] - xs[0] > 100 and xs[2] - xs[1] > 100


def test_bad_file_names_the_file(tmp_path):
    bad = tmp_path / "bad_keypoints.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad_keypoints.json"):
        read_frame(bad)
    odd = tmp_path / "odd_keypoints.json"
    odd.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}))
    with pytest.raises(ValueError, match="odd_keypoints.json"):
        read_frame(odd)
