"""The tiny benchmark as a user meets it: files, sound, video, keypoints, and motion that informs."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import read_wav
from pipeline.instruments import CODES
from pipeline.pose.openpose import BODY_25_INDEX, read_frame
from pipeline.synth.check import correlation_matrix, motion_and_onsets, motion_sound_correlation
from pipeline.urmp import parse_piece

URMP_FOLDER = re.compile(r"^\d{2,}_[A-Za-z0-9]+(_(" + "|".join(CODES) + "))+$")


def _pieces(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name[0].isdigit())


def test_layout_and_names_match_urmp(tiny_bench: Path):
    pieces = _pieces(tiny_bench)
    assert len(pieces) == 7
    for folder in pieces:
        assert URMP_FOLDER.match(folder.name), folder.name
        piece = parse_piece(folder.name)
        n = len(piece.codes)
        expected = {piece.video, piece.mix, piece.score}
        expected |= {piece.stem(k) for k in range(1, n + 1)} | {piece.notes(k) for k in range(1, n + 1)}
        assert {f.name for f in folder.iterdir()} == expected
        for k in range(1, n + 1):
            assert re.fullmatch(rf"AuSep_{k}_[a-z]+_\d\d_[A-Za-z0-9]+\.wav", piece.stem(k))
            rows = [line.split("\t") for line in (folder / piece.notes(k)).read_text().splitlines()]
            assert rows and all(len(r) == 3 and float(r[2]) > 0 for r in rows)
    assert {p.name for p in (tiny_bench / "openpose").iterdir()} == {p.name for p in pieces}
    assert (tiny_bench / "config.yaml").is_file() and not (tiny_bench / ".partial").exists()


def test_stems_sum_to_the_mix(tiny_bench: Path):
    import soundfile as sf

    for folder in _pieces(tiny_bench):
        piece = parse_piece(folder.name)
        mix, rate = sf.read(folder / piece.mix, dtype="int16")
        assert rate in (44100, 48000) and mix.ndim == 1
        stems = []
        for k in range(1, len(piece.codes) + 1):
            stem, r = sf.read(folder / piece.stem(k), dtype="int16")
            assert r == rate and stem.shape == mix.shape
            assert np.abs(stem).max() > 1000, f"{piece.stem(k)} is (nearly) silent"
            stems.append(stem.astype(np.int64))
        total = np.sum(stems, axis=0)
        rel = np.abs(total - mix).sum() / np.abs(mix).sum()
        assert rel <= 1e-3
        assert np.abs(mix).max() < 32767  # no clipping


def test_video_decodes_with_the_mix_as_audio(tiny_bench: Path):
    import decord

    info = json.loads((tiny_bench / "benchmark.json").read_text())
    folder = _pieces(tiny_bench)[0]
    piece = parse_piece(folder.name)
    meta = next(p for p in info["pieces"] if p["name"] == folder.name)
    video = decord.VideoReader(str(folder / piece.video))
    assert video.get_avg_fps() == pytest.approx(30.0)
    assert len(video) == meta["frames"] == int(round(meta["duration"] * 30))
    assert video[0].shape == (360, 640, 3)
    mix, rate = read_wav(folder / piece.mix)
    # decode the AAC track back to the mix's rate (decord resamples it); AAC adds no delay here
    track = decord.AudioReader(str(folder / piece.video), sample_rate=rate, mono=True)[:].asnumpy()[0]
    assert abs(track.size - mix.size) < 0.05 * rate
    n = min(mix.size, track.size)
    assert np.corrcoef(mix[:n], track[:n])[0, 1] > 0.99


def test_one_keypoint_file_per_frame_with_every_player(tiny_bench: Path):
    info = {p["name"]: p for p in json.loads((tiny_bench / "benchmark.json").read_text())["pieces"]}
    for folder in _pieces(tiny_bench):
        files = sorted((tiny_bench / "openpose" / folder.name).glob("*_keypoints.json"))
        assert len(files) == info[folder.name]["frames"]
        assert files[0].name == parse_piece(folder.name).keypoints(0)
        players = len(parse_piece(folder.name).codes)
        for f in files[:: max(1, len(files) // 20)]:
            doc = json.loads(f.read_text())
            assert len(doc["people"]) == players
            for person in doc["people"]:
                assert len(person["pose_keypoints_2d"]) == 25 * 3
                assert len(person["hand_left_keypoints_2d"]) == len(person["hand_right_keypoints_2d"]) == 21 * 3


def test_what_is_drawn_is_what_the_json_says(tiny_bench: Path):
    """Heads are drawn where the JSON puts the nose; the wall above them is empty."""
    import decord

    folder = _pieces(tiny_bench)[1]
    piece = parse_piece(folder.name)
    video = decord.VideoReader(str(folder / piece.video))
    checked = 0
    for t in (10, 100, 200):
        img = video[t].asnumpy().astype(int)
        frame = read_frame(tiny_bench / "openpose" / folder.name / piece.keypoints(t))
        for person in frame.people:
            x, y, c = person[BODY_25_INDEX["Nose"]]
            if c == 0:
                continue
            head, wall = img[int(round(y)), int(round(x))], img[8, int(round(x))]
            assert np.abs(head - wall).sum() > 30
            checked += 1
    assert checked >= 3


def test_motion_carries_the_information(tiny_bench: Path):
    """Each player's hand speed follows their own stem's onsets clearly more than the others'."""
    own, margin = [], []
    for folder in _pieces(tiny_bench):
        C = motion_sound_correlation(tiny_bench, folder.name, fps=30)
        for k in range(len(C)):
            own.append(C[k, k])
            if len(C) > 1:
                margin.append(C[k, k] - np.delete(C[k], k).max())
    own, margin = np.array(own), np.array(margin)
    assert own.min() > 0.4 and own.mean() > 0.6
    assert len(margin) >= 8
    assert margin.min() > 0.1  # every player: own stem clearly above every other stem
    assert margin.mean() > 0.35


def test_motion_check_fails_when_motion_and_sound_do_not_match(tiny_bench: Path):
    """The statistic above can fail: shift the sound by a second and the match is gone."""
    own = []
    for folder in _pieces(tiny_bench):
        speed, env = motion_and_onsets(tiny_bench, folder.name, fps=30)
        own += list(np.diag(correlation_matrix(speed, np.roll(env, 30, axis=0))))
    assert np.mean(own) < 0.3


def test_composition_and_splits(tiny_bench: Path):
    doc = json.loads((tiny_bench / "benchmark.json").read_text())
    pieces = doc["pieces"]
    sizes = [len(p["codes"]) for p in pieces]
    assert 1 in sizes and 2 in sizes and 3 in sizes and max(sizes) <= 4
    duets = [p for p in pieces if len(p["codes"]) == 2]
    homo = [p for p in duets if p["codes"][0] == p["codes"][1]]
    assert len(homo) >= len(duets) / 3 and all(p["homo"] for p in homo)
    assert any(p["source"].startswith("music21:") for p in pieces)
    assert any(p["source"] == "generated" for p in pieces)
    assert all(abs(lag) <= 2 for p in pieces for lag in p["lags"])
    splits = json.loads((tiny_bench / "splits.json").read_text())
    names = [n for v in splits.values() for n in v]
    assert sorted(names) == sorted(p["name"] for p in pieces)  # every piece exactly once
    assert any(n in splits["test"] for n in (p["name"] for p in homo))
    summary = doc["summary"]
    assert summary["pieces"] == 7 and summary["homo_duets"] == len(homo)
    assert summary["minutes"] == pytest.approx(sum(p["duration"] for p in pieces) / 60)
