"""Audio basics: wav files, resampling, the STFT, and frame-rate envelopes.

Waveforms are float32 numpy arrays in [-1, 1], shape ``(samples,)`` for mono.

The STFT parameters are those of Sound of Pixels and Music Gesture: 11025 Hz
audio, 6-second windows of 65535 samples, ``n_fft`` 1022 and hop 256, giving
512 frequency bins x 256 frames per window. This module is the only place
that knows them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import ndimage, signal

SAMPLE_RATE = 11025
CLIP_SAMPLES = 65535  # ~5.94 s at 11025 Hz
N_FFT = 1022
HOP = 256
FREQ_BINS = N_FFT // 2 + 1  # 512
CLIP_FRAMES = 1 + CLIP_SAMPLES // HOP  # 256 STFT frames per clip


def read_wav(path: str | Path, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a sound file as float32; ``mono`` averages the channels. Returns (wave, rate)."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return (wave.mean(axis=1) if mono else wave.T), int(rate)


def write_pcm16(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    """Write int16 samples ``(samples,)`` as a 16-bit PCM wav, exactly as given."""
    if pcm.dtype != np.int16:
        raise TypeError(f"write_pcm16 takes int16 samples, got {pcm.dtype}")
    sf.write(str(path), pcm, rate, subtype="PCM_16")


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (exact rational ratio)."""
    if rate_in == rate_out:
        return wave
    ratio = Fraction(rate_out, rate_in)
    out = signal.resample_poly(wave, ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32)


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (``torch.hann_window``'s default), so numpy and torch STFTs agree."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(wave: np.ndarray) -> np.ndarray:
    """Complex STFT ``(..., 512, frames)`` of ``(..., samples)`` at the project's parameters.

    Centred frames with reflect padding and a periodic Hann window: the same numbers
    as ``torch.stft(x, 1022, 256, window=torch.hann_window(1022), center=True,
    return_complex=True)``. A 65535-sample clip gives 256 frames.
    """
    pad = N_FFT // 2
    x = np.pad(np.asarray(wave, np.float32), [(0, 0)] * (np.ndim(wave) - 1) + [(pad, pad)], mode="reflect")
    n_frames = 1 + (x.shape[-1] - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[..., idx] * _hann(N_FFT), axis=-1)
    return np.swapaxes(spec, -1, -2).astype(np.complex64)


def magnitude(wave: np.ndarray) -> np.ndarray:
    """STFT magnitude ``(..., 512, frames)``, float32."""
    return np.abs(stft(wave))


def rms_envelope(wave: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS loudness of ``wave`` in windows centred on video frames; shape ``(n_frames,)``."""
    hop = rate / fps
    half = int(round(hop))
    centres = (np.arange(n_frames) * hop + hop / 2).astype(int)
    padded = np.pad(wave.astype(np.float64) ** 2, (half, half))
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    lo, hi = centres, centres + 2 * half
    return np.sqrt((csum[hi] - csum[lo]) / (2 * half)).astype(np.float32)


def onset_envelope(wave: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Onset strength at the video frame rate, robust to vibrato; shape ``(n_frames,)``.

    SuperFlux-style (Böck & Widmer, 2013): log-magnitudes in quarter-tone bands,
    and each frame's increase over the previous frame *maximum-filtered across
    neighbouring bands*, so a vibrato that moves energy between adjacent bands
    does not count as a new note. Abrupt starts count as onsets; abrupt stops also
    add energy, as they do to the ear.

    Frame ``i``'s window starts a quarter window before ``t = i / fps``, so a note
    that starts at ``t`` shows up in frame ``i`` rather than a frame early.
    """
    hop = rate / fps
    n_fft = 1 << int(np.ceil(np.log2(1.5 * hop)))
    centres = np.arange(n_frames) * hop
    lead = n_fft // 4
    padded = np.pad(wave.astype(np.float32), (lead, n_fft + n_fft))
    starts = np.round(centres).astype(int)
    frames = padded[starts[:, None] + np.arange(n_fft)[None, :]] * np.hanning(n_fft).astype(np.float32)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    bands = np.log1p(10.0 * mag @ _log_filterbank(n_fft, rate))
    prev = ndimage.maximum_filter1d(bands, size=3, axis=1)
    flux = np.concatenate([[0.0], np.maximum(bands[1:] - prev[:-1], 0.0).sum(axis=1)])
    # A window that runs past the end sees the wave stop dead, a burst of false "energy":
    # those last frames (under 50 ms at the usual sizes) report no onset.
    flux[centres - lead + n_fft > wave.size] = 0.0
    return flux.astype(np.float32)


def _log_filterbank(n_fft: int, rate: int, per_octave: int = 24, fmin: float = 30.0) -> np.ndarray:
    """Triangular filters ``(n_fft // 2 + 1, bands)`` spaced ``per_octave`` to the octave."""
    fmax = min(16000.0, rate / 2)
    n_bands = int(np.floor(per_octave * np.log2(fmax / fmin)))
    edges = fmin * 2.0 ** (np.arange(n_bands + 2) / per_octave)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid))
    fb = np.clip(tri, 0.0, None).T
    return (fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-9)).astype(np.float32)
