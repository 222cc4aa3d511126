"""Preprocessing on Ray Data: videos → keypoints + spectrograms in Parquet shards.

The Ray Data plan, one row per video until the shards are written::

    catalog (driver) → from_items → map_batches(PoseEstimator)   actor pool: decode, pose, track
                                  → map(build_item)              CPU tasks: audio, clips, write shard
                                  → take_all (driver)            manifest, errors, _dataset.json

Decoding happens inside the pose actors, so raw frames never cross the object
store: only keypoints and a few JPEG key frames leave an actor. Each video
becomes one shard file per split, written whole or not at all.

Output (``DST`` may be a local path or an object-store URI)::

    DST/v1-<config hash>/split=train/<item>.parquet ...   the shards (pipeline.shards)
    DST/v1-<config hash>/_manifest.json                   what was processed, keyed by content
    DST/v1-<config hash>/_dataset.json                    schema version, config, code version, counts
    DST/v1-<config hash>/errors/<run>.parquet             path, stage, message per problem

A changed configuration writes a new version folder beside the old one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from pipeline import __version__, shards, storage
from pipeline.audio import SAMPLE_RATE
from pipeline.clips import clip_starts, make_clips
from pipeline.config import Config, PreprocessConfig, config_to_dict
from pipeline.errors import UserError
from pipeline.pose.backends import OpenPoseJSON, PoseBackend
from pipeline.pose.tracking import select_players, track
from pipeline.report import key_value_table
from pipeline.sources import Item, Problem, catalog
from pipeline.video import frame_indices, iter_frames, probe_video, read_audio

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
DATASET = "_dataset.json"
ERRORS = "errors"


@dataclass(frozen=True)
class Summary:
    """What a preprocessing run did."""

    version_dir: str
    videos: int  # processed in this run
    skipped: int  # unchanged since an earlier run
    clips: int
    errors: int
    seconds: float

    def table(self) -> str:
        rate = self.clips / self.seconds if self.seconds > 0 else 0.0
        rows = [
            ("shards", self.version_dir),
            ("videos processed", str(self.videos)),
            ("videos unchanged", str(self.skipped)),
            ("clips written", str(self.clips)),
            ("errors", str(self.errors)),
            ("time", f"{self.seconds:.0f} s ({rate:.2f} clips/s)"),
        ]
        return key_value_table(rows)


def version_name(cfg: PreprocessConfig) -> str:
    """Folder name of a dataset version: schema version + hash of the preprocessing config."""
    blob = json.dumps({"schema": shards.SCHEMA_VERSION, **config_to_dict(cfg)}, sort_keys=True)
    return f"v{shards.SCHEMA_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


# --- stage 1: decode + pose + tracking (an actor) --------------------------------------------


def make_backend(cfg: PreprocessConfig, item: Item, root: str, models: dict[str, PoseBackend]) -> PoseBackend:
    """The pose backend for one video, by ``preprocess.pose_backend``.

    Model backends (mediapipe, mmpose) are built once and kept in ``models`` (one
    per actor); the OpenPose reader belongs to one video's JSON folder and is cheap.
    """
    name = cfg.pose_backend
    if name == "auto":
        name = "openpose" if item.keypoints else "mediapipe"
    if name == "openpose":
        if not item.keypoints:
            raise ValueError("pose_backend is openpose but this video has no OpenPose JSON folder")
        return OpenPoseJSON(storage.join(root, item.keypoints))
    if name not in models:
        if name == "mediapipe":
            from pipeline.pose.mediapipe_backend import MediaPipeBackend

            models[name] = MediaPipeBackend()
        elif name == "mmpose":
            from pipeline.pose.mmpose_backend import MMPoseBackend

            models[name] = MMPoseBackend(cfg)
        else:
            raise ValueError(f"unknown pose backend {name!r} (auto, openpose, mediapipe, mmpose)")
    return models[name]


def estimate_item(item: Item, root: str, cfg: PreprocessConfig, backends: dict[str, PoseBackend]) -> dict[str, Any]:
    """Persons of one video, tracked over the whole video, and the key frames for crops.

    Returns the stage's row: the item, ``persons`` (``.npy`` bytes of
    ``(K, frames, 61, 3)``), ``keyframes`` (JPEG per clip), the frame size, and
    ``error`` / ``stage`` when something went wrong.
    """
    row = {**item.to_row(), "persons": b"", "keyframes": [], "frame_width": 0, "frame_height": 0}
    stage = "decode"
    try:
        with storage.local_copy(storage.join(root, item.video)) as local:
            info = probe_video(local)
            idx = frame_indices(info, cfg.fps)
            stage = "pose"
            backend = make_backend(cfg, item, root, backends)
            if not backend.needs_pixels:
                detections = backend.detect_indices(idx)
            else:
                detections = []
                for _, frames in iter_frames(local, cfg.fps, _decode_size(info, cfg)):
                    detections += backend.detect(frames, (info.width / frames.shape[2], info.height / frames.shape[1]))
            stage = "tracking"
            persons = track(detections, cfg.min_presence)
            if persons.shape[0] == 0:
                raise ValueError("no person found")
            stage = "decode"
            starts = clip_starts(info.duration, cfg.clip_hop_s)
            keyframes = _keyframes(local, info, starts, cfg)
    except (ValueError, OSError) as e:
        return row | {"error": str(e), "stage": stage}
    buf = io.BytesIO()
    np.save(buf, persons.astype(np.float32))
    return row | {
        "persons": buf.getvalue(),
        "keyframes": keyframes,
        "frame_width": info.width,
        "frame_height": info.height,
        "error": "",
        "stage": "",
    }


def _decode_size(info, cfg: PreprocessConfig) -> tuple[int, int]:
    width = min(cfg.decode_width, info.width)
    height = int(round(info.height * width / info.width / 2)) * 2
    return width, height


def _keyframes(path, info, starts: np.ndarray, cfg: PreprocessConfig) -> list[bytes]:
    """The decoded frame at each clip's middle, as JPEG (what the crops are cut from)."""
    import decord

    if len(starts) == 0:
        return []
    width, height = _decode_size(info, cfg)
    reader = decord.VideoReader(str(path), width=width, height=height)
    mid = starts + (shards.CLIP_VIDEO_FRAMES // 2) / cfg.fps
    idx = np.minimum(np.round(mid * info.fps).astype(int), info.frames - 1)
    frames = reader.get_batch(idx.tolist()).asnumpy()
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
            for f in frames]  # fmt: skip


