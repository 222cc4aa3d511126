"""Context-aware spatio-temporal graph network over the canonical joint layout (ST-GCN style).

Each block is a spatial graph convolution (features mixed along the skeleton's
edges, normalised adjacency) followed by a temporal convolution (each joint
along time, optionally strided). A global context feature (appearance) is
joined to every node's features at the input, so body and hand motion are read
in the context of who is playing what.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.pose import layout


@dataclass(frozen=True)
class GCNConfig:
    """Channel widths per block and which blocks halve the time axis."""

    channels: tuple[int, ...] = (64, 64, 128, 128, 256)
    strides: tuple[int, ...] = (1, 1, 2, 1, 2)
    temporal_kernel: int = 9
    context_dim: int = 64  # context channels joined to each node at the input
    dropout: float = 0.1
    joint_embedding: int = 0  # >0: a learned vector of this size per joint joins its input (which joint it is)
    # "uniform": one weight for a joint and its neighbours (a low-pass over the skeleton);
    # "spatial": ST-GCN's three subsets (the joint and its peers, neighbours towards the neck,
    # neighbours away from it), each with its own weights, so a layer can tell a finger's bend
    partitions: str = "uniform"
    bones: bool = False  # each joint's offset from its parent (towards the neck) joins its input
    readout: str = "mean"  # "mean" over the joints, or "joints": a linear map of every joint's features


def normalized_adjacency() -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of the skeleton graph, ``(61, 61)``."""
    a = torch.from_numpy(layout.adjacency(self_loops=True))
    d = a.sum(dim=1).rsqrt()
    return d[:, None] * a * d[None, :]


def partitioned_adjacency(kind: str) -> torch.Tensor:
    """The normalised adjacency split into subsets, ``(K, 61, 61)``; entry ``[k, j, l]`` carries joint j to l.

    ``uniform``: one subset. ``spatial`` (ST-GCN): for each joint l, its neighbours j at the
    same hop distance from the neck (itself included), nearer to the neck, and farther from it.
    """
    a = normalized_adjacency()
    if kind == "uniform":
        return a[None]
    if kind != "spatial":
        raise ValueError(f"unknown GCN partitions {kind!r} (uniform or spatial)")
    hop = torch.from_numpy(layout.hops_from(layout.INDEX["Neck"]))
    hj, hl = hop[:, None], hop[None, :]
    return torch.stack([a * (hj == hl), a * (hj < hl), a * (hj > hl)])


