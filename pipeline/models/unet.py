"""The audio U-Net (Sound of Pixels' 7-level U-Net by default), split at its bottleneck.

``encode`` returns the bottleneck and the skip features; ``decode`` takes a
(possibly fused) bottleneck back up to a full-size output, so a separator can
decode one mask per person from one encoding of the mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Levels, width of the first level, the widest a level gets (as a multiple), and how
    many of the levels halve time (0: all of them, Sound of Pixels' square U-Net).

    With ``time_levels`` < ``depth`` the deeper levels halve frequency only, so the
    bottleneck keeps a time axis fine enough to line up with the motion (e.g. 7 levels,
    3 halving time: 256 x 256 → 2 x 32, one step per 0.19 s).
    """

    depth: int = 7
    base: int = 64
    max_mult: int = 8
    time_levels: int = 0

    def halves_time(self, level: int) -> bool:
        return self.time_levels <= 0 or level < self.time_levels


def _widths(cfg: UNetConfig) -> list[int]:
    return [cfg.base * min(2**i, cfg.max_mult) for i in range(cfg.depth)]


class AudioUNet(nn.Module):
    """``encode(x)``: (batch, 1, F, T) → bottleneck (batch, C, F/2^depth, T/2^time_levels), skips.

    ``decode(z, skips)`` → (batch, out_channels, F, T). F must be divisible by
    ``2 ** depth`` and T by ``2 ** time_levels`` (256 x 256 with the default 7 levels).
    """

    def __init__(self, cfg: UNetConfig, out_channels: int, in_channels: int = 1) -> None:
        super().__init__()
        widths = _widths(cfg)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.down = nn.ModuleList()
        c_in = in_channels
        for i, c in enumerate(widths):
            if cfg.halves_time(i):
                conv = nn.Conv2d(c_in, c, 4, 2, 1, bias=False)
            else:  # frequency only
                conv = nn.Conv2d(c_in, c, (4, 3), (2, 1), (1, 1), bias=False)
            layers: list[nn.Module] = [conv]
            if 0 < i < cfg.depth - 1:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
            c_in = c
        self.up = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            c_from = widths[i] if i == cfg.depth - 1 else 2 * widths[i]  # skip concatenated below the bottom
            c_to = widths[i - 1] if i > 0 else out_channels
            layers = [
                nn.Upsample(scale_factor=(2, 2 if cfg.halves_time(i) else 1), mode="bilinear", align_corners=True),
                nn.Conv2d(c_from, c_to, 3, 1, 1),
            ]
            if i > 0:
                layers += [nn.BatchNorm2d(c_to), nn.ReLU(inplace=True)]
            self.up.append(nn.Sequential(*layers))
        self.bottleneck_channels = widths[-1]
        self.depth = cfg.depth

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        h = self.input_norm(x)
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        return h, skips[:-1]

    def decode(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        h = self.up[0](z)
        for layer, skip in zip(self.up[1:], reversed(skips)):
            h = layer(torch.cat([h, skip], dim=1))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, skips = self.encode(x)
        return self.decode(z, skips)