class PoseEstimator:
    """Ray Data actor: decode + pose + tracking for a batch of videos; models load once per actor."""

    def __init__(self, root: str, cfg: PreprocessConfig) -> None:
        self.root, self.cfg = root, cfg
        self.backends: dict[str, PoseBackend] = {}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [_row_at(batch, i) for i in range(len(batch["item_id"]))]
        out = [estimate_item(Item.from_row(r), self.root, self.cfg, self.backends) for r in rows]
        return {k: [o[k] for o in out] for k in out[0]}


def _row_at(batch: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    return {k: (v[i].tolist() if isinstance(v[i], np.ndarray) else v[i]) for k, v in batch.items()}


# --- stage 2: audio, clips, shard (a CPU task per video) ------------------------------------


def build_item(row: dict[str, Any], root: str, out: str, cfg: PreprocessConfig) -> dict[str, Any]:
    """Cut one video's clips and write its shard; returns what happened (never raises)."""
    item = Item.from_row(row)
    result = {"item_id": item.item_id, "key": item.key, "split": item.split, "path": item.video, "file": "",
              "clips": 0, "bytes": 0, "error": row.get("error", ""), "stage": row.get("stage", "")}  # fmt: skip
    if result["error"]:
        return result
    stage = "audio"
    try:
        persons = np.load(io.BytesIO(row["persons"]))
        mix_path = item.mix or item.video
        with storage.local_copy(storage.join(root, mix_path)) as local:
            mix = read_audio(local, SAMPLE_RATE)
        stems = _read_stems(item, root, cfg) if item.stems else None
        stage = "tracking"
        expected = len(item.stems) or len(item.instruments) or min(persons.shape[0], shards.MAX_SOURCES)
        persons = select_players(persons, expected)
        stage = "clips"
        if len(clip_starts(min(mix.size / SAMPLE_RATE, persons.shape[1] / cfg.fps), cfg.clip_hop_s)) == 0:
            raise ValueError(f"shorter than one clip ({mix.size / SAMPLE_RATE:.2f} s < {shards.CLIP_SECONDS:.2f} s)")
        keyframes = [cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                     for b in row["keyframes"]]  # fmt: skip
        rel = f"split={item.split}/{item.item_id}.parquet"
        writer = shards.ShardWriter(storage.join(out, rel))
        try:
            batch = []
            clips = make_clips(item, persons, mix, stems, keyframes, (row["frame_width"], row["frame_height"]),
                               cfg.fps, cfg.clip_hop_s, cfg.crop_size)  # fmt: skip
            for clip in clips:
                batch.append(clip)
                if len(batch) == 16:
                    writer.write(batch)
                    batch = []
            writer.write(batch)
        except BaseException:
            writer.abort()
            raise
        size = writer.close()
        return result | {"file": rel, "clips": writer.rows, "bytes": size}
    except (ValueError, OSError) as e:
        return result | {"error": str(e), "stage": stage}


def _read_stems(item: Item, root: str, cfg: PreprocessConfig) -> np.ndarray:
    waves = []
    for rel in item.stems:
        with storage.local_copy(storage.join(root, rel)) as local:
            wave = read_audio(local, SAMPLE_RATE)
        if np.abs(wave).max(initial=0.0) < 10 ** (cfg.silence_db / 20):
            raise ValueError(f"stem {rel} is silent (peak below {cfg.silence_db:g} dBFS)")
        waves.append(wave)
    n = min(w.size for w in waves)
    return np.stack([w[:n] for w in waves])


# --- the driver --------------------------------------------------------------------------------


def run_preprocess(config: Config, source: str, output: str, progress: bool = True) -> Summary:
    """Preprocess every new or changed video under ``source`` into shards under ``output``.

    ``progress`` shows Ray Data's progress bars (or, without a terminal, its progress log).
    """
    import ray
    from ray.data import ActorPoolStrategy

    from pipeline.raysession import init_ray

    cfg = config.preprocess
    start = time.perf_counter()
    try:
        cat = catalog(source)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise UserError(str(e)) from None
    vdir = storage.join(output, version_name(cfg))
    manifest = _read_json(storage.join(vdir, MANIFEST), {"items": {}})
    done = manifest["items"]
    todo = [i for i in cat.items if done.get(i.item_id, {}).get("key") != i.key]
    log.info("%s layout: %d videos, %d new or changed, %d problems", cat.kind, len(cat.items), len(todo),
             len(cat.problems))  # fmt: skip
    new_problems = [p for p in cat.problems if p.path not in manifest.get("problems", [])]
    if not todo and not new_problems:
        return Summary(vdir, 0, len(cat.items), 0, 0, time.perf_counter() - start)
    results = []
    if todo:
        init_ray()
        ray.data.DataContext.get_current().enable_progress_bars = progress
        if not progress:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        ds = ray.data.from_items([i.to_row() for i in todo], override_num_blocks=len(todo))
        ds = ds.map_batches(
            PoseEstimator,
            fn_constructor_kwargs={"root": source, "cfg": cfg},
            batch_size=1,
            compute=ActorPoolStrategy(size=cfg.pose_workers),
            num_gpus=cfg.pose_gpus,
            num_cpus=cfg.pose_cpus,
        )
        ds = ds.map(build_item, fn_kwargs={"root": source, "out": vdir, "cfg": cfg})
        results = ds.take_all()
    problems = list(new_problems) + [Problem(r["path"], r["stage"], r["error"]) for r in results if r["error"]]
    for r in results:
        old = done.get(r["item_id"], {}).get("file")
        if old and old != r["file"]:
            _remove(storage.join(vdir, old))  # the same video's earlier shard, now in another split
        done[r["item_id"]] = {k: r[k] for k in ("key", "split", "file", "clips", "bytes", "error")}
    manifest["problems"] = sorted({*manifest.get("problems", []), *(p.path for p in cat.problems)})
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    if problems:
        _write_errors(storage.join(vdir, f"{ERRORS}/{run_id}.parquet"), problems)
    _write_json(storage.join(vdir, MANIFEST), manifest)
    _write_json(storage.join(vdir, DATASET), _dataset_doc(config, cat.kind, done))
    clips = sum(r["clips"] for r in results)
    for p in problems:
        log.warning("skipped %s (%s): %s", p.path, p.stage, p.message)
    if todo and clips == 0 and all(r["error"] for r in results):
        log.error("nothing could be processed")
    return Summary(vdir, len(todo), len(cat.items) - len(todo), clips, len(problems), time.perf_counter() - start)


def _dataset_doc(config: Config, kind: str, done: dict) -> dict:
    ok = {k: v for k, v in done.items() if not v["error"]}
    splits: dict[str, int] = {}
    for v in ok.values():
        splits[v["split"]] = splits.get(v["split"], 0) + v["clips"]
    return {
        "schema_version": shards.SCHEMA_VERSION,
        "code_version": __version__,
        "layout": kind,
        "config": config_to_dict(config.preprocess),
        "counts": {
            "videos": len(ok),
            "clips": sum(v["clips"] for v in ok.values()),
            "errors": len(done) - len(ok),
            "clips_per_split": splits,
        },  # fmt: skip
        "columns": {c.name: {"shape": c.shape, "dtype": c.dtype, "doc": c.doc} for c in shards.COLUMNS},
    }


def _read_json(uri: str, default: dict) -> dict:
    try:
        return json.loads(storage.read_text(uri))
    except (FileNotFoundError, OSError):
        return default


def _write_json(uri: str, doc: dict) -> None:
    storage.write_bytes(uri, (json.dumps(doc, indent=1, default=list) + "\n").encode())


def _write_errors(uri: str, problems: list[Problem]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "path": [p.path for p in problems],
        "stage": [p.stage for p in problems],
        "message": [p.message for p in problems],
    })  # fmt: skip
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    storage.write_bytes(uri, buf.getvalue().to_pybytes())


def _remove(uri: str) -> None:
    fs, path = storage.resolve(uri)
    try:
        fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass
