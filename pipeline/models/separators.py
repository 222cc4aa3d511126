"""Separators: Music Gesture and the baselines, behind one interface.

Every separator maps the mixture and, per target person, their keypoints and
appearance crop to one mask per person::

    forward(mix_logmag, keypoints, crops) -> mask logits
      mix_logmag (B, 1, 256, 256)      log-frequency log-magnitude of the mixture
      keypoints  (B, N, T, 61, 3)      per person, pixels (normalised inside)
      crops      (B, N, 3, H, W)       per person, floats in [0, 1]
      returns    (B, N, 256, 256)      logits; sigmoid gives the mask

- ``music_gesture``: motion (context-aware GCN over body + hands, with the
  appearance as context) fused into the audio U-Net's bottleneck by
  self-attention, one decoding per person. Options not in the paper, all off
  by default: a time prior in the fusion (``time_bias``), an envelope head on
  the motion (``motion_bands``), a motion prior added to the mask logits
  (``mask_prior``), the motion's envelope map as a second U-Net input
  (``visual_input``), the other persons' maps as a third (``visual_others``), and
  each person's share of the mixture once the envelopes are scaled to it
  (``level_fit``: a fourth channel and a prior on the mask scores).
- ``sound_of_pixels``: appearance only; the U-Net outputs K feature maps and a
  person's mask is the product of their K-vector with those maps (the
  "synthesizer").
- ``audio_only``: no vision; N masks from the mixture alone, trained with a
  permutation-invariant loss (the lower bound a visual model must beat).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.instruments import CODES
from pipeline.models.appearance import AppearanceEncoder
from pipeline.models.fusion import AttentionFusion
from pipeline.models.gcn import ContextGCN, GCNConfig, normalize_keypoints
from pipeline.models.spectral import WARPED_BINS
from pipeline.models.unet import AudioUNet, UNetConfig

MODELS = ("music_gesture", "sound_of_pixels", "audio_only")
FIT_RIDGE = 0.1  # level_fit: ridge of the gains' first least-squares solve, relative to the envelopes' mean energy
SHARE_FLOOR = 0.05  # level_fit: the prior is log(share + this), so a share of 0 is a finite penalty


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a separator (stored in checkpoints)."""

    name: str = "music_gesture"
    unet: UNetConfig = field(default_factory=UNetConfig)
    gcn: GCNConfig = field(default_factory=GCNConfig)
    appearance_dim: int = 64  # appearance feature (context for the GCN; K for Sound of Pixels)
    appearance_weights: str = ""  # optional torchvision ResNet-18 state dict
    max_sources: int = 3  # audio_only: masks it outputs
    time_bias: bool = False  # music_gesture: the fusion's attention prefers motion at the same time
    motion_bands: int = 0  # music_gesture: >0 adds a head predicting the person's sound envelope in this many bands
    input_scale: int = 1  # >1: the network sees the spectrogram average-pooled by this factor (masks upsampled)
    mask_prior: bool = False  # music_gesture: the motion also adds a (frequency x time) prior to its mask's logits
    visual_input: bool = False  # music_gesture: the motion's predicted envelope map is a second U-Net input channel
    visual_others: bool = False  # with visual_input: the other persons' mean envelope map is a third channel
    competitive: bool = False  # visual models: the persons of a mixture compete for each bin (masks sum to 1)
    level_fit: bool = False  # music_gesture, with visual_input: envelopes scaled to the mixture; shares in and as prior
    instrument_context: bool = False  # music_gesture: the GCN's context is the crop's instrument posterior

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> ModelConfig:
        """The inverse of :meth:`to_dict`; options this version does not know raise a ValueError naming them
        (a checkpoint written by another version of the pipeline)."""
        unknown = _unknown_keys(d, ModelConfig) + _unknown_keys(d["unet"], UNetConfig, "unet.")
        unknown += _unknown_keys(d["gcn"], GCNConfig, "gcn.")
        if unknown:
            raise ValueError(f"model options this version does not know: {', '.join(sorted(unknown))}")
        return ModelConfig(**{**d, "unet": UNetConfig(**_tuples(d["unet"])), "gcn": GCNConfig(**_tuples(d["gcn"]))})


def _unknown_keys(d: dict, cls: type, prefix: str = "") -> list[str]:
    known = {f.name for f in fields(cls)}
    return [prefix + k for k in d if k not in known]


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


class MusicGesture(nn.Module):
    """Keypoint motion (in appearance context) fused at the bottleneck; one decode per person."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.visual_input and cfg.motion_bands <= 0:
            raise ValueError("visual_input needs motion_bands > 0 (the map is the motion head's envelope)")
        if cfg.visual_others and not cfg.visual_input:
            raise ValueError("visual_others needs visual_input (it adds the other persons' maps to each person's own)")
        if cfg.level_fit and not cfg.visual_input:
            raise ValueError("level_fit needs visual_input (it adds each person's fitted share as an input channel)")
        channels = 1 + cfg.visual_input + cfg.visual_others + cfg.level_fit
        self.unet = AudioUNet(cfg.unet, out_channels=1, in_channels=channels)
        self.visual_input = cfg.visual_input
        self.visual_others = cfg.visual_others
        # Not in the paper: how strongly a person's fitted share of the mixture (fit_shares) biases their mask scores;
        # at 1 the competing masks start close to the fitted shares, which the decoder then corrects.
        self.level_weight = nn.Parameter(torch.ones(())) if cfg.level_fit else None
        self.appearance = AppearanceEncoder(cfg.appearance_dim, cfg.appearance_weights)
        # Not in the paper: the crop is read as an instrument only (a classifier over the known instruments, whose
        # probabilities are the GCN's context), so the context cannot carry what else a crop shows (clothes name a
        # training piece, and a separator that recognises its pieces recalls them instead of separating).
        self.instrument_head = nn.Linear(cfg.appearance_dim, len(CODES)) if cfg.instrument_context else None
        self.instrument_logits: torch.Tensor | None = None  # (B, N, instruments) from the last forward
        self.gcn = ContextGCN(cfg.gcn, context_in=len(CODES) if cfg.instrument_context else cfg.appearance_dim)
        d = self.unet.bottleneck_channels
        self.to_audio_dim = nn.Linear(self.gcn.out_dim, d)
        self.fusion = AttentionFusion(d, time_bias=cfg.time_bias)
        self.scale = cfg.input_scale
        self.competitive = cfg.competitive
        self.motion_head = nn.Linear(d, cfg.motion_bands) if cfg.motion_bands > 0 else None
        self.motion_prediction: torch.Tensor | None = None  # (B, N, T', bands) from the last forward
        # Not in the paper: a direct path from each motion step to the logits of its time's frequency rows,
        # starting at zero (so the model begins as the paper's), which the loss reaches without the decoder.
        self.prior = nn.Linear(d, WARPED_BINS // cfg.input_scale) if cfg.mask_prior else None
        if self.prior is not None:
            nn.init.zeros_(self.prior.weight)
            nn.init.zeros_(self.prior.bias)

    def __getstate__(self) -> dict:
        # the last forward's prediction is not the model's state (and, in a graph, a deep copy refuses it)
        return {**super().__getstate__(), "motion_prediction": None, "instrument_logits": None}

    def forward(
        self, mix_logmag: torch.Tensor, keypoints: torch.Tensor, crops: torch.Tensor, motion_only: bool = False
    ) -> torch.Tensor:
        """Mask logits (B, N, F, T); with ``motion_only``, only the motion branch runs and the
        envelope it predicts for each person (B, N, T', bands) is returned (its warm-up)."""
        B, N = keypoints.shape[:2]
        context = self.appearance(crops.flatten(0, 1))  # (B*N, appearance_dim)
        if self.instrument_head is not None:
            logits = self.instrument_head(context)
            self.instrument_logits = logits.reshape(B, N, -1)
            context = torch.softmax(logits.float(), dim=-1).to(context.dtype)  # (B*N, instruments)
        motion = self.to_audio_dim(self.gcn(normalize_keypoints(keypoints.flatten(0, 1)), context))  # (B*N, T', C)
        envelope = self.motion_head(motion) if self.motion_head is not None else None  # (B*N, T', bands)
        if envelope is not None:
            self.motion_prediction = envelope.reshape(B, N, *envelope.shape[1:])
        if motion_only:
            if envelope is None:
                raise ValueError("motion_only needs the motion head (motion_bands > 0)")
            return self.motion_prediction
        x = _coarse(mix_logmag, self.scale)
        if self.visual_input:  # one encoding per person: the mixture next to the map of what their motion predicts
            x = x.repeat_interleave(N, dim=0)
            maps, each = [envelope], self.motion_prediction  # each: (B, N, T', bands), set above
            if self.visual_others:  # the mean of the other persons' maps (zeros for a person alone)
                maps.append(((each.sum(1, keepdim=True) - each) / max(N - 1, 1)).flatten(0, 1))
            x = torch.cat([x, *(F.interpolate(m.transpose(1, 2)[:, None], size=x.shape[-2:], mode="bilinear")
                                for m in maps)], 1)  # fmt: skip
            if self.level_weight is not None:  # each person's share of the mixture, their envelope scaled to it
                shares = fit_shares(mix_logmag, each).flatten(0, 1)
                shares = F.interpolate(shares, size=x.shape[-2:], mode="bilinear")  # (B*N, 1, F', T')
                x = torch.cat([x, shares], 1)
        z, skips = self.unet.encode(x)
        _, C, h, w = z.shape
        if not self.visual_input:  # one encoding of the mixture, shared by the persons
            z, skips = z.repeat_interleave(N, dim=0), [s.repeat_interleave(N, dim=0) for s in skips]
        a = z.flatten(2).transpose(1, 2)  # (B*N, h*w, C)
        fused = self.fusion(a, motion, audio_frames=w).transpose(1, 2).reshape(B * N, C, h, w)
        out = self.unet.decode(fused, skips)  # (B*N, 1, F, T)
        if self.level_weight is not None:
            out = out + self.level_weight * torch.log(shares + SHARE_FLOOR)
        if self.prior is not None:
            prior = self.prior(motion).transpose(1, 2)  # (B*N, F, T')
            out = out + F.interpolate(prior, size=out.shape[-1], mode="linear", align_corners=False)[:, None]
        return _scores_to_logits(_fine(out.reshape(B, N, *out.shape[-2:]), self.scale), self.competitive)


class SoundOfPixels(nn.Module):
    """Appearance only: mask = sigmoid(Σ_k v_k · a_k + b), v from the crop, a from the U-Net."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.unet = AudioUNet(cfg.unet, out_channels=cfg.appearance_dim)
        self.appearance = AppearanceEncoder(cfg.appearance_dim, cfg.appearance_weights)
        self.scale = nn.Parameter(torch.ones(cfg.appearance_dim))
        self.bias = nn.Parameter(torch.zeros(1))
        self.scale_factor = cfg.input_scale
        self.competitive = cfg.competitive

    def forward(self, mix_logmag: torch.Tensor, keypoints: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        B, N = crops.shape[:2]
        feats = self.unet(_coarse(mix_logmag, self.scale_factor))  # (B, K, F, T)
        v = torch.sigmoid(self.appearance(crops.flatten(0, 1))).reshape(B, N, -1) * self.scale
        scores = _fine(torch.einsum("bnk,bkft->bnft", v, feats) + self.bias, self.scale_factor)
        return _scores_to_logits(scores, self.competitive)


class AudioOnly(nn.Module):
    """No vision: ``max_sources`` masks from the mixture; the loss matches them to sources (PIT)."""

    permutation_invariant = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.unet = AudioUNet(cfg.unet, out_channels=cfg.max_sources)
        self.scale = cfg.input_scale

    def forward(self, mix_logmag: torch.Tensor, keypoints: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        return _fine(self.unet(_coarse(mix_logmag, self.scale)), self.scale)


def fit_shares(mix_logmag: torch.Tensor, envelope: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """Each person's share of the mixture (B, N, 1, bands, T'), from envelopes that do not know levels.

    ``envelope`` (B, N, T', bands) is what each person's motion predicts: log band energies with
    each band's clip mean removed, so a quiet player's map looks as strong as a loud one's. Here a
    non-negative gain per person and band scales the maps to the mixture's own band energies
    (least squares over time: a ridge solve, then multiplicative updates that keep the gains positive), so
    ``gain_n * exp(envelope_n)`` estimates person n's sound; the shares are those estimates over
    their sum (they sum to 1 over the persons). Differentiable; a person alone gets 1. Computed in
    float32 whatever the inputs (mixed precision on a GPU gives float16 envelopes).
    """
    with torch.autocast(envelope.device.type, enabled=False):  # exp and the solve need float32 (fp16 overflows)
        return _fit_shares(mix_logmag.float(), envelope.float(), iterations)


def _fit_shares(mix_logmag: torch.Tensor, envelope: torch.Tensor, iterations: int) -> torch.Tensor:
    B, N, steps, bands = envelope.shape
    mix = F.adaptive_avg_pool2d(mix_logmag.exp(), (bands, steps))  # (B, 1, bands, T'): as band_envelopes pools
    a = envelope.transpose(2, 3).clamp(-20.0, 20.0).exp()  # (B, N, bands, T')
    # start from ridge least-squares gains (N x N normal equations per band), kept positive; the multiplicative
    # updates then move them towards the non-negative optimum (20 do not go all the way: the ridge's pull towards
    # even gains stays a little, which keeps the shares of a pair whose envelopes look alike soft)
    gram = torch.einsum("bnkt,bmkt->bknm", a, a)  # (B, bands, N, N)
    ridge = FIT_RIDGE * gram.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None] + 1e-8
    rhs = torch.einsum("bnkt,bkt->bkn", a, mix[:, 0])
    start = torch.linalg.solve(gram + ridge * torch.eye(N, device=a.device, dtype=a.dtype), rhs[..., None])[..., 0]
    floor = 1e-3 * mix.mean(-1, keepdim=True) / a.mean(-1, keepdim=True)  # a small positive share of each band
    gain = torch.maximum(start.transpose(1, 2)[..., None], floor)  # (B, N, bands, 1)
    for _ in range(iterations):
        fitted = (gain * a).sum(1, keepdim=True)
        gain = gain * (a * mix).sum(-1, keepdim=True) / ((a * fitted).sum(-1, keepdim=True) + 1e-8)
    own = gain * a
    return (own / (own.sum(1, keepdim=True) + 1e-8))[:, :, None]


def compete(logits: torch.Tensor) -> torch.Tensor:
    """Per-person scores (B, N, F, T) → logits whose sigmoids are a softmax over the N persons.

    sigmoid(l_n - logsumexp_{m≠n} l_m) = exp(l_n) / Σ_m exp(l_m), so the masks of a
    mixture's persons sum to 1 in every bin and a bin one person takes, the others lose.
    A single person gets +inf-like logits (the whole mixture), as a solo should.
    """
    N = logits.shape[1]
    if N == 1:
        return torch.full_like(logits, 30.0)
    eye = torch.eye(N, dtype=torch.bool, device=logits.device)[None, :, :, None, None]
    others = logits[:, None].expand(-1, N, -1, -1, -1).masked_fill(eye, float("-inf"))
    return logits - torch.logsumexp(others, dim=2)


def _scores_to_logits(scores: torch.Tensor, competitive: bool) -> torch.Tensor:
    """A visual model's per-person scores at full size → its mask logits (competing after upsampling,
    so the masks sum to 1 in every bin of the spectrogram, not only of the coarse grid)."""
    return compete(scores) if competitive else scores


def _coarse(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The mixture as the network sees it: average-pooled by ``scale`` in frequency and time."""
    return F.avg_pool2d(x, scale) if scale > 1 else x


def _fine(logits: torch.Tensor, scale: int) -> torch.Tensor:
    """Mask logits back at the spectrogram's size (bilinear)."""
    return F.interpolate(logits, scale_factor=scale, mode="bilinear", align_corners=False) if scale > 1 else logits


_CLASSES = {"music_gesture": MusicGesture, "sound_of_pixels": SoundOfPixels, "audio_only": AudioOnly}


def build_model(cfg: ModelConfig) -> nn.Module:
    """The separator named by ``cfg.name``."""
    if cfg.name not in _CLASSES:
        raise ValueError(f"unknown model {cfg.name!r}; choose one of {', '.join(MODELS)}")
    return _CLASSES[cfg.name](cfg)


def is_permutation_invariant(name: str) -> bool:
    """Whether the named separator's outputs are not tied to persons (scored with the best assignment)."""
    return bool(getattr(_CLASSES[name], "permutation_invariant", False))
