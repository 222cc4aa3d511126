"""Mix-and-separate grouping, targets, losses and the separation round trip."""

import numpy as np
import pytest
import torch

from pipeline import audio
from pipeline.mixing import (
    band_envelopes,
    constant_mask_sdr,
    group_sources,
    istft,
    mask_loss,
    motion_loss,
    quick_sdr,
    separate,
    spectrograms,
    stft,
    targets,
)


def _tones(freqs, n=audio.CLIP_SAMPLES):
    t = torch.arange(n) / audio.SAMPLE_RATE
    return torch.stack([0.3 * torch.sin(2 * np.pi * f * t) for f in freqs])


def test_grouping_rules():
    g = torch.Generator().manual_seed(0)
    ins = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    homo = group_sources(ins, 2, "homo", g)
    assert len(homo) >= 3 and all(ins[a] == ins[b] for a, b in homo.tolist())
    hetero = group_sources(ins, 3, "hetero", g)
    assert len(hetero) >= 2 and all(len({int(ins[i]) for i in grp}) == 3 for grp in hetero.tolist())
    anyp = group_sources(ins, 2, "any", g)
    assert anyp.shape == (4, 2) and sorted(anyp.flatten().tolist()) == list(range(8))
    mixed = group_sources(torch.tensor([0, 0, 1, 2, 3, 4]), 2, "mixed", g).tolist()
    assert mixed[0] in ([0, 1], [1, 0]) and len(mixed) == 3
    assert sorted(sum(mixed, [])) == list(range(6))
    with pytest.raises(ValueError, match="pairing"):
        group_sources(ins, 2, "odd", g)


def test_stft_round_trip_and_agreement_with_numpy():
    x = torch.randn(2, audio.CLIP_SAMPLES) * 0.1
    spec = stft(x)
    assert spec.shape == (2, 512, 256)
    assert torch.allclose(istft(spec, x.shape[-1]), x, atol=1e-5)
    ours = audio.stft(x.numpy())
    assert np.abs(spec.numpy() - ours).max() < 1e-4 * np.abs(ours).max()


def test_targets_and_ideal_masks_separate_two_tones():
    sources = _tones([220.0, 1760.0])[None]  # (1, 2, samples)
    mix = sources.mean(dim=1)
    spectra = spectrograms(mix, sources / 2)  # the mixture is the mean: each source contributes half
    assert spectra.mix_logmag.shape == (1, 1, 256, 256)
    binary = targets(spectra, "binary")
    est = separate(mix, binary)
    sdr = quick_sdr(est, sources / 2)
    assert (sdr > 15).all()  # the ideal binary mask separates two far-apart tones well
    ratio = targets(spectra, "ratio")
    assert (ratio >= 0).all() and (ratio <= 2).all()


def test_loss_prefers_the_right_masks_and_pit_finds_the_order():
    sources = _tones([220.0, 1760.0])[None] / 2
    spectra = spectrograms(sources.sum(dim=1), sources)
    good = torch.where(targets(spectra, "binary") > 0, 8.0, -8.0)
    swapped = good.flip(1)
    for kind in ("binary", "ratio"):
        assert mask_loss(good, spectra, kind) < 0.5 * mask_loss(swapped, spectra, kind)
    extra = torch.cat([swapped, torch.full_like(swapped[:, :1], -8.0)], dim=1)  # three outputs, two sources
    assert mask_loss(extra, spectra, "binary", permutation_invariant=True) == pytest.approx(
        mask_loss(good, spectra, "binary").item(), rel=1e-5
    )


def test_band_envelopes_follow_when_and_where_a_source_sounds():
    t = torch.arange(audio.CLIP_SAMPLES) / audio.SAMPLE_RATE
    low = 0.3 * torch.sin(2 * np.pi * 110 * t) * (t < 3.0)  # low tone, first half only
    high = 0.3 * torch.sin(2 * np.pi * 3000 * t) * (t >= 3.0)  # high tone, second half only
    sources = torch.stack([low, high])[None]
    spectra = spectrograms(sources.sum(dim=1), sources)
    env = band_envelopes(spectra.source_mag, steps=8, bands=4)
    assert env.shape == (1, 2, 8, 4)
    assert torch.allclose(env.mean(dim=2), torch.zeros(1, 2, 4), atol=1e-5)  # only the changes
    assert env[0, 0, :3, 1].mean() > env[0, 0, 5:, 1].mean() + 3  # low tone's band: loud early
    assert env[0, 1, 5:, 3].mean() > env[0, 1, :3, 3].mean() + 3  # high tone's band: loud late
    assert motion_loss(env + 5.0, spectra) < 1e-8  # a constant offset per band costs nothing
    assert motion_loss(env.flip(1), spectra) > 1.0  # the other person's envelope does


@pytest.mark.parametrize("n", [2, 3])
def test_constant_mask_floor_is_not_zero(n):
    """mixture / N scores 10·log10(N / (N - 1)) on uncorrelated equal-energy sources: the floor training reports."""
    torch.manual_seed(0)
    sources = torch.randn(4, n, 44100)
    floor = constant_mask_sdr(sources.sum(1), sources)
    assert floor.shape == (4, n)
    assert torch.allclose(floor, torch.full_like(floor, 10 * np.log10(n / (n - 1))), atol=0.05)
    assert (quick_sdr(sources.sum(1)[:, None].expand_as(sources), sources) < floor - 1.5).all()  # the mixture itself