class GraphConv(nn.Module):
    """Spatial graph convolution: ``y = Σ_k A_k · x · W_k`` over the joint axis.

    ``x``: (batch, channels, time, joints) → (batch, out_channels, time, joints).
    A joint's output depends only on itself and its graph neighbours.
    """

    def __init__(self, c_in: int, c_out: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        if adjacency.dim() == 2:
            adjacency = adjacency[None]
        self.register_buffer("adjacency", adjacency.float(), persistent=False)
        self.subsets = adjacency.shape[0]
        self.proj = nn.Conv2d(c_in, c_out * self.subsets, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        y = y.reshape(y.shape[0], self.subsets, -1, *y.shape[2:])  # (B, K, C, T, J)
        return torch.einsum("bkctj,kjl->bctl", y, self.adjacency)


class STBlock(nn.Module):
    """Graph conv → BN/ReLU → temporal conv (stride in time) → BN, with a residual path."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, dropout: float, adjacency: torch.Tensor):
        super().__init__()
        self.gcn = GraphConv(c_in, c_out, adjacency)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(c_out),
            nn.Dropout(dropout),
        )
        if c_in == c_out and stride == 1:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.tcn(self.gcn(x)) + self.residual(x))


class ContextGCN(nn.Module):
    """Keypoints + context → a motion feature per (downsampled) time step.

    ``forward(keypoints, context)``: keypoints (batch, time, 61, 3) as
    (x, y, confidence) already normalised per person; context (batch, context_in)
    → (batch, time', channels[-1]). After the last block the joints are averaged
    (``readout="mean"``) or read together by one linear map (``"joints"``).
    """

    def __init__(self, cfg: GCNConfig, context_in: int) -> None:
        super().__init__()
        adjacency = partitioned_adjacency(cfg.partitions)
        self.bones = cfg.bones
        self.register_buffer("parent", torch.from_numpy(layout.parents()), persistent=False)  # towards the neck
        c_kp = 5 if cfg.bones else 3
        self.context = nn.Linear(context_in, cfg.context_dim)
        self.input_norm = nn.BatchNorm1d(c_kp * layout.NUM_JOINTS)
        blocks, c_in = [], c_kp + cfg.context_dim + cfg.joint_embedding
        # The graph convolution shares its weights over joints, so without this a node does not know
        # which joint it is (a left-hand finger and a knee read alike once the joints are averaged).
        self.joint_embedding = (
            nn.Parameter(0.1 * torch.randn(cfg.joint_embedding, 1, layout.NUM_JOINTS)) if cfg.joint_embedding else None
        )
        for c_out, stride in zip(cfg.channels, cfg.strides):
            blocks.append(STBlock(c_in, c_out, stride, cfg.temporal_kernel, cfg.dropout, adjacency))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = c_in
        if cfg.readout not in ("mean", "joints"):
            raise ValueError(f"unknown GCN readout {cfg.readout!r} (mean or joints)")
        # the mean forgets which joint carried a feature (one finger pressed or another); a map of all keeps it
        self.readout = nn.Linear(c_in * layout.NUM_JOINTS, c_in) if cfg.readout == "joints" else None

    def forward(self, keypoints: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.bones:
            keypoints = with_bones(keypoints, self.parent)
        B, T, J, C = keypoints.shape
        x = self.input_norm(keypoints.reshape(B, T, J * C).transpose(1, 2)).reshape(B, J, C, T)
        x = x.permute(0, 2, 3, 1)  # (B, C, T, J)
        ctx = self.context(context)[:, :, None, None].expand(-1, -1, T, J)
        parts = [x, ctx]
        if self.joint_embedding is not None:
            parts.append(self.joint_embedding[None].expand(B, -1, T, -1))
        y = self.blocks(torch.cat(parts, dim=1))  # (B, D, T', J)
        if self.readout is not None:
            return self.readout(y.permute(0, 2, 1, 3).flatten(2))  # (B, T', D)
        return y.mean(dim=3).transpose(1, 2)  # (B, T', D)


def normalize_keypoints(kp: torch.Tensor) -> torch.Tensor:
    """Per person and clip: centre on the mean of seen body joints, scale by their spread.

    ``kp``: (..., time, 61, 3) in pixels → same shape, positions in body units,
    missing joints stay exactly zero (confidence 0).
    """
    seen = (kp[..., 2:3] > 0).float()
    body = seen[..., : len(layout.BODY), :]
    count = body.sum(dim=(-3, -2), keepdim=True).clamp(min=1.0)
    centre = (kp[..., : len(layout.BODY), :2] * body).sum(dim=(-3, -2), keepdim=True) / count
    spread = (
        (((kp[..., : len(layout.BODY), :2] - centre) ** 2 * body).sum(dim=(-3, -2), keepdim=True) / count)
        .sum(dim=-1, keepdim=True)
        .sqrt()
        .clamp(min=1e-3)
    )
    xy = (kp[..., :2] - centre) / spread * seen
    return torch.cat([xy, kp[..., 2:3] * seen], dim=-1)


def with_bones(kp: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """``(..., 61, 3)`` → ``(..., 61, 5)``: each joint's offset from ``parent[joint]`` appended.

    A bone is zero where the joint or its parent is missing. Bones are what a hand's shape is
    (a finger's bend), whatever the hand's position.
    """
    seen = (kp[..., 2:3] > 0) & (kp[..., parent, 2:3] > 0)
    return torch.cat([kp, (kp[..., :2] - kp[..., parent, :2]) * seen], dim=-1)
