import numpy as np
import pytest

from pipeline.audio import onset_envelope, read_wav, resample, rms_envelope, write_pcm16


def _tone_notes(rate: int, onsets: list[float], length: float, vibrato: float = 0.0) -> np.ndarray:
    """Notes of a harmonic tone starting at ``onsets`` (each a different pitch), with optional vibrato."""
    t = np.arange(int(length * rate)) / rate
    out = np.zeros_like(t)
    for i, start in enumerate(onsets):
        f0 = 220.0 * 2 ** (i * 3 / 12)
        attack = np.clip((t - start) / 0.005, 0, 1)
        release = np.clip((start + 0.45 - t) / 0.03, 0, 1)  # real notes fade out, they do not stop dead
        env = attack * release * np.exp(-np.maximum(t - start, 0) * 1.5)
        phase = 2 * np.pi * f0 * t + vibrato * np.sin(2 * np.pi * 5.5 * t)
        out += env * sum(np.sin(h * phase) / h for h in range(1, 6))
    return (0.2 * out).astype(np.float32)


def test_onset_envelope_peaks_at_onsets():
    rate, fps = 22050, 30
    onsets = [0.5, 1.0, 1.5, 2.0, 2.5]
    wave = _tone_notes(rate, onsets, 3.0)
    env = onset_envelope(wave, rate, fps, 90)
    local_max = [i for i in range(1, 89) if env[i] == env[max(0, i - 4) : i + 5].max() and env[i] > 0.2 * env.max()]
    assert local_max == pytest.approx([int(round(o * fps)) for o in onsets], abs=1)


def test_onset_envelope_ignores_vibrato():
    """A held note with vibrato must not look like a stream of onsets (the max filter's job)."""
    rate, fps = 22050, 30
    wave = _tone_notes(rate, [0.2], 3.0, vibrato=0.0)
    t = np.arange(wave.size) / rate
    held = 0.2 * np.sin(2 * np.pi * 440 * t + 0.6 * np.sin(2 * np.pi * 5.5 * t)) * (t > 0.5)
    env = onset_envelope(held.astype(np.float32), rate, fps, 90)
    onset_frame = 15
    assert env[onset_frame - 1 : onset_frame + 2].max() > 8 * env[onset_frame + 5 :].max()


def test_rms_envelope_of_a_sine():
    rate = 16000
    t = np.arange(rate * 2) / rate
    wave = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    env = rms_envelope(wave, rate, 25, 50)
    assert env[2:-2] == pytest.approx(np.full(46, 0.5 / np.sqrt(2)), rel=1e-2)


def test_pcm16_round_trip_and_resample(tmp_path):
    pcm = (np.sin(np.linspace(0, 200, 44100)) * 20000).astype(np.int16)
    write_pcm16(tmp_path / "a.wav", pcm, 44100)
    wave, rate = read_wav(tmp_path / "a.wav")
    assert rate == 44100 and np.array_equal(np.round(wave * 32768).astype(np.int16), pcm)
    down = resample(wave, 44100, 11025)
    assert down.shape == (11025,) and down.dtype == np.float32
    with pytest.raises(TypeError):
        write_pcm16(tmp_path / "b.wav", wave, 44100)
