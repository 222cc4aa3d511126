#!/usr/bin/env python
"""How much do the keypoints tell about each person's own sound? A linear check, no training.

A research aid, like ``recipe_probe.py``: before blaming a model for not using
the motion, measure whether the motion carries the information at all. Per
video frame (8 fps), a ridge regression reads the person's normalised
keypoints and their speeds, and predicts

- the person's sound envelope: log energy in ``--bands`` log-frequency bands;
- the dominant log-frequency bin of their sound, on the frames where it is loud
  (a rough pitch), next to what the instrument alone predicts.

Fitted on the train split, scored (R², 1 = perfect, 0 = no better than the mean)
on another split. Run on the demo shards::

    .venv/bin/python scripts/motion_probe.py runs/demo/shards
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline import shards
from pipeline.config import load_config
from pipeline.mixing import stft
from pipeline.models.gcn import normalize_keypoints
from pipeline.models.spectral import warp
from pipeline.train import find_version, rows_in_memory


def frame_features(keypoints: torch.Tensor) -> np.ndarray:
    """(sources, T, 61, 3) pixels → (sources * T, 61 * 5): normalised x, y, confidence and |speed| per joint."""
    kp = normalize_keypoints(keypoints.float())
    speed = torch.diff(kp[..., :2], dim=1, prepend=kp[:, :1, :, :2]).abs()
    S, T = kp.shape[:2]
    return torch.cat([kp.reshape(S, T, -1), speed.reshape(S, T, -1)], dim=-1).reshape(S * T, -1).numpy()


def sound_targets(waves: torch.Tensor, frames: int, bands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, samples) → per frame: band log-envelopes (S*T, bands), dominant warped bin (S*T,), loud (S*T,)."""
    mag = warp(stft(waves.float() / shards.PCM_SCALE).abs()[:, None])  # (S, 1, 256, frames_stft)
    env = torch.log(F.adaptive_avg_pool2d(mag, (bands, frames))[:, 0] + 1e-3).transpose(1, 2)  # (S, T, bands)
    per_frame = F.adaptive_avg_pool2d(mag, (mag.shape[2], frames))[:, 0]  # (S, 256, T)
    peak = per_frame.argmax(dim=1).float()
    energy = per_frame.sum(dim=1)
    loud = energy > energy.flatten().quantile(0.4)
    return env.reshape(-1, bands).numpy(), peak.reshape(-1).numpy(), loud.reshape(-1).numpy()


def ridge_r2(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, lam: float = 10.0):
    """Fit ``y ≈ [x, 1] W`` (features standardised on the fit set) and return R² per output on the test set."""
    y_fit, y_test = y_fit.reshape(len(y_fit), -1), y_test.reshape(len(y_test), -1)
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6

    def design(x):
        return np.c_[(x - mu) / sd, np.ones(len(x))]

    a = design(x_fit)
    reg = lam * np.eye(a.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    w = np.linalg.solve(a.T @ a + reg, a.T @ y_fit)
    err = ((design(x_test) @ w - y_test) ** 2).sum(0)
    return 1.0 - err / ((y_test - y_test.mean(0)) ** 2).sum(0).clip(min=1e-12)


def split_arrays(version: Path, split: str, tc, bands: int) -> dict[str, np.ndarray]:
    rows = rows_in_memory(sorted((version / f"split={split}").glob("*.parquet")), tc)
    frames = rows["keypoints"].shape[1]
    env, peak, loud = sound_targets(rows["wave"], frames, bands)
    instrument = np.repeat(rows["instrument"].numpy(), frames)
    return {"x": frame_features(rows["keypoints"]), "env": env, "peak": peak, "loud": loud, "instrument": instrument}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--bands", type=int, default=16)
    ap.add_argument("--test-split", default="val")
    args = ap.parse_args()
    tc = load_config(args.preset).train
    version = find_version(args.shards)
    fit, test = (split_arrays(version, s, tc, args.bands) for s in ("train", args.test_split))
    print(f"frames: {len(fit['x'])} to fit (train), {len(test['x'])} to test ({args.test_split})")
    r2 = ridge_r2(fit["x"], fit["env"], test["x"], test["env"])
    print(f"sound envelope from keypoints, R² per band (low to high): {' '.join(f'{v:.2f}' for v in r2)}")
    print(f"  mean over bands: {r2.mean():.2f}")
    n_ins = int(max(fit["instrument"].max(), test["instrument"].max())) + 2  # id -1 (unknown) gets the last column

    def onehot(ids):
        return np.eye(n_ins)[ids]

    f, t = fit["loud"], test["loud"]
    by_instrument = ridge_r2(onehot(fit["instrument"][f]), fit["peak"][f], onehot(test["instrument"][t]),
                             test["peak"][t], lam=1e-3)  # fmt: skip
    both = ridge_r2(np.c_[fit["x"][f], onehot(fit["instrument"][f])], fit["peak"][f],
                    np.c_[test["x"][t], onehot(test["instrument"][t])], test["peak"][t])  # fmt: skip
    print(f"dominant log-frequency bin on loud frames, R²: instrument alone {by_instrument[0]:.2f}, "
          f"instrument + keypoints {both[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
