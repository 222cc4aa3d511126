"""`separate`: a user's video in, one wav per musician and a labelled preview out."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from pipeline.cli import main
from pipeline.video import probe_video


def _duet(bench):
    folder = next(p for p in sorted(bench.iterdir()) if p.is_dir() and len(p.name.split("_")) == 4)
    return next(folder.glob("Vid_*.mp4")), bench / "openpose" / folder.name


def test_separate_a_generated_duet(tiny_bench, tiny_checkpoints, tmp_path, capsys):
    video, keypoints = _duet(tiny_bench)
    out = tmp_path / "sep"
    argv = ["separate", "--video", str(video), "--keypoints", str(keypoints),
            "--checkpoint", str(tiny_checkpoints[0]), "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mixture.wav", "person1.wav", "person2.wav", "preview.mp4"]
    mix, rate = sf.read(out / "mixture.wav")
    tracks = [sf.read(out / f"person{k}.wav")[0] for k in (1, 2)]
    assert rate == 11025 and all(len(t) == len(mix) for t in tracks)
    residual = tracks[0] + tracks[1] - mix
    assert 10 * np.log10(np.sum(mix**2) / np.sum(residual**2)) > 40  # the tracks add up to the mixture
    assert all(np.std(t) > 0.01 * np.std(mix) for t in tracks)  # both musicians got sound
    info = probe_video(out / "preview.mp4")
    assert abs(info.duration - len(mix) / rate) < 0.5 and info.frames >= 8 * int(info.duration) - 1
    assert "person1.wav" in capsys.readouterr().out
    # A second run never overwrites the first.
    assert main(argv) == 2 and "already holds" in capsys.readouterr().err


def test_separate_refuses_an_audio_only_model(tiny_bench, tiny_checkpoints, tmp_path, capsys):
    video, keypoints = _duet(tiny_bench)
    argv = ["separate", "--video", str(video), "--keypoints", str(keypoints),
            "--checkpoint", str(tiny_checkpoints[1]), "--output", str(tmp_path / "x")]  # fmt: skip
    assert main(argv) == 2
    assert "audio_only" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_separate_real_musicians_with_their_openpose_json(tiny_checkpoints, tmp_path):
    """Three real seated musicians (10 s, 48 kHz stereo sound) with real OpenPose output for the first 5 s."""
    from tests.conftest import shared_data

    folder = shared_data("raga_performance", "example_3people")
    out = tmp_path / "raga"
    argv = ["separate", "--video", str(folder / "short_video.mp4"), "--keypoints", str(folder / "output_json"),
            "--checkpoint", str(tiny_checkpoints[0]), "--output", str(out),
            "--set", "preprocess.min_presence=0.4"]  # fmt: skip
    assert main(argv) == 0
    tracks = [sf.read(out / f"person{k}.wav")[0] for k in (1, 2, 3)]
    mix, rate = sf.read(out / "mixture.wav")
    assert not (out / "person4.wav").exists() and abs(len(mix) / rate - 10.0) < 0.1
    residual = sum(tracks) - mix
    assert 10 * np.log10(np.sum(mix**2) / np.sum(residual**2)) > 40
