"""``python -m pipeline bench``: each stage next to its floor, measured side by side in one run.

Every section is a plain function that returns :class:`Row` s (a figure with its
values over repeats); :func:`run_bench` prepares the inputs once, runs the
sections, prints one table and writes ``bench.json`` and a section of
``BENCHMARKS.md``. Ratios are the figures of merit, not absolute times.

1. preprocessing (OpenPose JSON keypoints) vs decoding the same frames and audio
2. the same videos in Sound of Pixels' layout (JPEG frames + wav via ffmpeg): time and bytes
3. pose throughput per backend and batch size
4. the Parquet → Ray Data → model loader vs the same batches from memory
5. our Ray Train DDP loop vs a plain torch.distributed DDP loop
6. evaluation with 1 vs 2 CPUs
7. peak memory of one preprocessing worker on a 10 s vs a 60 s video
8. the separation quality table (from BENCHMARKS.md's quality section)
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline.config import Config, load_config, with_overrides

SECTIONS = ("preprocess", "layout", "pose", "loader", "ddp", "evaluate", "memory", "quality")
BENCH_START, BENCH_END = "<!-- bench:start -->", "<!-- bench:end -->"
QUALITY_START, QUALITY_END = "<!-- quality:start -->", "<!-- quality:end -->"
RAGA_VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/raga_performance/example_3people/short_video.mp4"


@dataclass
class Row:
    """One figure: its values over repeats, the unit, and the target it is held to (if any)."""

    section: str
    measure: str
    values: list[float]
    unit: str
    target: str = ""  # e.g. "<= 1.5"
    note: str = ""

    @property
    def stats(self) -> tuple[float, float, float]:
        v = [x for x in self.values if np.isfinite(x)]
        if not v:
            return (float("nan"),) * 3
        return min(v), statistics.median(v), max(v)

    @property
    def met(self) -> bool | None:
        """Whether the median meets the target; None without a target."""
        m = re.fullmatch(r"(<=|>=)\s*([0-9.]+)", self.target.strip())
        if not m or not np.isfinite(self.stats[1]):
            return None
        value, bound = self.stats[1], float(m.group(2))
        return value <= bound if m.group(1) == "<=" else value >= bound

    def to_dict(self) -> dict:
        lo, med, hi = self.stats
        return asdict(self) | {"min": lo, "median": med, "max": hi, "met": self.met}


@dataclass
class Plan:
    """Sizes of one bench run (``quick`` or full)."""

    quick: bool
    repeats: int
    pose_frames: int
    long_video_s: int
    loader_steps: int
    ddp_steps: int
    overrides: list[str] = field(default_factory=list)

    @staticmethod
    def make(quick: bool, repeats: int | None) -> Plan:
        if quick:
            return Plan(True, repeats or 1, 16, 20, 4, 4, [])
        # the demo benchmark's sizes, a smaller set of pieces (~4 minutes of video)
        return Plan(False, repeats or 3, 64, 60, 30, 40, ["synth.solos=6", "synth.duets=4", "synth.trios=1",
                                                          "synth.quartets=0"])  # fmt: skip


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def table(rows: list[Row]) -> str:
    """One Markdown table of every figure."""
    lines = ["| # | measure | min | median | max | unit | target | met |", "|---|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        lo, med, hi = r.stats
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(f"| {SECTIONS.index(r.section) + 1} | {r.measure} | {_fmt(lo)} | {_fmt(med)} | {_fmt(hi)} | "
                     f"{r.unit} | {r.target} | {met} |")  # fmt: skip
    return "\n".join(lines)


def _say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --- inputs ------------------------------------------------------------------------------------


def bench_config(plan: Plan) -> Config:
    """The tiny preset (quick) or the demo preset with fewer pieces; OpenPose JSON keypoints."""
    preset = "tiny" if plan.quick else "demo"
    return load_config(preset, (), [*plan.overrides, "preprocess.pose_backend=openpose"])


def prepare_benchmark(config: Config, folder: Path) -> Path:
    """The generated videos every section reads (rendered once; a re-run reuses them)."""
    from pipeline.synth.generate import generate_benchmark

    _say(f"input videos: {folder} (generated once, reused by later runs)")
    generate_benchmark(config, folder, progress=False)
    return folder


def config_from_doc(doc: dict) -> Config:
    """A config sent to a child process as ``config_to_dict(config)``, back as a (type-checked) Config."""
    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
    try:
        return load_config(None, [f.name])
    finally:
        os.unlink(f.name)


def _items(root: Path):
    from pipeline.sources import catalog

    return catalog(str(root)).items


# --- 1 and 2: preprocessing vs its floor and vs Sound of Pixels' layout -------------------------


def _decode_one(args: tuple[str, float, int, list[str]]) -> int:
    """Decode-only floor for one video: its frames at ``fps`` (the preprocess decode size) + its audio."""
    from pipeline.audio import SAMPLE_RATE
    from pipeline.video import iter_frames, probe_video, read_audio

    video, fps, decode_width, audio = args
    info = probe_video(video)
    width = min(decode_width, info.width)
    height = int(round(info.height * width / info.width / 2)) * 2
    frames = 0
    for _, chunk in iter_frames(video, fps, (width, height)):
        frames += len(chunk)
    for a in audio:
        read_audio(a, SAMPLE_RATE)
    return frames


def decode_floor(root: Path, config: Config, workers: int) -> float:
    """Seconds to decode every video's frames at the preprocess fps and read all its audio, in parallel."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = []
    for item in _items(root):
        audio = [str(root / a) for a in ([item.mix] if item.mix else [item.video]) + list(item.stems)]
        jobs.append((str(root / item.video), config.preprocess.fps, config.preprocess.decode_width, audio))
    with ProcessPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(_decode_one, jobs))
        return time.perf_counter() - t0


