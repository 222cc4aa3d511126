"""Spectrogram transforms on the model's side: log-frequency warping and log magnitudes (torch).

The model sees the mixture as 256 log-spaced frequency bins (from the STFT's
512 linear ones) x 256 frames, as in Sound of Pixels; masks predicted there are
warped back to linear frequency to be applied to the mixture STFT.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.audio import FREQ_BINS

WARPED_BINS = 256


def _warped_to_linear(n_out: int = WARPED_BINS, n_in: int = FREQ_BINS) -> np.ndarray:
    """Linear bin (fractional) sampled by each warped bin: log-spaced from bin 0 to the top."""
    return np.logspace(0, np.log10(n_in), n_out) - 1.0


def _grid(rows: np.ndarray, n_rows_src: int, frames: int, device, dtype) -> torch.Tensor:
    y = torch.as_tensor(rows / (n_rows_src - 1) * 2 - 1, device=device, dtype=dtype)
    x = torch.linspace(-1, 1, frames, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)[None]  # (1, rows, frames, 2)


def warp(spec: torch.Tensor) -> torch.Tensor:
    """(batch, C, 512, T) linear-frequency → (batch, C, 256, T) log-frequency (bilinear)."""
    grid = _grid(_warped_to_linear(), FREQ_BINS, spec.shape[-1], spec.device, spec.dtype)
    return F.grid_sample(spec, grid.expand(spec.shape[0], -1, -1, -1), align_corners=True)


def unwarp(spec: torch.Tensor) -> torch.Tensor:
    """(batch, C, 256, T) log-frequency → (batch, C, 512, T) linear frequency."""
    linear = np.arange(FREQ_BINS)
    rows = np.log10(linear + 1.0) / np.log10(FREQ_BINS) * (WARPED_BINS - 1)  # inverse of the warp
    grid = _grid(rows, WARPED_BINS, spec.shape[-1], spec.device, spec.dtype)
    return F.grid_sample(spec, grid.expand(spec.shape[0], -1, -1, -1), align_corners=True)


def log_magnitude(mag: torch.Tensor) -> torch.Tensor:
    """Compressed magnitudes the network reads: ``log(max(mag, 1e-4))``."""
    return torch.log(mag.clamp(min=1e-4))
