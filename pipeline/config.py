"""Configuration: one frozen dataclass per stage, filled from YAML, overridable from the CLI.

Values come in layers, each overriding the one before:

1. ``pipeline/configs/default.yaml`` (every key, with its default; the reference),
2. the preset ``pipeline/configs/presets/<name>.yaml`` (``tiny``, ``demo``, ``full``),
3. user files given with ``--config F`` (any subset of keys),
4. ``--set section.key=value`` pairs (the value is parsed as YAML).

Every layer is type-checked against the dataclasses below; an unknown section or
key is a :class:`~pipeline.errors.UserError` that names it. There is no config
framework: ``dataclasses`` + ``yaml`` + the small checker in this file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"
PRESETS = ("tiny", "demo", "full")
RESOLVED_NAME = "config.yaml"


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """The synthetic gesture→sound benchmark (``python -m pipeline synth``)."""

    seed: int
    solos: int  # pieces with one player
    duets: int
    trios: int
    quartets: int
    extra_train_solos: int  # more pieces, all in the train split; the others and their splits stay as they were
    extra_train_duets: int
    homo_duet_fraction: float  # share of duets with the same instrument twice
    corpus_fraction: float  # share of pieces taken from the music21 corpus (rest: generated)
    min_duration_s: float
    max_duration_s: float
    sample_rate: int
    fps: int
    width: int
    height: int
    soundfont: str  # path to a GM .sf2, or "auto" to look in the usual system places
    fluidsynth_gain: float
    video_crf: int  # x264 quality (lower is better and larger)
    jitter_px: float  # std of per-joint keypoint noise, in pixels
    missing_rate: float  # probability that a joint is missing (confidence 0) in a frame
    shake_px: float  # amplitude of camera shake, in pixels
    max_lag_frames: int  # gesture-sound lag is drawn per player from [-max, max]
    val_fraction: float
    test_fraction: float
    workers: int  # 0: render in this process; N > 0: N pieces at a time as Ray tasks


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Videos → keypoints + spectrograms in Parquet shards (``python -m pipeline preprocess``)."""

    fps: int  # video frames per second kept (8, as in the papers)
    clip_hop_s: float  # start of one clip to the next; clips are 65535 samples (5.94 s) long
    pose_backend: str  # auto | openpose | mediapipe | mmpose (auto: OpenPose JSON if present, else mediapipe)
    pose_workers: int  # actors in the pose pool
    pose_gpus: float  # GPUs per pose actor (0 on a laptop)
    pose_cpus: float  # CPUs per pose actor
    decode_width: int  # frames are decoded at this width (aspect kept) for pixel-based backends
    crop_size: int  # appearance crop side, pixels
    min_presence: float  # a person must be found in this share of a video's frames
    silence_db: float  # a stem whose peak is below this (dBFS) is silent: an error, not a source
    mmpose_config: str  # whole-body model config (a file, or a name in mmpose's config tree)
    mmpose_checkpoint: str  # its weights: a path or URL; "" for random weights (tests only)
    detector_config: str  # person detector config for mmpose (mmdet), or "" to use whole frames
    detector_checkpoint: str


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """DDP training on Ray Train (``python -m pipeline train``)."""

    model: str  # music_gesture | sound_of_pixels | audio_only
    objective: str  # mix (mix-and-separate from single sources) | supervised (real mixtures + stems)
    sources: tuple[int, ...]  # mix-and-separate: N is drawn from these per step
    pairing: str  # any | hetero | homo | mixed
    mask: str  # binary (BCE weighted by log1p |mix|) | ratio (L1)
    epochs: int
    batch_size: int  # mixtures per worker per step
    steps_per_epoch: int  # 0: one pass over the worker's data
    shuffle: bool  # shuffle each worker's rows every epoch (off: the same batches in the same order)
    materialize_gb: float  # decode a split once into Ray's object store when its shards are under this (0: stream)
    lr: float
    weight_decay: float
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float  # 0: CPU and gloo; >0: CUDA, NCCL and mixed precision
    unet_depth: int
    unet_base: int
    unet_time_levels: int  # levels that halve time (0: all, the square U-Net); fewer keep time at the bottleneck
    gcn_channels: tuple[int, ...]
    gcn_strides: tuple[int, ...]
    input_scale: int  # >1: models see the spectrogram average-pooled by this factor (cheaper; masks upsampled)
    motion_aux: float  # music_gesture: weight of the auxiliary loss (motion predicts its own sound's envelope)
    motion_bands: int  # frequency bands of that envelope
    motion_warmup_epochs: int  # music_gesture: epochs first training the motion branch alone on that loss
    warmup_epochs: int  # the learning rate rises linearly over the first epochs of separation, then decays
    ema_decay: float  # >0: validate, evaluate and separate with a moving average of the weights (0: the last ones)
    precision: Literal["auto", "fp32", "bf16", "fp16"]  # the arithmetic of training steps (train.step_precision)
    fusion_time_bias: bool  # music_gesture: attention prefers the motion at the same time (not in the paper)
    mask_prior: bool  # music_gesture: motion adds a per-time, per-frequency prior to the mask logits (not in the paper)
    visual_input: bool  # music_gesture: the motion's predicted envelope map is a second U-Net input (not in the paper)
    visual_others: bool  # music_gesture, with visual_input: the other persons' mean envelope map is a third input
    level_fit: bool  # music_gesture, with visual_input: envelopes scaled to the mixture give shares (input, prior)
    instrument_context: bool  # music_gesture: the GCN's context is the crop's instrument posterior (a classifier)
    competitive_masks: bool  # visual models: persons compete for each bin (masks sum to 1; not in the papers)
    gcn_joint_embedding: int  # >0: a learned per-joint vector of this size joins the GCN's input
    gcn_partitions: str  # uniform (one weight per layer) or spatial (ST-GCN's three neighbour subsets)
    gcn_bones: bool  # each joint's offset from its parent joins the GCN's input
    gcn_readout: str  # mean over joints, or joints (a linear map of every joint's features)
    appearance_dim: int
    appearance_weights: str  # optional torchvision ResNet-18 state dict (path)
    crop_size: int  # crops are resized to this for the appearance encoder
    val_mixtures: int  # held-out mixtures scored each epoch (quick SDR)
    checkpoints_to_keep: int
    max_failures: int  # worker or node failures survived by resuming from the last checkpoint
    seed: int
    fail_after_epoch: int  # testing fault tolerance: fail once after this epoch's checkpoint (-1: never)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Distributed evaluation with mir_eval (``python -m pipeline evaluate``)."""

    split: str  # the shard split scored (test)
    sources: tuple[int, ...]  # mix-and-separate mixtures of these sizes (real mixtures are always scored)
    mixtures_per_group: int  # mixtures drawn per (size, hetero/homo)
    seed: int  # the list of mixtures depends only on this and the shards
    workers: int  # inference actors (one per GPU on a cluster)
    gpus_per_worker: float
    batch_size: int  # mixtures per inference batch
    score_workers: int  # parallel CPU tasks running bss_eval (0: as many as Ray has CPUs)
    silence_db: float  # a reference quieter than this (RMS, dBFS) is excluded and counted
    examples: int  # mixtures written as wavs and plotted as spectrograms


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole resolved configuration; one attribute per stage."""

    synth: SynthConfig
    preprocess: PreprocessConfig
    train: TrainConfig
    evaluate: EvaluateConfig


def load_config(
    preset: str | None = None,
    files: typing.Sequence[str | Path] = (),
    overrides: typing.Sequence[str] = (),
) -> Config:
    """Resolve the configuration from the default file, a preset, user files and ``--set`` pairs."""
    data = _read_yaml(CONFIG_DIR / "default.yaml")
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        _merge(data, _read_yaml(CONFIG_DIR / "presets" / f"{preset}.yaml"), f"preset {preset}")
    for f in files:
        _merge(data, _read_yaml(Path(f)), str(f))
    for item in overrides:
        key, value = _parse_override(item)
        _merge(data, _nest(key, value), f"--set {item}")
    return _build(Config, data, "")


def with_overrides(config: Config, overrides: typing.Sequence[str]) -> Config:
    """Return a copy of ``config`` with ``section.key=value`` overrides applied (type-checked)."""
    data = config_to_dict(config)
    for item in overrides:
        key, value = _parse_override(item)
        _merge(data, _nest(key, value), f"--set {item}")
    return _build(Config, data, "")


def config_from_dict(data: dict[str, Any]) -> Config:
    """The inverse of :func:`config_to_dict` (type-checked), e.g. to hand a config to a child process."""
    return _build(Config, data, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists, as in YAML)."""
    return _plain(dataclasses.asdict(config))


