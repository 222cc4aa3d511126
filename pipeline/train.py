"""DDP training on Ray Train: Music Gesture and its baselines, one trainer.

The driver reads the shards with Ray Data and hands them to a ``TorchTrainer``;
every worker runs :func:`train_loop_per_worker`. One short block decides the
device: CUDA + NCCL + mixed precision when the worker has a GPU, CPU + gloo
otherwise (Ray Train picks the backend; the code is the same).

Training examples:

- ``objective: mix`` (mix-and-separate): every person of every training clip
  with a stem is a single source (solos, and each player of an ensemble); a
  step mixes N of them (N from ``train.sources``; ``pairing`` any / hetero /
  homo) and learns to take each back out of the mean, guided by that person.
- ``objective: supervised``: real mixtures with their real stems (URMP).

Each epoch: train, score held-out mixtures (quick SDR), report. Rank 0 writes
a self-describing checkpoint (``checkpoint.pt``, loadable with
``torch.load(weights_only=True)``), ``metrics.jsonl`` / ``metrics.csv`` and
TensorBoard event files. A failed worker or node is replaced and training
resumes from the last checkpoint; re-running the same command resumes too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline import __version__, shards
from pipeline.config import Config, TrainConfig, config_to_dict
from pipeline.errors import UserError
from pipeline.instruments import CODES
from pipeline.mixing import (
    constant_mask_sdr,
    group_sources,
    mask_loss,
    masks_from_logits,
    motion_loss,
    quick_sdr,
    separate,
    spectrograms,
)
from pipeline.models.gcn import GCNConfig
from pipeline.models.separators import MODELS, ModelConfig, build_model
from pipeline.models.unet import UNetConfig
from pipeline.report import key_value_table

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
FINAL_DIR = "final"  # a finished run's checkpoint: <run folder>/final/checkpoint.pt
CHECKPOINT_FORMAT = "music-gesture-checkpoint/1"


# --- data: shard rows → training rows (plain functions, used by Ray Data) --------------------

# the shard columns training reads (it never reads the spectrogram columns)
TRAIN_COLUMNS = ["clip_id", "num_sources", "instruments", "has_stems", "mix_wave", "stem_wave", "keypoints", "crops"]


def rows_per_step(tc: TrainConfig) -> int:
    """Rows one worker takes per step: mixtures × sources (twice that when a pairing rule chooses among them)."""
    if tc.objective != "mix":
        return tc.batch_size
    return tc.batch_size * max(tc.sources) * (1 if tc.pairing == "any" else 2)


def rows_function(tc: TrainConfig):
    """Shard batch → training rows for this objective."""
    return source_rows if tc.objective == "mix" else mixture_rows


def rows_in_memory(files: list[Path], tc: TrainConfig, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
    """Training rows of these shard files as tensors, without Ray (a plain loop, a probe).

    With ``world`` > 1 only one worker's share is decoded: every ``world``-th clip from ``rank``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not files:
        raise UserError("no shard files to read training rows from")
    table = pa.concat_tables([pq.read_table(f, columns=TRAIN_COLUMNS) for f in files])
    share = table.take(np.arange(rank, table.num_rows, world))
    rows = rows_function(tc)(shards.read_batch(share), tc.crop_size)
    return {k: torch.from_numpy(v) for k, v in rows.items()}


def source_rows(batch: dict[str, np.ndarray], crop_size: int) -> dict[str, np.ndarray]:
    """Clips → one row per (clip, person with a stem): wave, keypoints, crop, instrument id.

    ``batch`` holds shard columns (numpy); the output has only numeric tensors,
    so it goes through ``iter_torch_batches``.
    """
    out: dict[str, list] = {"wave": [], "keypoints": [], "crop": [], "instrument": [], "clip": []}
    for i in range(len(batch["num_sources"])):
        if not batch["has_stems"][i]:
            continue
        for k in range(int(batch["num_sources"][i])):
            out["wave"].append(batch["stem_wave"][i][k])
            out["keypoints"].append(batch["keypoints"][i][k])
            out["crop"].append(decode_crop(batch["crops"][i][k], crop_size))
            code = batch["instruments"][i][k]
            out["instrument"].append(CODES.index(code) if code in CODES else -1)
            out["clip"].append(_clip_number(str(batch["clip_id"][i]), k))
    return _stack(out, crop_size)


def mixture_rows(batch: dict[str, np.ndarray], crop_size: int) -> dict[str, np.ndarray]:
    """Clips with stems → supervised rows: mixture, stems, keypoints and crops (padded to 5)."""
    out: dict[str, list] = {"mix": [], "stems": [], "keypoints": [], "crops": [], "n": [], "clip": []}
    for i in range(len(batch["num_sources"])):
        n = int(batch["num_sources"][i])
        if not batch["has_stems"][i] or n < 2:
            continue
        crops = np.zeros((shards.MAX_SOURCES, crop_size, crop_size, 3), np.uint8)
        for k in range(n):
            crops[k] = decode_crop(batch["crops"][i][k], crop_size)
        out["mix"].append(batch["mix_wave"][i])
        out["stems"].append(batch["stem_wave"][i])
        out["keypoints"].append(batch["keypoints"][i])
        out["crops"].append(crops)
        out["n"].append(n)
        out["clip"].append(_clip_number(str(batch["clip_id"][i]), 0))
    return {k: np.asarray(v) if v else np.zeros((0,), np.int64) for k, v in out.items()}


def decode_crop(jpeg: bytes, size: int) -> np.ndarray:
    """A stored JPEG crop → RGB uint8 (size, size, 3)."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)


def _clip_number(clip_id: str, person: int) -> int:
    """A stable 63-bit number for (clip, person), to check which worker saw what."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{clip_id}#{person}".encode()).digest()[:8], "big") >> 1


def _stack(out: dict[str, list], crop_size: int) -> dict[str, np.ndarray]:
    if not out["wave"]:
        empty = {
            "wave": np.zeros((0, shards.CLIP_SAMPLES), np.int16),
            "keypoints": np.zeros((0, shards.CLIP_VIDEO_FRAMES, 61, 3), np.float32),
            "crop": np.zeros((0, crop_size, crop_size, 3), np.uint8),
        }
        return {**empty, "instrument": np.zeros(0, np.int64), "clip": np.zeros(0, np.int64)}
    return {k: np.asarray(v) for k, v in out.items()}


# --- checkpoints ------------------------------------------------------------------------------


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer, scheduler, state: dict, ema=None) -> Path:
    """A self-describing checkpoint file: what the model is, how it was trained, where it stopped.

    With a weight average that has begun, its weights are saved too (``ema_model``), and they are
    what ``model_from_checkpoint`` gives; ``model`` stays the last weights, to resume from."""
    raw = model.module if hasattr(model, "module") else model
    doc = {
        "format": CHECKPOINT_FORMAT,
        "code_version": __version__,
        "model_name": state["model_config"]["name"],
        **state,
        "model": raw.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    if begun(ema) is not None:
        doc |= {"ema_model": ema.module.state_dict(), "ema_steps": int(ema.n_averaged)}
    path = folder / CHECKPOINT_FILE
    torch.save(doc, path)
    return path


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file ``path`` names: the file itself, a checkpoint folder holding it, or a training
    run's folder (``train --output``/``<model>``), which gives its ``final/`` checkpoint, or the newest of
    its ``checkpoint_*/`` ones when the run has not finished."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"checkpoint not found: {path}")
    candidates = [path / CHECKPOINT_FILE, path / FINAL_DIR / CHECKPOINT_FILE]
    candidates += sorted(path.glob(f"checkpoint_*/{CHECKPOINT_FILE}"), reverse=True)  # names sort by time
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"no checkpoint in {path}: expected {CHECKPOINT_FILE} there, or a training run's {FINAL_DIR}/{CHECKPOINT_FILE} "
        f"or checkpoint_*/{CHECKPOINT_FILE}"
    )


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint (see :func:`checkpoint_file` for what ``path`` may name) with ``weights_only=True``."""
    path = checkpoint_file(path)
    doc = torch.load(path, map_location="cpu", weights_only=True)
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a Music Gesture checkpoint")
    return doc


def model_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The trained separator (eval mode, CPU) and the checkpoint's description."""
    doc = load_checkpoint(path)
    try:
        mc = ModelConfig.from_dict(doc["model_config"])
    except ValueError as e:
        raise UserError(f"{checkpoint_file(path)}: {e}: another version of this pipeline wrote it (its code_version "
                        f"{doc.get('code_version', '?')}, this one {__version__})") from e  # fmt: skip
    model = build_model(mc)
    model.load_state_dict(doc["ema_model"] if "ema_model" in doc else doc["model"])
    return model.eval(), doc