def _stages_one(args: tuple[dict, str, str, object]) -> int:
    """Preprocessing's own work on one video without Ray: ``estimate_item`` + ``build_item``; returns clips."""
    from pipeline.preprocess import build_item, estimate_item
    from pipeline.sources import Item

    row, root, out, cfg = args
    result = build_item(estimate_item(Item.from_row(row), root, cfg, {}), root, out, cfg)
    if result["error"]:
        raise RuntimeError(f"{row['video']}: {result['error']}")
    return result["clips"]


def stage_work(root: Path, config: Config, out: Path, workers: int) -> float:
    """Seconds for the preprocessing functions alone on every video (a process pool, no Ray Data)."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(item.to_row(), str(root), str(out), config.preprocess) for item in _items(root)]
    with ProcessPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(_stages_one, jobs))
        return time.perf_counter() - t0


def shard_bytes_by_column(folder: Path) -> dict[str, int]:
    """Compressed bytes of each column over every shard under ``folder`` (from the Parquet footers)."""
    import pyarrow.parquet as pq

    sizes: dict[str, int] = {}
    for f in folder.rglob("*.parquet"):
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                name = col.path_in_schema.split(".")[0]
                sizes[name] = sizes.get(name, 0) + col.total_compressed_size
    return sizes


def sop_layout(root: Path, dest: Path, workers: int) -> tuple[float, int]:
    """Sound of Pixels' preprocessing: JPEG frames at 8 fps + 11025 Hz mono wav per video (ffmpeg CLI).

    Returns (seconds, bytes on disk).
    """
    from concurrent.futures import ThreadPoolExecutor

    cmds = []
    for item in _items(root):
        out = dest / item.item_id
        (out / "frames").mkdir(parents=True, exist_ok=True)
        audio_src = root / (item.mix or item.video)
        cmds.append(["ffmpeg", "-loglevel", "error", "-y", "-i", str(root / item.video), "-vf", "fps=8",
                     str(out / "frames" / "%06d.jpg")])  # fmt: skip
        cmds.append(["ffmpeg", "-loglevel", "error", "-y", "-i", str(audio_src), "-ar", "11025", "-ac", "1",
                     str(out / "audio.wav")])  # fmt: skip
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for proc in pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), cmds):
            if proc.returncode:
                raise RuntimeError(f"ffmpeg failed: {proc.stderr.strip()[-300:]}")
    seconds = time.perf_counter() - t0
    return seconds, _folder_bytes(dest)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bench_preprocess(root: Path, config: Config, work: Path, plan: Plan) -> tuple[list[Row], list[float]]:
    """Sections 1 and 2. Also returns our shard bytes per repeat."""
    from pipeline.preprocess import run_preprocess

    workers = os.cpu_count() or 1
    ours, floor, bare, theirs, ours_bytes, their_bytes = [], [], [], [], [], []
    columns: dict[str, list[float]] = {"spectrograms": [], "waves": [], "keypoints, crops, ids": []}
    for r in range(plan.repeats):
        _say(f"preprocess vs floor vs SoP layout, repeat {r + 1}/{plan.repeats}")
        out = work / f"shards-{r}"
        seconds, summary = _timed(lambda out=out: run_preprocess(config, str(root), str(out), progress=False))
        if summary.errors:
            raise RuntimeError(f"preprocessing the bench videos failed: see {summary.version_dir}/errors")
        ours.append(seconds)
        ours_bytes.append(_folder_bytes(Path(summary.version_dir) / "."))
        by_column = shard_bytes_by_column(Path(summary.version_dir))
        groups = {"spectrograms": ("mix_mag", "stem_mag"), "waves": ("mix_wave", "stem_wave")}
        for name, cols in groups.items():
            columns[name].append(sum(by_column.get(c, 0) for c in cols) / 1e6)
        columns["keypoints, crops, ids"].append(sum(by_column.values()) / 1e6 - columns["spectrograms"][-1]
                                                - columns["waves"][-1])  # fmt: skip
        floor.append(decode_floor(root, config, workers))
        bare.append(stage_work(root, config, work / f"bare-{r}", workers))
        shutil.rmtree(work / f"bare-{r}", ignore_errors=True)
        t, b = sop_layout(root, work / f"sop-{r}", workers)
        theirs.append(t)
        their_bytes.append(b)
        shutil.rmtree(out)  # the bench's own scratch output
        shutil.rmtree(work / f"sop-{r}")
    n = len(_items(root))
    rows = [
        Row("preprocess", f"preprocess wall time ({n} videos, OpenPose JSON)", ours, "s"),
        Row("preprocess", "decode-only floor (frames at 8 fps + audio)", floor, "s"),
        Row(
            "preprocess",
            "preprocess / floor",
            [a / b for a, b in zip(ours, floor)],
            "ratio",
            "<= 1.5",
            "Ray start-up is excluded (Ray runs already); Ray Data scheduling is included",
        ),
        Row(
            "preprocess",
            "the same stage functions without Ray (process pool)",
            bare,
            "s",
            note="estimate_item + build_item per video in as many processes as the floor: the code's own cost",
        ),
        Row(
            "preprocess",
            "stages without Ray / floor",
            [a / b for a, b in zip(bare, floor)],
            "ratio",
            note="with OpenPose JSON only key frames are decoded, so this can be below 1",
        ),
        Row(
            "preprocess",
            "Ray Data's share of preprocess time",
            [1 - b / a for a, b in zip(ours, bare)],
            "fraction",
            note="(preprocess - stages without Ray) / preprocess: actor and task start, scheduling, object transfers",
        ),
        Row("layout", "SoP layout (ffmpeg JPEG 8 fps + 11025 Hz wav)", theirs, "s"),
        Row("layout", "preprocess / SoP layout time", [a / b for a, b in zip(ours, theirs)], "ratio"),
        Row("layout", "our shards", [b / 1e6 for b in ours_bytes], "MB"),
        Row("layout", "SoP layout", [b / 1e6 for b in their_bytes], "MB"),
        Row("layout", "our bytes / SoP bytes", [a / b for a, b in zip(ours_bytes, their_bytes)], "ratio", "<= 1.0"),
        *[
            Row("layout", f"our shards: {name}", values, "MB", note="compressed bytes of these columns")
            for name, values in columns.items()
        ],  # fmt: skip
    ]
    return rows, ours_bytes


# --- 3: pose throughput ----------------------------------------------------------------------

MMPOSE_MODELS = {
    "mmpose RTMPose-t body (17)": "body_2d_keypoint/rtmpose/coco/rtmpose-t_8xb256-420e_coco-256x192.py",
    "mmpose RTMPose-m whole-body (133)": (
        "wholebody_2d_keypoint/rtmpose/coco-wholebody/rtmpose-m_8xb64-270e_coco-wholebody-256x192.py"
    ),
}


def pose_frames(n: int, width: int = 480) -> np.ndarray:
    """``n`` frames of the real three-musician video at the preprocess decode width (looped if short)."""
    from pipeline.video import iter_frames, probe_video

    info = probe_video(RAGA_VIDEO)
    height = int(round(info.height * width / info.width / 2)) * 2
    frames = np.concatenate([f for _, f in iter_frames(RAGA_VIDEO, 8.0, (width, height))])
    return np.concatenate([frames] * (n // len(frames) + 1))[:n]


def _backends(config: Config) -> dict[str, Callable[[], object]]:
    from dataclasses import replace

    def mediapipe():
        from pipeline.pose.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend()

    def mmpose(cfg_name):
        def build():
            from pipeline.pose.mmpose_backend import MMPoseBackend

            return MMPoseBackend(replace(config.preprocess, mmpose_config=cfg_name, mmpose_checkpoint=""))

        return build

    return {"mediapipe Holistic": mediapipe, **{k: mmpose(v) for k, v in MMPOSE_MODELS.items()}}


def bench_pose(config: Config, plan: Plan) -> list[Row]:
    """Section 3: frames/s of each backend at 1 / 8 / 32 frames per call, on real frames."""
    frames = pose_frames(plan.pose_frames)
    scale = (1.0, 1.0)
    rows = []
    for name, build in _backends(config).items():
        try:
            backend = build()
            backend.detect(frames[:1], scale)  # warm-up (graph building, first allocation)
        except Exception as e:  # noqa: BLE001 - a backend that cannot be built is reported, not fatal
            rows.append(Row("pose", f"{name}", [float("nan")], "frames/s", note=f"unavailable: {str(e)[:120]}"))
            continue
        for batch in (1, 8, 32):
            values = []
            for _ in range(plan.repeats):
                _say(f"pose: {name}, batch {batch}")
                t0 = time.perf_counter()
                for i in range(0, len(frames), batch):
                    backend.detect(frames[i : i + batch], scale)
                values.append(len(frames) / (time.perf_counter() - t0))
            note = "random weights (checkpoints cannot be downloaded here): speed only" if "mmpose" in name else ""
            rows.append(Row("pose", f"{name}, batch {batch}", values, "frames/s", note=note))
        del backend
    return rows


# --- 4: the loader ------------------------------------------------------------------------------


def _train_rows_dataset(shards_dir: Path, config: Config):
    """pipeline.train's dataset of training rows, streamed (read and decoded on every pass)."""
    from pipeline.train import training_dataset

    files = sorted((shards_dir / "split=train").glob("*.parquet"))
    return training_dataset(files, dataclasses.replace(config.train, materialize_gb=0.0))


