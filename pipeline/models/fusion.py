"""Audio-visual fusion by self-attention at the U-Net bottleneck (Music Gesture, Eq. 3-4).

Audio bottleneck features query the visual (motion) features:

    h = softmax(a vᵀ / √d + B) v + a
    z = MLP(h) + h          (MLP: two linear layers)

``B`` is an optional alignment prior (``time_bias=True``; the paper has none):
when both sequences span the same clip, an audio step at time t gets a score
penalty ``s · |t - t'|`` (in visual steps, ``s`` learned, starting at 1) for
the motion at t', so it reads mostly the motion around its own time. Without
it, attention has no way to tell when a motion happened, and a per-person mask
can follow the person only as a whole, not note by note.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AttentionFusion(nn.Module):
    """``forward(a, v)``: a (batch, L_audio, d), v (batch, L_visual, d) → z (batch, L_audio, d).

    ``visual_mask`` (batch, L_visual), True where a visual step is real, keeps
    padding out of the softmax.
    """

    def __init__(self, dim: int, hidden: int | None = None, time_bias: bool = False) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden or dim), nn.ReLU(inplace=True), nn.Linear(hidden or dim, dim))
        self.dim = dim
        # softplus(0.5413) = 1: one unit of score per visual step of distance
        self.slope = nn.Parameter(torch.tensor(0.5413)) if time_bias else None

    def forward(
        self,
        a: torch.Tensor,
        v: torch.Tensor,
        visual_mask: torch.Tensor | None = None,
        audio_frames: int | None = None,
    ) -> torch.Tensor:
        """``audio_frames``: the audio tokens are (frequency, time) flattened row-major with
        this many time steps; needed for the time prior."""
        scores = a @ v.transpose(1, 2) / math.sqrt(self.dim)
        if self.slope is not None:
            scores = scores - F.softplus(self.slope) * self.distance(a.shape[1], audio_frames, v.shape[1], a.device)
        if visual_mask is not None:
            scores = scores.masked_fill(~visual_mask[:, None, :], float("-inf"))
        h = torch.softmax(scores, dim=-1) @ v + a
        return self.mlp(h) + h

    @staticmethod
    def distance(audio_tokens: int, audio_frames: int | None, visual_steps: int, device) -> torch.Tensor:
        """(audio_tokens, visual_steps): |t_audio - t_visual| in visual steps, both at their step centres."""
        if audio_frames is None or audio_tokens % audio_frames:
            raise ValueError(f"the time prior needs audio_frames dividing {audio_tokens} audio tokens")
        t_a = (torch.arange(audio_frames, device=device) + 0.5) / audio_frames * visual_steps
        t_v = torch.arange(visual_steps, device=device) + 0.5
        d = (t_a[:, None] - t_v[None, :]).abs()
        return d.repeat(audio_tokens // audio_frames, 1)
