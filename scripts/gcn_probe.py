#!/usr/bin/env python
"""How well does a GCN variant read a player's sound from their motion? A research aid.

Trains the Music Gesture motion branch alone (``ContextGCN`` → a linear head) on the
auxiliary regression the trainer uses (``pipeline.mixing.motion_loss``: the source's
log energy in ``train.motion_bands`` bands, each band's clip mean removed), on the
training split's single sources, and prints R² on the validation split's sources every
``--every`` steps. The context is the instrument (one-hot) instead of the appearance
encoder, so the probe measures the motion alone. One process, no Ray.

    .venv/bin/python scripts/gcn_probe.py runs/demo/shards --steps 600 --set train.gcn_partitions=spatial
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from pipeline import shards
from pipeline.config import load_config
from pipeline.instruments import CODES
from pipeline.mixing import band_envelopes, stft, warp
from pipeline.models.gcn import ContextGCN, normalize_keypoints
from pipeline.train import find_version, model_config, rows_in_memory


def envelopes(rows: dict[str, torch.Tensor], steps: int, bands: int) -> torch.Tensor:
    """Band envelopes (rows, steps, bands) of each row's own wave."""
    out = []
    for i in range(0, len(rows["wave"]), 32):
        mag = warp(stft(rows["wave"][i : i + 32].float() / shards.PCM_SCALE).abs()[:, None])  # (b, 1, 256, T)
        out.append(band_envelopes(mag, steps, bands)[:, 0])
    return torch.cat(out)


class Probe(nn.Module):
    def __init__(self, gcn_cfg, bands: int) -> None:
        super().__init__()
        self.gcn = ContextGCN(gcn_cfg, context_in=len(CODES) + 1)
        self.head = nn.Linear(self.gcn.out_dim, bands)

    def forward(self, keypoints: torch.Tensor, instrument: torch.Tensor) -> torch.Tensor:
        context = nn.functional.one_hot(instrument.long() + 1, len(CODES) + 1).float()  # -1: unknown
        pred = self.head(self.gcn(normalize_keypoints(keypoints), context))
        return pred - pred.mean(dim=1, keepdim=True)


@torch.no_grad()
def r2(model: Probe, rows: dict, target: torch.Tensor) -> float:
    """1 − SSE / SST over every (row, step, band) of these rows."""
    model.eval()
    chunks = range(0, len(target), 32)
    pred = torch.cat([model(rows["keypoints"][i : i + 32], rows["instrument"][i : i + 32]) for i in chunks])
    model.train()
    return float(1 - (pred - target).pow(2).sum() / target.pow(2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--val-split", default="val", help="the split R² is measured on")
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="train on this random fraction of the training sources (would more data help?)")  # fmt: skip
    args = ap.parse_args()
    tc = load_config(args.preset, overrides=args.overrides).train
    torch.manual_seed(tc.seed)
    version = find_version(args.shards)
    train = rows_in_memory(sorted((version / "split=train").glob("*.parquet")), tc)
    val = rows_in_memory(sorted((version / f"split={args.val_split}").glob("*.parquet")), tc)
    if not len(train["wave"]) or not len(val["wave"]):
        raise SystemExit(f"no sources with stems in the train or {args.val_split} split of {version}")
    if not 0 < args.train_fraction <= 1:
        raise SystemExit(f"--train-fraction must be in (0, 1], not {args.train_fraction}")
    keep = torch.randperm(len(train["wave"]), generator=torch.Generator().manual_seed(tc.seed))
    keep = keep[: max(1, round(args.train_fraction * len(keep)))].sort().values
    train = {k: v[keep] for k, v in train.items()}
    for rows in (train, val):
        rows["keypoints"] = rows["keypoints"].float()
    model = Probe(model_config(tc).gcn, tc.motion_bands)
    with torch.no_grad():
        steps = model(train["keypoints"][:1], train["instrument"][:1]).shape[1]
    y_train, y_val = envelopes(train, steps, tc.motion_bands), envelopes(val, steps, tc.motion_bands)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f} M parameters, {len(y_train)} train / {len(y_val)} val sources, "
          f"{steps} steps x {tc.motion_bands} bands", flush=True)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=args.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(tc.seed)
    t0, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        idx = torch.randperm(len(y_train), generator=gen)[: args.batch]
        loss = (model(train["keypoints"][idx], train["instrument"][idx]) - y_train[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % args.every == 0 or step == args.steps:
            print(f"step {step:5d}  loss {np.mean(losses[-args.every :]):.4f}  val R² {r2(model, val, y_val):.3f}  "
                  f"{(time.perf_counter() - t0) / step:.2f} s/step", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
