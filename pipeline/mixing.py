"""Training examples: mix-and-separate from single sources, or real mixtures with their stems.

Everything here is torch on whatever device the batch is on:

- :func:`group_sources` picks which single sources are mixed together
  (N = 2 or 3; hetero-only, homo-only or any pairing);
- :func:`spectrograms` turns waveforms into the model's input (warped
  log-magnitude of the mixture) and the targets (masks, loss weights);
- :func:`mask_loss` is the objective: binary-mask BCE weighted by
  log1p(mixture magnitude), or ratio-mask L1; permutation-invariant for
  models that do not know whom they separate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.audio import HOP, N_FFT
from pipeline.models.spectral import log_magnitude, unwarp, warp

PAIRINGS = ("any", "hetero", "homo", "mixed")
RATIO_MAX = 2.0  # ratio-mask targets are clipped here; the model outputs 2 * sigmoid


def group_sources(instruments: torch.Tensor, n: int, pairing: str, generator: torch.Generator) -> torch.Tensor:
    """Groups of ``n`` distinct source indices ``(groups, n)`` from a batch of single sources.

    ``instruments`` (batch,) holds an instrument id per source (-1 unknown).
    ``hetero`` mixes different instruments, ``homo`` the same one, ``any`` does
    not care, ``mixed`` takes every homo group the batch offers and mixes the
    rest at random (random batches hold few same-instrument sources, and homo
    mixtures are the ones only motion can separate). Sources that fit no group
    under the rule are left out.
    """
    if pairing == "mixed":
        homo = group_sources(instruments, n, "homo", generator)
        rest = sorted(set(range(len(instruments))) - set(homo.flatten().tolist()))
        others = group_sources(instruments[rest], n, "any", generator)
        return torch.cat([homo, torch.tensor(rest, dtype=torch.long)[others].reshape(-1, n)])
    order = torch.randperm(len(instruments), generator=generator).tolist()
    if pairing == "any":
        return torch.tensor([order[i : i + n] for i in range(0, len(order) - n + 1, n)], dtype=torch.long).reshape(
            -1, n
        )
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; choose one of {PAIRINGS}")
    ins = instruments.tolist()
    groups, free = [], list(order)
    while free:
        first = free.pop(0)
        if pairing == "homo":
            mates = [j for j in free if ins[j] == ins[first]][: n - 1]
        else:
            mates, used = [], {ins[first]}
            for j in free:
                if ins[j] not in used and len(mates) < n - 1:
                    mates.append(j)
                    used.add(ins[j])
        if len(mates) == n - 1:
            groups.append([first, *mates])
            for j in mates:
                free.remove(j)
    return torch.tensor(groups, dtype=torch.long).reshape(-1, n)


def stft(wave: torch.Tensor) -> torch.Tensor:
    """Complex STFT (..., 512, frames) with the project's parameters (same as pipeline.audio.stft)."""
    shape = wave.shape
    window = torch.hann_window(N_FFT, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave.reshape(-1, shape[-1]), N_FFT, HOP, window=window, center=True, return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` (..., 512, frames) → (..., length)."""
    shape = spec.shape
    window = torch.hann_window(N_FFT, device=spec.device)
    wave = torch.istft(spec.reshape(-1, *shape[-2:]), N_FFT, HOP, window=window, center=True, length=length)
    return wave.reshape(*shape[:-2], length)


@dataclass
class Spectra:
    """Model input and targets for a batch of mixtures of N sources."""

    mix_logmag: torch.Tensor  # (B, 1, 256, T) warped log-magnitude of the mixture
    mix_mag: torch.Tensor  # (B, 1, 256, T) warped magnitude of the mixture
    source_mag: torch.Tensor  # (B, N, 256, T) warped magnitudes of the sources
    weight: torch.Tensor  # (B, 1, 256, T) loss weight: log1p(mixture magnitude), clipped


def model_input(mix_spec: torch.Tensor) -> torch.Tensor:
    """What a separator reads: the mixture's complex STFT (B, 512, T) → warped log-magnitude (B, 1, 256, T)."""
    return log_magnitude(warp(mix_spec.abs()[:, None]))


def spectrograms(mix_wave: torch.Tensor, source_waves: torch.Tensor) -> Spectra:
    """``mix_wave`` (B, samples), ``source_waves`` (B, N, samples) → :class:`Spectra`."""
    mix_mag = warp(stft(mix_wave).abs()[:, None])
    B, N = source_waves.shape[:2]
    source_mag = warp(stft(source_waves).abs().flatten(0, 1)[:, None]).reshape(B, N, *mix_mag.shape[-2:])
    weight = torch.log1p(mix_mag).clamp(1e-3, 10.0)
    return Spectra(log_magnitude(mix_mag), mix_mag, source_mag, weight)


def targets(spectra: Spectra, kind: str) -> torch.Tensor:
    """Mask targets (B, N, 256, T): ``binary`` (source dominates: above half the mixture) or ``ratio``."""
    if kind == "binary":
        return (spectra.source_mag > 0.5 * spectra.mix_mag).float()
    if kind == "ratio":
        return (spectra.source_mag / spectra.mix_mag.clamp(min=1e-6)).clamp(0.0, RATIO_MAX)
    raise ValueError(f"unknown mask kind {kind!r} (binary or ratio)")


def masks_from_logits(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """What the model's logits mean as a mask, for each kind of target."""
    return torch.sigmoid(logits) * (RATIO_MAX if kind == "ratio" else 1.0)


def _pair_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample, per-source loss (B, N) for aligned logits and targets."""
    if kind == "binary":
        err = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        err = (masks_from_logits(logits, kind) - target).abs()
    return (err * weight).mean(dim=(-2, -1))


def mask_loss(logits: torch.Tensor, spectra: Spectra, kind: str, permutation_invariant: bool = False) -> torch.Tensor:
    """The training loss: mean over sources and mixtures.

    With ``permutation_invariant`` (audio-only), ``logits`` may have more
    outputs than sources; each mixture uses the assignment of sources to
    outputs with the lowest loss.
    """
    target = targets(spectra, kind)
    N = target.shape[1]
    if not permutation_invariant:
        return _pair_loss(logits[:, :N], target, spectra.weight, kind).mean()
    best = None
    for perm in itertools.permutations(range(logits.shape[1]), N):
        loss = _pair_loss(logits[:, list(perm)], target, spectra.weight, kind).mean(dim=1)
        best = loss if best is None else torch.minimum(best, loss)
    return best.mean()


def separate(mix_wave: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Apply warped masks (B, N, 256, T) to the mixture (B, samples) → waveforms (B, N, samples)."""
    spec = stft(mix_wave)  # (B, 512, T)
    B, N = masks.shape[:2]
    linear = unwarp(masks.flatten(0, 1)[:, None]).reshape(B, N, *spec.shape[-2:])
    return istft(spec[:, None] * linear, mix_wave.shape[-1])


def quick_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Plain SDR in dB, 10·log10(|s|² / |s − ŝ|²), per waveform: a cheap validation number."""
    num = reference.pow(2).sum(-1)
    den = (reference - estimate).pow(2).sum(-1)
    return 10 * torch.log10((num + 1e-8) / (den + 1e-8))


def constant_mask_sdr(mix_wave: torch.Tensor, source_waves: torch.Tensor) -> torch.Tensor:
    """Quick SDR (B, N) of the trivial estimate mixture / N for every source: the floor a model must beat.

    Quick SDR is not scale-invariant, so this is not 0 dB: for N uncorrelated sources of equal
    energy that sum to the mixture it is 10·log10(N / (N - 1)): 3.0 dB for duets, 1.8 dB for trios.
    """
    n = source_waves.shape[1]
    return quick_sdr((mix_wave / n)[:, None].expand_as(source_waves), source_waves)


def band_envelopes(source_mag: torch.Tensor, steps: int, bands: int) -> torch.Tensor:
    """What each source's motion should tell: log energy in ``bands`` frequency bands over ``steps`` times.

    ``source_mag`` (B, N, 256, T) warped magnitudes → (B, N, steps, bands), each
    band's mean over the clip removed (the changes matter, not the level).
    """
    B, N, F_, T = source_mag.shape
    pooled = F.adaptive_avg_pool2d(source_mag.flatten(0, 1), (bands, steps))  # (B*N, bands, steps)
    env = torch.log(pooled + 1e-3).reshape(B, N, bands, steps).transpose(2, 3)
    return env - env.mean(dim=2, keepdim=True)


def motion_loss(prediction: torch.Tensor, spectra: Spectra) -> torch.Tensor:
    """Auxiliary loss: the motion branch predicts its own source's band envelopes (B, N, steps, bands).

    Mean squared error after removing each band's clip mean from the prediction too.
    """
    target = band_envelopes(spectra.source_mag, prediction.shape[2], prediction.shape[3])
    prediction = prediction - prediction.mean(dim=2, keepdim=True)
    return (prediction - target[:, : prediction.shape[1]]).pow(2).mean()
