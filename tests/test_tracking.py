"""Tracking on real OpenPose output and on the benchmark's shuffled JSON."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data
from pipeline.pose import layout
from pipeline.pose.backends import OpenPoseJSON
from pipeline.pose.tracking import TrackingError, body_centre, select_players, track


def test_raga_three_people_stable_over_all_frames():
    backend = OpenPoseJSON(str(shared_data("raga_performance", "example_3people", "output_json")))
    detections = backend.detect_indices(np.arange(125))
    persons = track(detections)
    assert persons.shape == (3, 125, 61, 3)
    present = (persons[..., 2] > 0).any(axis=-1)
    assert present.mean(axis=1).min() > 0.95  # each person found in (nearly) every frame
    centres = np.array([[body_centre(kp)[0] if p else (np.nan, np.nan) for kp, p in zip(person, pr)]
                        for person, pr in zip(persons, present)])  # fmt: skip
    xs = np.nanmedian(centres[..., 0], axis=1)
    assert (np.diff(xs) > 100).all()  # left to right, well apart
    steps = np.linalg.norm(np.diff(centres, axis=1), axis=-1)
    assert np.nanmax(steps) < 40  # no identity swaps: a swap would jump by ~200 px


def test_benchmark_players_in_seat_order(tiny_bench: Path):
    doc = json.loads((tiny_bench / "benchmark.json").read_text())
    piece = next(p for p in doc["pieces"] if len(p["codes"]) == 3)
    backend = OpenPoseJSON(str(tiny_bench / "openpose" / piece["name"]))
    idx = np.round(np.arange(64) / 8 * 30).astype(int)  # 8 fps from a 30 fps video
    persons = select_players(track(backend.detect_indices(idx)), 3)
    slot = 640 / 3
    for k, person in enumerate(persons):
        necks = person[:, layout.INDEX["Neck"]]
        x = np.median(necks[necks[:, 2] > 0, 0])
        assert k * slot < x < (k + 1) * slot


def _person(x: float, y: float = 200.0, size: float = 80.0) -> np.ndarray:
    kp = layout.empty()[0]
    for i in range(len(layout.BODY)):
        kp[i] = (x + (i % 5 - 2) * size / 10, y + (i // 5 - 2) * size / 5, 0.9)
    return kp


def test_short_tracks_dropped_and_gaps_kept():
    T = 20
    dets = [[_person(100 + t), _person(400 - t)] for t in range(T)]
    for t in range(5, 8):
        dets[t] = [dets[t][1]]  # the left person is missed for three frames
    dets[10].append(_person(250, y=50))  # a passer-by for one frame
    persons = track(dets)
    assert persons.shape[0] == 2
    assert (persons[0, 5:8] == 0).all() and (persons[0, 8, :, 2] > 0).any()
    assert persons[0, 0, 0, 0] < persons[1, 0, 0, 0]


def test_count_mismatch_is_an_error_not_a_guess():
    persons = track([[_person(100), _person(300)] for _ in range(10)])
    with pytest.raises(TrackingError, match="found 2 persons, expected 3"):
        select_players(persons, 3)
    more = track([[_person(100), _person(300), _person(500, size=20)] for _ in range(10)])
    kept = select_players(more, 2)
    assert kept.shape[0] == 2 and kept[1, 0, 0, 0] < 400  # the small far-right person is dropped
