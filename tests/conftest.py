"""Shared fixtures: the tiny benchmark (generated once per session) and one Ray per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Config, load_config

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data (real material that nobody on this project made)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"real test material missing: {path} (expected ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    return load_config("tiny")


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory, tiny_config: Config) -> Path:
    """The `tiny` benchmark, generated once for the whole test session."""
    from pipeline.synth.generate import generate_benchmark

    out = tmp_path_factory.mktemp("tiny") / "bench"
    generate_benchmark(tiny_config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def ray_local():
    """One embedded local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    from pipeline.raysession import init_ray

    init_ray(num_cpus=4)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_shards(tiny_bench: Path, tiny_config: Config, ray_local, tmp_path_factory: pytest.TempPathFactory):
    """The tiny benchmark preprocessed through Ray Data (OpenPose JSON backend); (summary, folder)."""
    from pipeline.preprocess import run_preprocess

    out = tmp_path_factory.mktemp("shards")
    summary = run_preprocess(tiny_config, str(tiny_bench), str(out))
    return summary, Path(summary.version_dir)


def make_checkpoint(config: Config, model: str, folder: Path, seed: int = 0) -> Path:
    """An untrained but complete checkpoint of ``model`` at the config's sizes (no training run needed)."""
    import torch

    from pipeline.config import config_to_dict, with_overrides
    from pipeline.models.separators import build_model
    from pipeline.train import model_config, save_checkpoint

    config = with_overrides(config, [f"train.model={model}"])
    mc = model_config(config.train)
    torch.manual_seed(seed)
    net = build_model(mc)
    opt = torch.optim.AdamW(net.parameters())
    state = {"model_config": mc.to_dict(), "train_config": config_to_dict(config)["train"], "epoch": 0, "step": 0,
             "metrics": {}, "history": []}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder, net, opt, torch.optim.lr_scheduler.StepLR(opt, 1), state)


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_config: Config, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Untrained tiny music_gesture and audio_only checkpoints."""
    root = tmp_path_factory.mktemp("checkpoints")
    return [make_checkpoint(tiny_config, m, root / m) for m in ("music_gesture", "audio_only")]