def bench_loader(shards_dir: Path, config: Config, plan: Plan) -> list[Row]:
    """Section 4: steps/s through Parquet → Ray Data → model vs the same batches already in memory."""
    import torch

    from pipeline.models.separators import build_model
    from pipeline.train import _step_loss, model_config, rows_per_step, step_precision

    tc = config.train
    per_step = rows_per_step(tc)
    model = build_model(model_config(tc))
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr)
    gen = torch.Generator().manual_seed(0)
    amp_dtype = step_precision(tc.precision, torch.device("cpu"))  # as the trainer's steps run

    def step(batch):
        loss = _step_loss(model, batch, tc, gen, torch.device("cpu"), False, amp_dtype=amp_dtype)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def loader_pass(ds) -> tuple[float, list]:
        it = iter(ds.iter_torch_batches(batch_size=per_step, drop_last=True))
        kept = [next(it)]
        step(kept[0])  # warm-up, not timed
        t0 = time.perf_counter()
        for _ in range(plan.loader_steps):
            batch = next(it, None)
            if batch is None:
                it = iter(ds.iter_torch_batches(batch_size=per_step, drop_last=True))
                batch = next(it)
            kept.append(batch)
            step(batch)
        return plan.loader_steps / (time.perf_counter() - t0), kept[1:]

    loader, memory, ratio, cached, cached_ratio, cache_s = [], [], [], [], [], []
    for r in range(plan.repeats):
        _say(f"loader: Ray Data (streaming, then materialized) vs in memory, repeat {r + 1}/{plan.repeats}")
        sps, batches = loader_pass(_train_rows_dataset(shards_dir, config))
        seconds, ds = _timed(lambda: _train_rows_dataset(shards_dir, config).materialize())
        sps_cached, _ = loader_pass(ds)
        del ds
        t0 = time.perf_counter()
        for b in batches:
            step(b)
        mem = len(batches) / (time.perf_counter() - t0)
        loader.append(sps)
        memory.append(mem)
        ratio.append(sps / mem)
        cached.append(sps_cached)
        cached_ratio.append(sps_cached / mem)
        cache_s.append(seconds)
    return [
        Row(
            "loader",
            "steps/s, Parquet → Ray Data → model",
            loader,
            "steps/s",
            note="streamed (pipeline.train, a split over train.materialize_gb): each pass reads and decodes again",
        ),
        Row("loader", "steps/s, same batches from memory", memory, "steps/s"),
        Row("loader", "loader / memory", ratio, "ratio", ">= 0.9", "one process, one model, the train config's batch"),
        Row(
            "loader",
            "steps/s, Ray Data materialized once",
            cached,
            "steps/s",
            note="pipeline.train, a split under train.materialize_gb (2 GB): decoded once into the object store",
        ),
        Row("loader", "materialize once", cache_s, "s"),
        Row("loader", "materialized / memory", cached_ratio, "ratio", ">= 0.9"),
    ]