def setting_changes(
    resolved: Path, config: Config, sections: tuple[str, ...] | None = None
) -> dict[str, tuple[Any, Any]]:
    """``"section.key": (then, now)`` for each setting of ``config`` that differs from the resolved
    config written earlier at ``resolved``, over ``sections`` (default: every section that file has).

    A key the file lacks (added by a later version) counts at its default, so an older folder made
    with the same settings shows no change; a key only the file has (since removed) is a change.
    """
    written = yaml.safe_load(resolved.read_text()) or {}
    defaults, now = config_to_dict(load_config(None)), config_to_dict(config)
    changes = {}
    for section in sections or [name for name in now if name in written]:
        was = {**defaults[section], **(written.get(section) or {})}
        for key in sorted({*now[section], *was}):
            if was.get(key) != now[section].get(key):
                changes[f"{section}.{key}"] = (was.get(key), now[section].get(key))
    return changes


def write_resolved(config: Config, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the resolved config as ``folder/config.yaml`` (written to a temp file, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = config_to_dict(config)
    if extra:
        doc = {**extra, **doc}
    path = folder / RESOLVED_NAME
    tmp = folder / f".{RESOLVED_NAME}.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)
    return path


# --- internals -----------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or "." not in key:
        raise UserError(f"--set expects section.key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _merge(base: dict[str, Any], update: dict[str, Any], origin: str) -> None:
    """Merge ``update`` into ``base`` in place; keys must already exist in ``base``."""
    for k, v in update.items():
        if k not in base:
            raise UserError(f"unknown config key {k!r} (from {origin}); known: {', '.join(base)}")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise UserError(f"config key {k!r} (from {origin}) is a section; give it a mapping")
            _merge(base[k], v, origin)
        else:
            base[k] = v


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise UserError(f"unknown config key {prefix}{k!r}; known: {', '.join(names)}")
    missing = [n for n in names if n not in data]
    if missing:
        raise UserError(f"config is missing {', '.join(prefix + m for m in missing)}")
    return cls(**{n: _coerce(data[n], hints[n], f"{prefix}{n}") for n in names})


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UserError(f"{key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise UserError(f"{key} must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp!r} of {key} is not supported")  # a bug in this file


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
