"""Appearance / context encoder: a ResNet-18 over a person's crop.

Pretrained weights are optional and come from a configured file (a torchvision
ResNet-18 state dict, e.g. ImageNet weights downloaded once by the user); the
model never downloads anything itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class AppearanceEncoder(nn.Module):
    """ResNet-18 trunk + global pooling + projection.

    ``forward(images)``: (batch, 3, H, W) floats in [0, 1] → (batch, out_dim).
    """

    def __init__(self, out_dim: int, weights: str = "") -> None:
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        if weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise ValueError(f"appearance weights not found: {path}")
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.trunk = nn.Sequential(*list(net.children())[:-1])  # up to global average pooling
        self.proj = nn.Linear(512, out_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        return self.proj(self.trunk(x).flatten(1))