# --- 5: Ray Train DDP vs plain torch DDP -------------------------------------------------------


class _RowsInMemory:
    """Stands in for a Ray dataset shard in the plain loop: batches of rows already in memory."""

    def __init__(self, rows: dict):
        self.rows = rows

    def iter_torch_batches(self, batch_size: int, drop_last: bool = False):
        n = len(self.rows["clip"])
        for i in range(0, n - n % batch_size if drop_last else n, batch_size):
            yield {k: v[i : i + batch_size] for k, v in self.rows.items()}


def _plain_worker(rank: int, world: int, port: int, shards_dir: str, config_doc: dict, epochs: int,
                  steps_per_epoch: int, work: str):  # fmt: skip
    """One rank of the plain torch.distributed DDP loop (gloo), on this rank's share of the rows.

    Each epoch does what pipeline.train's epoch does besides the steps: quick-SDR validation
    (the same function) and a checkpoint written by rank 0.
    """
    import torch
    import torch.distributed as dist

    from pipeline.models.separators import build_model
    from pipeline.train import (
        _step_loss,
        _validate,
        model_config,
        rows_in_memory,
        rows_per_step,
        save_checkpoint,
        step_precision,
    )

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    t_start = time.perf_counter()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    tc = config_from_doc(config_doc).train
    amp_dtype = step_precision(tc.precision, torch.device("cpu"))  # as the trainer's steps run

    def rows(split: str, *share: int) -> dict | None:  # a split's rows, or (rank, world) one rank's clips of them
        files = sorted((Path(shards_dir) / f"split={split}").glob("*.parquet"))
        return rows_in_memory(files, tc, *share) if files else None

    # as pipeline.train: the train split's rows are split among workers, every worker reads all of val
    data, val_rows = rows("train", rank, world), rows("val")
    val = _RowsInMemory(val_rows) if val_rows is not None else None
    torch.manual_seed(tc.seed)
    model = torch.nn.parallel.DistributedDataParallel(build_model(model_config(tc)))
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    gen = torch.Generator().manual_seed(rank)
    per = rows_per_step(tc)
    times = []
    for epoch in range(epochs):
        model.train()
        for _ in range(steps_per_epoch):
            idx = torch.randperm(len(data["wave"]), generator=gen)[:per]
            batch = {k: v[idx] for k, v in data.items()}
            t0 = time.perf_counter()
            loss = _step_loss(model, batch, tc, gen, torch.device("cpu"), False, amp_dtype=amp_dtype)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        sched.step()
        _validate(model, val, tc, torch.device("cpu"), False, world, rank)
        if rank == 0:
            folder = Path(work) / "plain-checkpoint"
            folder.mkdir(exist_ok=True)
            state = {"model_config": model_config(tc).to_dict(), "train_config": config_doc["train"], "epoch": epoch}
            save_checkpoint(folder, model, opt, sched, state)
        dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        Path(work, "plain-ddp.json").write_text(json.dumps({"step_seconds": float(np.median(times[1:] or times)),
                                                           "seconds": time.perf_counter() - t_start}))  # fmt: skip