def weight_average(model: torch.nn.Module, decay: float):
    """An exponential moving average of ``model``'s weights and buffers (None when ``decay`` is 0);
    its first update copies the weights."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def begun(ema) -> torch.nn.Module | None:
    """The averaged model once a weight average has had an update (None before, or without one)."""
    return ema.module if ema is not None and int(ema.n_averaged) > 0 else None


def step_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype a training step runs its matrix products in under autocast; None: float32 throughout.

    ``auto``: float16 (with loss scaling) on CUDA; bfloat16 on a CPU that computes it natively
    (AVX512-BF16 or AMX: the demo's Music Gesture step is 1.6x faster), float32 on other CPUs,
    where bfloat16 is emulated and slower.
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and _cpu_computes_bf16() else None
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"train.precision=fp16 needs a GPU (the workers run on {device.type}); use bf16 or fp32")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _cpu_computes_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels for this CPU (a private torch check; False if it is gone)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def model_config(tc: TrainConfig) -> ModelConfig:
    """The separator a training config asks for."""
    return ModelConfig(
        name=tc.model,
        unet=UNetConfig(depth=tc.unet_depth, base=tc.unet_base, time_levels=tc.unet_time_levels),
        gcn=GCNConfig(
            channels=tc.gcn_channels,
            strides=tc.gcn_strides,
            joint_embedding=tc.gcn_joint_embedding,
            partitions=tc.gcn_partitions,
            bones=tc.gcn_bones,
            readout=tc.gcn_readout,
        ),
        appearance_dim=tc.appearance_dim,
        appearance_weights=tc.appearance_weights,
        max_sources=max(tc.sources),
        time_bias=tc.fusion_time_bias,
        mask_prior=tc.mask_prior,
        input_scale=tc.input_scale,
        motion_bands=tc.motion_bands if tc.motion_aux > 0 or tc.visual_input else 0,
        visual_input=tc.visual_input,
        visual_others=tc.visual_others,
        competitive=tc.competitive_masks,
        level_fit=tc.level_fit,
        instrument_context=tc.instrument_context,
    )


# --- the worker -------------------------------------------------------------------------------


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: build, (re)load, train, validate, report, checkpoint."""
    import ray.train
    import ray.train.torch

    _quiet_ray_train_reports()
    tc = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["train"].items()})
    mc = ModelConfig.from_dict(config["model"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    amp_dtype = step_precision(tc.precision, device)
    torch.manual_seed(tc.seed)
    motion_epochs = motion_warmup(tc, mc)
    model = ray.train.torch.prepare_model(build_model(mc))
    raw = model.module if hasattr(model, "module") else model  # the bare module (DDP wraps it on 2+ workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = lr_schedule(optimizer, tc, motion_epochs)
    ema = weight_average(raw, tc.ema_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bf16 needs no loss scaling
    start_epoch, step, history = 0, 0, []
    checkpoint = ray.train.get_checkpoint()
    first_attempt = checkpoint is None
    source = None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            source = load_checkpoint(d)
    elif config.get("resume"):
        source = load_checkpoint(config["resume"])
    if source is not None:
        raw.load_state_dict(source["model"])
        optimizer.load_state_dict(source["optimizer"])
        scheduler.load_state_dict(source["scheduler"])
        start_epoch, step, history = source["epoch"] + 1, source["step"], list(source.get("history", []))
        if ema is not None and "ema_model" in source:
            ema.module.load_state_dict(source["ema_model"])
            ema.n_averaged.fill_(source["ema_steps"])
        if rank == 0:
            _console(f"resumed from epoch {source['epoch'] + 1} (step {step})")
            _log_event(Path(config["log_dir"]), {"event": "resumed", "after_epoch": source["epoch"], "step": step})
    permutation_invariant = getattr(raw, "permutation_invariant", False)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if config.get("has_val", True) else None
    out_dir = Path(config["log_dir"])
    probe = None  # rank 0's first batch, scored after every epoch: a low-noise view of learning
    total_epochs = motion_epochs + tc.epochs
    for epoch in range(start_epoch, total_epochs):
        t0 = time.perf_counter()
        motion_only = epoch < motion_epochs  # the motion branch's warm-up: its envelope loss alone
        model.train()
        gen = torch.Generator().manual_seed(tc.seed * 1000 + epoch * 10 + rank)
        losses, seen, step_times = [], [], []
        # pairing rules need a choice of sources: draw twice as many as one step mixes
        batch_rows = rows_per_step(tc)
        shuffle = (
            {"local_shuffle_buffer_size": 4 * batch_rows, "local_shuffle_seed": tc.seed + epoch} if tc.shuffle else {}
        )
        batches = train_shard.iter_torch_batches(batch_size=batch_rows, drop_last=True, **shuffle)
        for i, batch in enumerate(batches):
            if tc.steps_per_epoch and i >= tc.steps_per_epoch:
                continue  # drain the shard: every worker's iterator must reach the end of the epoch
            seen += batch["clip"].tolist()
            if probe is None and rank == 0:
                probe = (batch, _probe_loss(model, batch, tc, device, permutation_invariant))
            t_step = time.perf_counter()
            # the warm-up leaves the separator out of the graph, which DDP's hooks cannot sync: its gradients
            # are averaged by hand, and the separator's stay None (AdamW leaves it and its moments untouched)
            with model.no_sync() if motion_only and world > 1 else contextlib.nullcontext():
                loss = _step_loss(
                    model, batch, tc, gen, device, permutation_invariant, motion_only, amp_dtype=amp_dtype
                )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
            if motion_only and world > 1:
                _average_gradients(model, world)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None and not motion_only:  # the average begins with separation
                ema.update_parameters(raw)
            losses.append(float(loss.detach()))
            step_times.append(time.perf_counter() - t_step)
            step += 1
        lr = scheduler.get_last_lr()[0]  # the rate this epoch trained at
        scheduler.step()
        scored = model if begun(ema) is None else ema.module  # what evaluate will load
        val_sdr, val_floor = _validate(scored, val_shard, tc, device, permutation_invariant, world, rank)
        loss_mean = _mean_over_workers(losses, device, world)
        metrics = {"epoch": epoch, "step": step, "loss": loss_mean, "val_sdr": val_sdr,
                   "lr": lr, "seconds": time.perf_counter() - t0,
                   "step_seconds": float(np.median(step_times)) if step_times else float("nan"),
                   "val_sdr_floor": val_floor, "phase": "motion" if motion_only else "separate"}  # fmt: skip
        if probe is not None:
            metrics |= {"probe_loss_start": probe[1], "probe_loss": _probe_loss(model, probe[0], tc, device,
                                                                                permutation_invariant)}  # fmt: skip
        history.append(metrics)
        if config.get("audit"):
            _write_audit(out_dir, rank, epoch, seen, model)
        state = {"model_config": mc.to_dict(), "train_config": config["train"], "epoch": epoch, "step": step,
                 "metrics": metrics, "history": history}  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                save_checkpoint(Path(tmp), model, optimizer, scheduler, state, ema)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
                _write_logs(out_dir, history)
            if rank == 0 and config.get("progress", True):
                phase = "  (motion warm-up)" if motion_only else ""
                _console(
                    f"epoch {epoch + 1}/{total_epochs}{phase}  step {step}  loss {metrics['loss']:.4f}  "
                    f"val SDR {val_sdr:.2f} dB (constant mask {val_floor:.2f})  {metrics['seconds']:.0f} s"
                )
            ray.train.report(metrics, checkpoint=ckpt)
        if epoch == tc.fail_after_epoch and first_attempt and config.get("resume") is None:
            _wait_for_report_pickup(world)
            raise RuntimeError(f"injected failure after epoch {epoch} (train.fail_after_epoch)")


def _console(line: str) -> None:
    """A line on a worker's console, once: Ray Train's patched print() writes it twice when stdout is captured."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _quiet_ray_train_reports() -> None:
    """Ray Train V2 logs every report with its full metrics at INFO, under a logger named by its file
    (so RunConfig's LoggingConfig does not reach it); the epoch line already says it."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def _wait_for_report_pickup(world: int, timeout: float = 60.0) -> None:
    """Before an injected failure: wait until the controller has taken every rank's last report.

    Ray Train records a checkpoint only once it holds the reports of all ranks; a rank that fails
    while another's report is still queued loses that checkpoint, and the restart begins from
    scratch (a race CI's loaded 2 cores hit). Uses Ray Train V2's worker-side result queue; where
    that is not available, waits 5 s (over two of the controller's polling intervals) instead."""
    try:
        from ray.train.v2._internal.execution.context import get_train_context

        results = get_train_context().get_result_queue()
    except (ImportError, AttributeError):
        results = None
    if results is None:
        time.sleep(5.0)
    else:
        deadline = time.monotonic() + timeout
        while not results.empty() and time.monotonic() < deadline:
            time.sleep(0.1)
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()  # no rank fails before every rank's report is taken


def motion_warmup(tc: TrainConfig, mc: ModelConfig) -> int:
    """Epochs of motion warm-up this model gets: only Music Gesture with a motion head has one."""
    return tc.motion_warmup_epochs if mc.name == "music_gesture" and mc.motion_bands > 0 else 0


def lr_factor(epoch: int, tc: TrainConfig, motion_epochs: int) -> float:
    """The learning rate's factor in an epoch: 1 through the motion warm-up, then a linear rise over
    ``warmup_epochs`` and a cosine to 0 over the rest of ``epochs``."""
    e = epoch - motion_epochs
    if e < 0:
        return 1.0
    if e < tc.warmup_epochs:
        return (e + 1) / (tc.warmup_epochs + 1)
    span = max(tc.epochs - tc.warmup_epochs, 1)
    return 0.5 * (1 + math.cos(math.pi * (e - tc.warmup_epochs) / span))


def lr_schedule(optimizer, tc: TrainConfig, motion_epochs: int):
    """Stepped once per epoch. Without warm-ups it is the cosine of earlier versions (whose
    checkpoints hold that scheduler's state and resume into it)."""
    if motion_epochs == 0 and tc.warmup_epochs == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(tc.epochs, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(epoch, tc, motion_epochs))


def _step_loss(
    model,
    batch,
    tc: TrainConfig,
    gen,
    device,
    permutation_invariant: bool,
    motion_only: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The loss of one step: build mixtures, run the model on each target person, compare masks.
    With ``motion_only`` (Music Gesture's warm-up), only the motion branch runs, on its envelope loss.
    With ``amp_dtype`` the model's forward runs under autocast; the mixtures, targets and losses stay
    float32 (a bf16 target would be rounded to 3 significant digits)."""
    if tc.objective == "mix":
        n = int(tc.sources[int(torch.randint(len(tc.sources), (1,), generator=gen))])
        groups = group_sources(batch["instrument"].cpu(), n, tc.pairing, gen)
        if len(groups) == 0:  # the pairing rule found no group in this batch: mix any
            groups = group_sources(batch["instrument"].cpu(), n, "any", gen)
        groups = groups[: tc.batch_size].to(device)
        waves = batch["wave"].to(device).float()[groups] / shards.PCM_SCALE  # (G, n, S)
        parts = waves / n  # the mixture is the mean of the sources
        mix = parts.sum(dim=1)
        keypoints, crops = batch["keypoints"][groups], batch["crop"][groups]
    else:
        n = int(batch["n"].min())
        mix = batch["mix"].float() / shards.PCM_SCALE
        parts = batch["stems"][:, :n].float() / shards.PCM_SCALE
        keypoints, crops = batch["keypoints"][:, :n], batch["crops"][:, :n]
    spectra = spectrograms(mix, parts)
    crops = crops.float().permute(0, 1, 4, 2, 3) / 255.0
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        args = (spectra.mix_logmag, keypoints.float(), crops)
        out = model(*args, motion_only=True) if motion_only else model(*args)
    raw = model.module if hasattr(model, "module") else model
    if motion_only:
        loss = motion_loss(out.float(), spectra)
    else:
        loss = mask_loss(out.float(), spectra, tc.mask, permutation_invariant)
        if tc.motion_aux > 0 and getattr(raw, "motion_prediction", None) is not None:
            loss = loss + tc.motion_aux * motion_loss(raw.motion_prediction.float(), spectra)
    if tc.objective == "mix" and getattr(raw, "instrument_logits", None) is not None:
        loss = loss + instrument_loss(raw.instrument_logits.float(), batch["instrument"].to(device)[groups])
    return loss


def instrument_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the persons' instrument logits (..., instruments) against their labels (...); persons
    whose instrument is unknown (-1) do not count (0 when none is known)."""
    known = labels >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits[known], labels[known])


def _probe_loss(model, batch, tc: TrainConfig, device, permutation_invariant: bool) -> float:
    """The loss on one fixed batch, without learning from it (BN statistics restored afterwards).

    Runs the bare module, not the DDP wrapper: only rank 0 calls it, and DDP's
    forward would wait for the other ranks.
    """
    raw = model.module if hasattr(model, "module") else model
    buffers = {k: v.clone() for k, v in raw.named_buffers()}
    with torch.no_grad():
        loss = float(_step_loss(raw, batch, tc, torch.Generator().manual_seed(tc.seed), device, permutation_invariant))
    for k, v in raw.named_buffers():
        v.copy_(buffers[k])
    return loss


def _validate(model, shard, tc: TrainConfig, device, permutation_invariant: bool, world: int, rank: int = 0):
    """Mean quick SDR over this worker's share of fixed held-out mixtures, pooled over workers, and
    the same for the constant mask 1/N on those mixtures (quick SDR is not scale-invariant: that
    floor is ~3 dB on duets, and the model's number means something only above it).

    ``shard`` is the whole validation split (every worker reads all of it). The mixtures are made
    from the rows with the smallest clip numbers (a hash, so a random sample), every ``world``-th
    from ``rank``: they depend on the split's contents only, not on the order Ray delivers its
    blocks, so they are the same every epoch, on every run and for every model.

    Both NaN when there is no validation split, or it holds too few sources to mix. Runs the bare
    module, not the DDP wrapper: a worker whose share forms no mixture skips the forward, and
    DDP's forward would leave the other workers waiting in its buffer broadcast.
    """
    if shard is None:
        return float("nan"), float("nan")
    model = model.module if hasattr(model, "module") else model
    model.eval()
    gen = torch.Generator().manual_seed(tc.seed + 12345)  # the same mixtures every epoch
    sdrs, floors = [], []
    n = min(tc.sources)
    per_worker = max(1, tc.val_mixtures // world)
    rows = (n if tc.objective == "mix" else 1) * per_worker  # rows one worker mixes
    kept = _first_clips(shard, rows * world, batch_size=max(2 * n, rows))
    inputs = _validation_inputs({k: v[rank::world] for k, v in kept.items()}, tc, n, per_worker, gen) if kept else None
    if inputs is not None:
        mix, parts, keypoints, crops = (x.to(device) for x in inputs)
        with torch.no_grad():
            spectra = spectrograms(mix, parts)
            logits = model(spectra.mix_logmag, keypoints.float(), crops.float().permute(0, 1, 4, 2, 3) / 255.0)
            est = separate(mix, masks_from_logits(logits.float(), tc.mask))
            sdr = quick_sdr(est[:, : parts.shape[1]], parts) if not permutation_invariant else _best_perm(est, parts)
        sdrs += sdr.flatten().tolist()
        floors += constant_mask_sdr(mix, parts).flatten().tolist()
    return _mean_over_workers(sdrs, device, world), _mean_over_workers(floors, device, world)


def _validation_inputs(rows: dict[str, torch.Tensor], tc: TrainConfig, n: int, mixtures: int, gen):
    """One worker's validation rows → (mix, parts, keypoints, crops) of up to ``mixtures`` mixtures of ``n``
    sources (``mix``) or of the real mixtures (``supervised``); None when they form none."""
    if not len(rows["clip"]):  # fewer validation rows than workers
        return None
    if tc.objective == "mix":
        groups = group_sources(rows["instrument"], n, "any", gen)[:mixtures]
        if len(groups) == 0:
            return None
        parts = rows["wave"].float()[groups] / shards.PCM_SCALE / n
        return parts.sum(1), parts, rows["keypoints"][groups], rows["crop"][groups]
    k = int(rows["n"].min())
    mix, parts = rows["mix"].float() / shards.PCM_SCALE, rows["stems"][:, :k].float() / shards.PCM_SCALE
    return mix, parts, rows["keypoints"][:, :k], rows["crops"][:, :k]


def _first_clips(shard, count: int, batch_size: int) -> dict[str, torch.Tensor] | None:
    """The ``count`` rows of a dataset (shard) with the smallest clip numbers, in that order; None if empty.

    Reads every batch but keeps at most ``count`` rows besides the batch at hand.
    """
    kept = None
    for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=False):
        if kept is not None:
            batch = {k: torch.cat([kept[k], v]) for k, v in batch.items()}
        order = torch.argsort(batch["clip"], stable=True)[:count]
        kept = {k: v[order] for k, v in batch.items()}
    return kept if kept is not None and len(kept["clip"]) else None


def _average_gradients(model, world: int) -> None:
    """All-reduce (mean) every gradient a step produced, in the same order on every worker."""
    for p in model.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def _mean_over_workers(values: list[float], device, world: int) -> float:
    """Mean of ``values`` pooled over all workers (sum and count all-reduced)."""
    import torch.distributed as dist

    total = torch.tensor([float(np.sum(values)), float(len(values))], device=device, dtype=torch.float64)
    if world > 1 and dist.is_initialized():
        dist.all_reduce(total)
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")


def _log_event(out_dir: Path, event: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "events.jsonl", "a") as f:
        f.write(json.dumps({"time": time.time(), **event}) + "\n")


def _best_perm(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SDR with each mixture's best assignment of outputs to sources (audio-only's oracle)."""
    import itertools

    best = None
    for perm in itertools.permutations(range(est.shape[1]), ref.shape[1]):
        sdr = quick_sdr(est[:, list(perm)], ref)
        best = sdr if best is None else torch.where(sdr.mean(1, keepdim=True) > best.mean(1, keepdim=True), sdr, best)
    return best


def _write_logs(out_dir: Path, history: list[dict]) -> None:
    """metrics.jsonl, metrics.csv and TensorBoard events (rank 0)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    buf = io.StringIO()
    # every key any epoch has (a run resumed from an older version's checkpoint gains columns)
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for h in history for k in h)), restval="")
    writer.writeheader()
    writer.writerows(history)
    (out_dir / "metrics.csv").write_text(buf.getvalue())
    from tensorboardX import SummaryWriter

    last = history[-1]
    with SummaryWriter(str(out_dir / "tensorboard")) as tb:
        for key in ("loss", "val_sdr", "lr", "seconds"):
            tb.add_scalar(key, last[key], last["epoch"])


def _write_audit(out_dir: Path, rank: int, epoch: int, seen: list[int], model) -> None:
    """Per rank: which (clip, person) examples it trained on, and a checksum of its weights."""
    raw = model.module if hasattr(model, "module") else model
    digest = sum(float(p.detach().double().sum()) for p in raw.parameters())
    folder = out_dir / "audit"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"epoch{epoch}-rank{rank}.json").write_text(json.dumps({"seen": seen, "weights": digest}))


# --- the driver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSummary:
    """What a training run produced."""

    run_dir: str
    checkpoint: str
    epochs: int
    steps: int
    loss: float
    val_sdr: float
    seconds: float
    val_sdr_floor: float = float("nan")  # the constant mask 1/N on the same validation mixtures

    @staticmethod
    def of_checkpoint(doc: dict, run_dir, checkpoint, seconds: float) -> TrainSummary:
        """The summary of a run from its last checkpoint document (its epoch, step and last metrics)."""
        m = doc["metrics"]
        return TrainSummary(str(run_dir), str(checkpoint), doc["epoch"] + 1, doc["step"], m["loss"], m["val_sdr"],
                            seconds, m.get("val_sdr_floor", float("nan")))  # fmt: skip

    def table(self) -> str:
        rows = [("run", self.run_dir), ("checkpoint", self.checkpoint), ("epochs", str(self.epochs)),
                ("steps", str(self.steps)), ("last loss", f"{self.loss:.4f}"),
                ("val SDR (quick)", f"{self.val_sdr:.2f} dB (constant mask 1/N: {self.val_sdr_floor:.2f} dB)"),
                ("time", f"{self.seconds:.0f} s")]  # fmt: skip
        return key_value_table(rows)


def find_version(shards_dir: str) -> Path:
    """The dataset version folder: ``shards_dir`` itself, or its newest ``v*`` version."""
    root = Path(shards_dir)
    if (root / "_dataset.json").is_file():
        return root
    versions = sorted(root.glob("v*/_dataset.json"), key=lambda p: p.stat().st_mtime)
    if not versions:
        raise UserError(f"no preprocessed shards in {shards_dir} (run `python -m pipeline preprocess` first)")
    return versions[-1].parent


def _finished_run(final: Path, config: Config) -> TrainSummary | None:
    """The summary of a run that already reached its last epoch with this same config, else None."""
    if not final.is_file():
        return None
    doc = load_checkpoint(final)
    last = motion_warmup(config.train, model_config(config.train)) + config.train.epochs
    if doc["train_config"] != config_to_dict(config)["train"] or doc["epoch"] + 1 < last:
        return None
    return TrainSummary.of_checkpoint(doc, final.parent.parent, final, seconds=0.0)


def training_dataset(files: list[Path], tc: TrainConfig):
    """The Ray dataset of training rows from these shard files.

    Held in the object store (decoded once, every epoch reads memory) when the files are
    under ``train.materialize_gb`` on disk, else streamed (read and decoded again each epoch).
    """
    import ray

    ds = ray.data.read_parquet([str(f) for f in files]).select_columns(TRAIN_COLUMNS)
    ds = ds.map_batches(rows_function(tc), fn_kwargs={"crop_size": tc.crop_size}, batch_format="numpy")
    on_disk = sum(f.stat().st_size for f in files)
    if on_disk <= tc.materialize_gb * 1e9:
        log.info("decoding %d shard file(s) (%.0f MB) once into memory", len(files), on_disk / 1e6)
        ds = ds.materialize()
    return ds


def run_train(
    config: Config,
    shards_dir: str,
    output: str,
    resume: str | None = None,
    audit: bool = False,
    progress: bool = True,
) -> TrainSummary:
    """Train ``config.train.model`` on the shards with Ray Train; returns the summary."""
    import ray
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipeline.raysession import init_ray

    tc = config.train
    if tc.model not in MODELS:
        raise UserError(f"unknown model {tc.model!r}; choose one of {', '.join(MODELS)}")
    if resume:
        load_checkpoint(resume)  # fail early, with a clear message
    version = find_version(shards_dir)
    out = Path(output).resolve()
    run_dir = out / tc.model
    done = _finished_run(run_dir / FINAL_DIR / CHECKPOINT_FILE, config)
    if done is not None and not resume:
        log.info("%s is already trained to epoch %d; nothing to do", run_dir, done.epochs)
        return done
    step_precision(tc.precision, torch.device("cuda" if tc.gpus_per_worker > 0 else "cpu"))  # refused before Ray starts
    init_ray()
    # Training's progress is rank 0's line per epoch; Ray Data's bars would repeat for every pass
    # over the shards in every worker (the demo's log grew to 160 MB of them).
    data_context = ray.data.DataContext.get_current()
    data_context.enable_progress_bars = False
    data_context.print_on_execution_start = False  # the two INFO lines that open every such pass
    t0 = time.perf_counter()
    datasets = {}
    for split in ("train", "val"):
        folder = version / f"split={split}"
        if not any(folder.glob("*.parquet")):
            if split == "train":
                raise UserError(f"no train shards in {version}")
            log.warning("no validation shards in %s: validation is skipped", version)
            continue
        datasets[split] = training_dataset(sorted(folder.glob("*.parquet")), tc)
    payload = {"train": config_to_dict(config)["train"], "model": model_config(tc).to_dict(), "resume": resume,
               "log_dir": str(run_dir / "logs"), "audit": audit, "has_val": "val" in datasets,
               "progress": progress}  # fmt: skip
    use_gpu = tc.gpus_per_worker > 0
    resources = {"CPU": tc.cpus_per_worker} | ({"GPU": tc.gpus_per_worker} if use_gpu else {})
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=payload,
        scaling_config=ScalingConfig(num_workers=tc.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=tc.model,
            storage_path=str(out),
            checkpoint_config=CheckpointConfig(num_to_keep=tc.checkpoints_to_keep),
            failure_config=FailureConfig(max_failures=tc.max_failures),
            # at INFO, Ray Train prints every report and checkpoint with its metrics: the epoch line says it
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets=datasets,
        # every worker reads the whole validation split and picks its own fixed share (see _validate)
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise UserError(f"training produced no checkpoint ({result.error})")
    with result.checkpoint.as_directory() as d:
        doc = load_checkpoint(d)
    final = run_dir / FINAL_DIR
    final.mkdir(parents=True, exist_ok=True)
    torch.save(doc, final / CHECKPOINT_FILE)
    summary = TrainSummary.of_checkpoint(doc, run_dir, final / CHECKPOINT_FILE, time.perf_counter() - t0)
    (run_dir / "train_summary.json").write_text(json.dumps(asdict(summary), indent=1) + "\n")
    return summary
