#!/usr/bin/env python
"""Compare training recipes quickly: train one separator in this process (no Ray), score val duets.

A research aid, not part of the pipeline: it reuses the trainer's own loss
(``pipeline.train._step_loss``) and data rows (``source_rows``) and the
evaluation's mixture plan, but trains on one process with all threads, so a
recipe can be tried in minutes on a laptop before a full ``python -m pipeline
run``. It prints the mean quick SDR (dB) on the validation split's homo and
hetero duets every ``--every`` steps (audio-only with its best assignment).

    .venv/bin/python scripts/recipe_probe.py runs/demo/shards --steps 300 \\
        --set train.model=music_gesture --set train.input_scale=2
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.config import EvaluateConfig, load_config
from pipeline.evaluate import list_split, load_inputs, plan_mixtures
from pipeline.mixing import (
    constant_mask_sdr,
    masks_from_logits,
    model_input,
    quick_sdr,
    separate,
    spectrograms,
    stft,
    targets,
)
from pipeline.models.separators import build_model
from pipeline.train import (
    _best_perm,
    _step_loss,
    decode_crop,
    find_version,
    model_config,
    rows_in_memory,
    rows_per_step,
    step_precision,
    weight_average,
)


def val_duets(version: Path, split: str, count: int, evaluate: EvaluateConfig, crop_size: int) -> dict[str, dict]:
    """Fixed homo and hetero duets of the split (the evaluation's own plan), as model-ready tensors."""
    sources, _ = list_split(version, split)
    cfg = dataclasses.replace(evaluate, sources=(2,), mixtures_per_group=count, seed=0)
    plan = [m for m in plan_mixtures(sources, [], cfg) if m["kind"] == "mix"]
    duets = {}
    for kind in ("homo", "hetero"):
        inputs = load_inputs(version, split, [m for m in plan if m["homo"] == (kind == "homo")])
        if not inputs:
            continue
        crops = np.stack([[decode_crop(c, crop_size) for c in x["crops"]] for x in inputs])
        duets[kind] = {
            "mix": torch.from_numpy(np.stack([x["mix"] for x in inputs])),
            "refs": torch.from_numpy(np.stack([x["refs"] for x in inputs])),
            "keypoints": torch.from_numpy(np.stack([x["keypoints"] for x in inputs])),
            "crops": torch.from_numpy(crops).float().permute(0, 1, 4, 2, 3) / 255.0,
        }
    return duets


@torch.no_grad()
def score(model, duets: dict | None, mask: str, oracle: bool) -> float:
    """Mean quick SDR over the sources of these mixtures (NaN when there are none)."""
    if duets is None:
        return float("nan")
    model.eval()
    mix, refs, kp, crops = duets["mix"], duets["refs"], duets["keypoints"], duets["crops"]
    out = []
    for i in range(0, len(mix), 8):
        logits = model(model_input(stft(mix[i : i + 8])), kp[i : i + 8], crops[i : i + 8])
        est = separate(mix[i : i + 8], masks_from_logits(logits, mask))
        sdr = _best_perm(est, refs[i : i + 8]) if oracle else quick_sdr(est[:, : refs.shape[1]], refs[i : i + 8])
        out.append(sdr.flatten())
    model.train()
    return float(torch.cat(out).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--duets", type=int, default=24, help="homo and hetero duets each to score")
    ap.add_argument("--val-split", default="val", help="the split the duets are drawn from")
    ap.add_argument(
        "--motion-warmup",
        type=int,
        default=0,
        metavar="STEPS",
        help="music_gesture: first train the motion branch alone for this many steps (constant lr)",
    )
    args = ap.parse_args()
    cfg = load_config(args.preset, overrides=args.overrides)
    tc = cfg.train
    torch.manual_seed(tc.seed)
    version = find_version(args.shards)
    train = rows_in_memory(sorted((version / "split=train").glob("*.parquet")), tc)
    if not len(train["clip"]):
        raise SystemExit(f"no training sources with stems in {version / 'split=train'}")
    duets = val_duets(version, args.val_split, args.duets, cfg.evaluate, tc.crop_size)
    model = build_model(model_config(tc))
    oracle = bool(getattr(model, "permutation_invariant", False))
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    gen = torch.Generator().manual_seed(tc.seed)
    rows = rows_per_step(tc)
    n_params = sum(p.numel() for p in model.parameters())
    counts = ", ".join(f"{len(d['mix'])} {kind}" for kind, d in duets.items()) or "no"
    print(f"{tc.model}: {n_params / 1e6:.2f} M parameters, {len(train['wave'])} training sources, "
          f"{counts} val duets", flush=True)  # fmt: skip
    for kind, d in duets.items():
        sdr = float(quick_sdr(d["mix"][:, None].expand_as(d["refs"]), d["refs"]).mean())
        print(f"  mixture as the estimate, {kind}: {sdr:.2f} dB")
        # quick SDR is not scale-invariant: a constant mask of 1/N already scores ~3 dB on duets
        half = float(constant_mask_sdr(d["mix"], d["refs"]).mean())
        print(f"  constant mask 1/N (mixture / N), {kind}: {half:.2f} dB")
        ibm = targets(spectrograms(d["mix"], d["refs"]), "binary")
        print(f"  ideal binary mask, {kind}: {float(quick_sdr(separate(d['mix'], ibm), d['refs']).mean()):.2f} dB")
    ema = weight_average(model, tc.ema_decay)  # train.ema_decay: begun with separation, the average is scored

    amp_dtype = step_precision(tc.precision, torch.device("cpu"))  # train.precision, as the trainer runs it
    print(f"training steps in {amp_dtype or torch.float32}", flush=True)

    def train_step(motion_only: bool) -> float:
        idx = torch.randperm(len(train["wave"]), generator=gen)[:rows]
        batch = {k: v[idx] for k, v in train.items()}
        loss = _step_loss(model, batch, tc, gen, torch.device("cpu"), oracle, motion_only, amp_dtype=amp_dtype)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    t0, losses = time.perf_counter(), []
    for step in range(1, args.motion_warmup + 1):  # the trainer's train.motion_warmup_epochs, in steps
        losses.append(train_step(motion_only=True))
        if step % args.every == 0 or step == args.motion_warmup:
            print(f"motion warm-up step {step:5d}  envelope loss {np.mean(losses[-args.every :]):.4f}  "
                  f"{(time.perf_counter() - t0) / step:.2f} s/step", flush=True)  # fmt: skip
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=args.steps, pct_start=0.1)
    t0, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        losses.append(train_step(motion_only=False))
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        if step % args.every == 0 or step == args.steps:
            scored = model if ema is None else ema.module
            homo = score(scored, duets.get("homo"), tc.mask, oracle)
            hetero = score(scored, duets.get("hetero"), tc.mask, oracle)
            print(f"step {step:5d}  loss {np.mean(losses[-args.every :]):.4f}  val homo {homo:6.2f} dB  "
                  f"hetero {hetero:6.2f} dB  {(time.perf_counter() - t0) / step:.2f} s/step", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