def plain_ddp(shards_dir: Path, config: Config, epochs: int, steps_per_epoch: int, work: Path) -> tuple[float, float]:
    """Median step seconds and whole-run seconds of the plain DDP loop (torch.multiprocessing, gloo)."""
    import socket

    import torch.multiprocessing as mp

    from pipeline.config import config_to_dict

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    mp.spawn(_plain_worker, args=(config.train.workers, port, str(shards_dir), config_to_dict(config), epochs,
                                  steps_per_epoch, str(work)), nprocs=config.train.workers, join=True)  # fmt: skip
    whole = time.perf_counter() - t0
    shutil.rmtree(work / "plain-checkpoint", ignore_errors=True)
    return json.loads((work / "plain-ddp.json").read_text())["step_seconds"], whole


def steps_per_epoch(shards_dir: Path, config: Config) -> int:
    """Steps one epoch of pipeline.train takes on these shards (each worker: its equal share of the rows)."""
    import pyarrow.parquet as pq

    from pipeline.train import rows_per_step

    rows = 0
    for f in sorted((shards_dir / "split=train").glob("*.parquet")):
        t = pq.read_table(f, columns=["num_sources", "has_stems"]).to_pydict()
        rows += sum(n for n, stems in zip(t["num_sources"], t["has_stems"]) if stems)
    return rows // config.train.workers // rows_per_step(config.train)


def ray_step_seconds(metrics_jsonl: Path) -> tuple[float, bool]:
    """Step seconds of a Ray Train run from its per-epoch metrics; (seconds, True when measured per step).

    The first epoch is left out when there are more (start-up, first allocations), as the plain
    loop leaves out its first step. Without ``step_seconds`` (an older train loop) it falls back
    to epoch seconds / steps, which also counts batch waits and validation.
    """
    history = [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line.strip()]
    later = history[1:] or history
    if all(np.isfinite(h.get("step_seconds", float("nan"))) for h in later):
        return float(np.median([h["step_seconds"] for h in later])), True
    steps = later[-1]["step"] - (history[0]["step"] if len(history) > 1 else 0)
    return sum(h["seconds"] for h in later) / max(steps, 1), False


