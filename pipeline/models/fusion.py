"""Audio-visual fusion by self-attention at the U-Net bottleneck (Music Gesture, Eq. 3-4).

Audio bottleneck features query the visual (motion) features:

    h = softmax(a vᵀ / √d) v + a
    z = MLP(h) + h          (MLP: two linear layers)
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AttentionFusion(nn.Module):
    """``forward(a, v)``: a (batch, L_audio, d), v (batch, L_visual, d) → z (batch, L_audio, d).

    ``visual_mask`` (batch, L_visual), True where a visual step is real, keeps
    padding out of the softmax.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden or dim), nn.ReLU(inplace=True), nn.Linear(hidden or dim, dim))
        self.dim = dim

    def forward(self, a: torch.Tensor, v: torch.Tensor, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = a @ v.transpose(1, 2) / math.sqrt(self.dim)
        if visual_mask is not None:
            scores = scores.masked_fill(~visual_mask[:, None, :], float("-inf"))
        h = torch.softmax(scores, dim=-1) @ v + a
        return self.mlp(h) + h