def bench_ddp(shards_dir: Path, config: Config, plan: Plan, work: Path) -> list[Row]:
    """Section 5: our Ray Train loop vs the plain loop, same model, batch, workers and steps."""
    from pipeline.train import run_train

    # whole epochs (each with its validation and checkpoint) until about plan.ddp_steps steps
    per_epoch = steps_per_epoch(shards_dir, config)
    if per_epoch < 1:
        raise RuntimeError(f"the bench's train split in {shards_dir} is too small for one step")
    epochs = max(2, -(-plan.ddp_steps // per_epoch))
    cfg = with_overrides(config, [f"train.epochs={epochs}", "train.steps_per_epoch=0", "train.model=music_gesture"])
    ray_step, ray_whole, plain_step, plain_whole, steps = [], [], [], [], []
    for r in range(plan.repeats):
        _say(f"DDP: Ray Train vs plain torch.distributed, repeat {r + 1}/{plan.repeats}")
        out = work / f"train-{r}"
        seconds, summary = _timed(lambda out=out: run_train(cfg, str(shards_dir), str(out), progress=False))
        step_s, exact = ray_step_seconds(Path(summary.run_dir) / "logs" / "metrics.jsonl")
        ray_step.append(step_s)
        ray_whole.append(seconds)
        shutil.rmtree(out)
        # the same number of steps as the Ray run really took (a small dataset can end an epoch early)
        steps.append(summary.steps)
        s, w = plain_ddp(shards_dir, cfg, summary.epochs, summary.steps // summary.epochs, work)
        plain_step.append(s)
        plain_whole.append(w)
    how = (
        "median over steps (the train loop's step_seconds, batch fetch excluded in both loops)"
        if exact
        else "the train loop logs no step_seconds: epoch seconds / steps (includes batch waits and validation)"
    )
    return [
        Row("ddp", "median step, Ray Train DDP", ray_step, "s", note=how),
        Row("ddp", "median step, plain torch DDP", plain_step, "s"),
        Row(
            "ddp",
            "per step: Ray Train steps/s ÷ plain steps/s",
            [p / q for p, q in zip(plain_step, ray_step)],
            "ratio",
            ">= 0.9",
        ),
        Row(
            "ddp",
            f"whole run ({'/'.join(str(n) for n in sorted(set(steps)))} steps), Ray Train",
            ray_whole,
            "s",
            note="includes worker start, datasets (decoded once), validation and a checkpoint each epoch",
        ),
        Row(
            "ddp",
            "whole run, plain torch DDP",
            plain_whole,
            "s",
            note="process start, data read, the same epochs and steps, each validated (same function) and checkpointed",
        ),
        Row("ddp", "whole run: plain / Ray Train", [p / q for p, q in zip(plain_whole, ray_whole)], "ratio", ">= 0.75"),
    ]


# --- 6: evaluation scaling ----------------------------------------------------------------------


def _evaluate_on(cpus: list[int], shards_dir: str, checkpoint: str, config_doc: dict) -> None:
    """Child process: pinned to ``cpus``, a fresh local Ray, separation + scoring; prints mixtures and seconds."""
    os.sched_setaffinity(0, set(cpus))  # Ray's raylet and workers are children: they inherit the pinning
    from pipeline.evaluate import run_scoring

    config = with_overrides(config_from_doc(config_doc), [f"evaluate.score_workers={len(cpus)}",
                                                           "evaluate.workers=1", "evaluate.examples=0"])  # fmt: skip
    _local_ray(max(4, len(cpus)))
    t0 = time.perf_counter()
    mixtures, _, _ = run_scoring(Path(shards_dir), [checkpoint], config.evaluate, progress=False)
    print(json.dumps({"mixtures": len(mixtures), "seconds": time.perf_counter() - t0}))


def bench_evaluate(shards_dir: Path, config: Config, plan: Plan, work: Path) -> list[Row]:
    """Section 6: mixtures/s of the evaluation pinned to 1 CPU vs 2 CPUs."""
    from pipeline.config import config_to_dict

    checkpoint = untrained_checkpoint(config, work / "checkpoint")
    available = sorted(os.sched_getaffinity(0))
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(plan.repeats):
        for n in (1, 2):
            _say(f"evaluation on {n} CPU(s), repeat {r + 1}/{plan.repeats}")
            code = ("import json, sys; from pipeline.bench import _evaluate_on; "
                    "_evaluate_on(*json.loads(sys.argv[1]))")  # fmt: skip
            arg = json.dumps([available[:n], str(shards_dir), str(checkpoint), config_to_dict(config)])
            proc = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                                  env=_child_env())  # fmt: skip
            if proc.returncode:
                raise RuntimeError(f"evaluation child failed: {proc.stderr.strip()[-800:]}")
            doc = json.loads(proc.stdout.strip().splitlines()[-1])
            rates[n].append(doc["mixtures"] / doc["seconds"])
    note = "" if len(available) >= 2 else "this machine has one CPU: both runs use it"
    return [
        Row("evaluate", "mixtures/s, 1 CPU", rates[1], "mixtures/s"),
        Row("evaluate", "mixtures/s, 2 CPUs", rates[2], "mixtures/s"),
        Row(
            "evaluate",
            "speed-up 2 vs 1 CPU",
            [b / a for a, b in zip(rates[1], rates[2])],
            "ratio",
            ">= 1.6",
            note
            or "separation + scoring (evaluate.run_scoring) in a fresh process pinned to its CPUs, with its own "
            "Ray (start-up and report writing not timed)",
        ),
    ]


def untrained_checkpoint(config: Config, folder: Path) -> Path:
    """A complete Music Gesture checkpoint at the config's sizes (speed does not depend on training)."""
    import torch

    from pipeline.config import config_to_dict
    from pipeline.models.separators import build_model
    from pipeline.train import model_config, save_checkpoint

    config = with_overrides(config, ["train.model=music_gesture"])
    mc = model_config(config.train)
    torch.manual_seed(0)
    net = build_model(mc)
    opt = torch.optim.AdamW(net.parameters())
    state = {"model_config": mc.to_dict(), "train_config": config_to_dict(config)["train"], "epoch": 0, "step": 0,
             "metrics": {}, "history": []}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder, net, opt, torch.optim.lr_scheduler.StepLR(opt, 1), state)


def _local_ray(num_cpus: int) -> None:
    """A fresh embedded Ray in this child process: never a cluster running on the machine (pinning must hold)."""
    import logging

    import ray

    for key, value in (("RAY_USAGE_STATS_ENABLED", "0"), ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),
                       ("RAY_AUTH_MODE", "disabled")):  # fmt: skip
        os.environ.setdefault(key, value)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, object_store_memory=256 * 1024**2,
             log_to_driver=False, logging_level=logging.WARNING)  # fmt: skip


def _child_env() -> dict[str, str]:
    """The environment of a measuring child process: this checkout importable, no Ray address to join."""
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return env | {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


# --- 7: memory ----------------------------------------------------------------------------------


def _rss_worker(video: str, config_doc: dict, out: str) -> None:
    """Child process: one preprocessing worker's work on one video (pose via mediapipe); prints peak RSS."""
    from pipeline.preprocess import build_item, estimate_item

    config = with_overrides(config_from_doc(config_doc), ["preprocess.pose_backend=mediapipe"])
    root = str(Path(video).parent)
    item = _items(Path(root))[0]
    row = estimate_item(item, root, config.preprocess, {})
    if row["error"]:
        raise SystemExit(f"{video}: {row['error']}")
    result = build_item(row, root, out, config.preprocess)
    if result["error"]:
        raise SystemExit(f"{video}: {result['error']}")
    print(json.dumps({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "clips": result["clips"]}))  # fmt: skip


def looped_video(source: Path, seconds: int, dest: Path) -> Path:
    """``source`` repeated (or cut) to ``seconds`` long, without re-encoding when possible."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t",
                        str(seconds), "-c", "copy", str(dest)], check=True)  # fmt: skip
    return dest


def bench_memory(config: Config, plan: Plan, work: Path) -> list[Row]:
    """Section 7: peak RSS of one worker on the real 10 s video vs the same looped to 60 s."""
    from pipeline.config import config_to_dict

    short = looped_video(RAGA_VIDEO, 10, work / "video-10s" / "raga.mp4")
    long = looped_video(RAGA_VIDEO, plan.long_video_s, work / f"video-{plan.long_video_s}s" / "raga.mp4")
    peaks: dict[Path, list[float]] = {short: [], long: []}
    for r in range(plan.repeats):
        for video in (short, long):
            _say(f"memory: one worker on {video.parent.name}, repeat {r + 1}/{plan.repeats}")
            out = work / f"rss-{r}"
            code = "import json, sys; from pipeline.bench import _rss_worker; _rss_worker(*json.loads(sys.argv[1]))"
            arg = json.dumps([str(video), config_to_dict(config), str(out)])
            proc = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                                  env=_child_env())  # fmt: skip
            if proc.returncode:
                raise RuntimeError(f"memory child failed: {proc.stderr.strip()[-800:]}")
            peaks[video].append(json.loads(proc.stdout.strip().splitlines()[-1])["max_rss_mb"])
            shutil.rmtree(out, ignore_errors=True)
    return [
        Row("memory", "peak RSS, 10 s video", peaks[short], "MB"),
        Row("memory", f"peak RSS, {plan.long_video_s} s video", peaks[long], "MB"),
        Row(
            "memory",
            f"{plan.long_video_s} s / 10 s",
            [b / a for a, b in zip(peaks[short], peaks[long])],
            "ratio",
            "<= 1.1",
            "decode + MediaPipe pose + tracking + clips + shard of the real raga video, looped",
        ),
    ]


# --- 8: quality ---------------------------------------------------------------------------------


def quality_section(benchmarks_md: Path) -> str:
    """The separation-quality table as BENCHMARKS.md records it (written by scripts/quality_bar.py)."""
    if not benchmarks_md.exists():
        return "(no quality table yet: run the main job, then `scripts/quality_bar.py RUN_DIR`)"
    text = benchmarks_md.read_text()
    if QUALITY_START not in text:
        return "(no quality table yet: run the main job, then `scripts/quality_bar.py RUN_DIR`)"
    return text.split(QUALITY_START, 1)[1].split(QUALITY_END, 1)[0].strip()


# --- the driver ---------------------------------------------------------------------------------


def machine() -> str:
    import torch

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    import ray

    return (f"{cpu or platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores, {mem:.0f} GiB RAM, {gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}")  # fmt: skip


@dataclass
class BenchResult:
    rows: list[Row]
    command: str
    machine: str
    seconds: float
    quality: str

    def markdown(self) -> str:
        notes = [f"- ({SECTIONS.index(r.section) + 1}) {r.measure}: {r.note}" for r in self.rows if r.note]
        return "\n".join([
            f"Command: `{self.command}` ({self.seconds / 60:.0f} min). Machine: {self.machine}. "
            f"Measured {datetime.now(timezone.utc):%Y-%m-%d}; min / median / max over repeats; "
            "`met` compares the median with the target.",
            "",
            table(self.rows),
            "",
            *notes,
            "",
            "Separation quality (section 8), as recorded by the evaluation's quality bar:",
            "",
            self.quality,
        ])  # fmt: skip


def write_markdown(path: Path, result: BenchResult) -> None:
    """Replace (or append) the bench section of ``path``, leaving everything else as it is."""
    block = f"{BENCH_START}\n{result.markdown()}\n{BENCH_END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BENCH_START in text and BENCH_END in text:
        head, rest = text.split(BENCH_START, 1)
        text = head + block + rest.split(BENCH_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Stages against their floors (`python -m pipeline bench`)\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run_bench(out: Path, quick: bool = False, repeats: int | None = None, benchmarks_md: Path | None = None,
              only: list[str] | None = None, command: str = "", videos: Path | None = None) -> BenchResult:  # fmt: skip
    """Run the sections (all, or ``only``), print the table, write ``out/bench.json`` and BENCHMARKS.md.

    ``videos``: an existing generated benchmark to read (never written to) instead of generating one.
    """
    from pipeline.raysession import init_ray

    start = time.perf_counter()
    plan = Plan.make(quick, repeats)
    sections = only or list(SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown bench section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    config = bench_config(plan)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=out))
    rows: list[Row] = []
    try:
        needs_videos = {"preprocess", "layout", "loader", "ddp", "evaluate"} & set(sections)
        if videos is not None and not (videos / "benchmark.json").exists():
            raise ValueError(f"{videos}: not a generated benchmark (no benchmark.json); see `python -m pipeline synth`")
        root = (videos or prepare_benchmark(config, out / "videos")) if needs_videos else None
        init_ray()
        shards_dir = None
        if {"loader", "ddp", "evaluate"} & set(sections):
            from pipeline.preprocess import run_preprocess

            _say("preprocessing the bench videos once for the loader, DDP and evaluation sections")
            shards_dir = Path(run_preprocess(config, str(root), str(out / "shards"), progress=False).version_dir)
        if {"preprocess", "layout"} & set(sections):
            prep_rows, _ = bench_preprocess(root, config, work, plan)
            rows += [r for r in prep_rows if r.section in sections]
        if "pose" in sections:
            rows += bench_pose(config, plan)
        if "loader" in sections:
            rows += bench_loader(shards_dir, config, plan)
        if "ddp" in sections:
            rows += bench_ddp(shards_dir, config, plan, work)
        if "evaluate" in sections:
            rows += bench_evaluate(shards_dir, config, plan, work)
        if "memory" in sections:
            rows += bench_memory(config, plan, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = benchmarks_md or Path("BENCHMARKS.md")
    result = BenchResult(rows, command or f"python -m pipeline bench{' --quick' if quick else ''}", machine(),
                         time.perf_counter() - start, quality_section(md))  # fmt: skip
    (out / "bench.json").write_text(json.dumps({"command": result.command, "machine": result.machine,
                                                "seconds": result.seconds, "rows": [r.to_dict() for r in rows]},
                                               indent=2))  # fmt: skip
    if benchmarks_md is not None or not quick:
        write_markdown(md, result)
    return result
