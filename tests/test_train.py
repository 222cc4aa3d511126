"""DDP training on Ray Train with two CPU workers: learning, disjoint data, synced weights, resumption."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from pipeline.config import load_config
from pipeline.train import CHECKPOINT_FILE, find_version, load_checkpoint, model_from_checkpoint, run_train

FAST = ["train.steps_per_epoch=3", "train.batch_size=2", "train.lr=0.003", "train.sources=[2]"]


@pytest.fixture(scope="module")
def ddp_run(tiny_shards, tmp_path_factory):
    """Two workers, six epochs of one step on the same batch (it must be able to fit it), audited."""
    _, folder = tiny_shards
    out = tmp_path_factory.mktemp("train")
    fit = ["train.epochs=6", "train.workers=2", "train.steps_per_epoch=1", "train.shuffle=false"]
    cfg = load_config("tiny", overrides=[*FAST, *fit])
    summary = run_train(cfg, str(folder), str(out), audit=True, progress=False)
    return summary, out / "music_gesture"


def test_ddp_learns_and_writes_checkpoints_and_logs(ddp_run):
    summary, run = ddp_run
    assert summary.epochs == 6 and summary.steps == 6
    history = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(6))
    # it learns: the loss on one fixed batch (same sources, same mixing) goes down epoch after epoch.
    # Adam's first step is its largest and can overshoot, so the trend is read from epoch 0 on.
    probe = [h["probe_loss"] for h in history]
    assert probe[-1] < 0.99 * probe[0]
    assert sum(b < a for a, b in zip(probe, probe[1:])) >= 4
    # the lr column is the rate each epoch trained at: the configured rate first, then the cosine's fall
    lr = [h["lr"] for h in history]
    assert lr[0] == pytest.approx(load_config("tiny", overrides=FAST).train.lr) and lr[-1] > 0
    assert all(b < a for a, b in zip(lr, lr[1:]))
    header = (run / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["epoch", "step", "loss", "val_sdr", "lr", "seconds"]
    assert {"step_seconds", "probe_loss_start", "probe_loss", "val_sdr_floor"} <= set(header)  # every column
    # the tiny benchmark's val split forms no duet: both numbers say so (NaN) rather than 0
    assert all(math.isnan(h["val_sdr_floor"]) == math.isnan(h["val_sdr"]) for h in history)
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    doc = torch.load(Path(summary.checkpoint), map_location="cpu", weights_only=True)
    assert doc["model_name"] == "music_gesture" and doc["epoch"] == 5 and doc["step"] == 6
    assert doc["model_config"]["unet"]["depth"] == 5 and "optimizer" in doc and "scheduler" in doc
    assert len([p for p in run.glob("checkpoint_*") if p.is_dir()]) == 2  # train.checkpoints_to_keep
    model, _ = model_from_checkpoint(summary.checkpoint)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_workers_saw_disjoint_data_and_kept_identical_weights(ddp_run):
    _, run = ddp_run
    for epoch in range(6):
        a = json.loads((run / "logs" / "audit" / f"epoch{epoch}-rank0.json").read_text())
        b = json.loads((run / "logs" / "audit" / f"epoch{epoch}-rank1.json").read_text())
        assert a["seen"] and b["seen"] and not set(a["seen"]) & set(b["seen"])
        assert a["weights"] == b["weights"]  # gradients were all-reduced: replicas stayed equal


def test_resume_a_new_run_from_a_checkpoint(ddp_run, tiny_shards, tmp_path):
    summary, _ = ddp_run
    cfg = load_config("tiny", overrides=[*FAST, "train.epochs=7", "train.workers=1"])
    resumed = run_train(cfg, str(tiny_shards[1]), str(tmp_path), resume=summary.checkpoint, progress=False)
    assert resumed.epochs == 7 and resumed.steps == 6 + 3  # one more epoch on top of the given checkpoint
    events = (tmp_path / "music_gesture" / "logs" / "events.jsonl").read_text()
    assert '"after_epoch": 5' in events


def test_a_failed_worker_resumes_from_the_last_checkpoint(tiny_shards, tmp_path):
    cfg = load_config("tiny", overrides=[*FAST, "train.epochs=2", "train.workers=2", "train.fail_after_epoch=0"])
    summary = run_train(cfg, str(tiny_shards[1]), str(tmp_path), progress=False)
    assert summary.epochs == 2 and summary.steps == 6  # same as an uninterrupted run, not 9
    events = [
        json.loads(line) for line in (tmp_path / "music_gesture" / "logs" / "events.jsonl").read_text().splitlines()
    ]
    assert [e["after_epoch"] for e in events if e["event"] == "resumed"] == [0]


@pytest.mark.parametrize("model", ["sound_of_pixels", "audio_only"])
def test_baselines_train_through_the_same_trainer(model, tiny_shards, tmp_path):
    cfg = load_config("tiny", overrides=[*FAST, "train.epochs=1", "train.workers=1", "train.steps_per_epoch=1",
                                         f"train.model={model}"])  # fmt: skip
    summary = run_train(cfg, str(tiny_shards[1]), str(tmp_path), progress=False)
    doc = load_checkpoint(Path(summary.checkpoint).parent)
    assert doc["model_name"] == model and doc["step"] == 1
    assert Path(summary.checkpoint).name == CHECKPOINT_FILE


def test_supervised_training_on_real_mixtures(tiny_shards, tmp_path):
    """URMP-style: the real mixture and each player's real stem, no mixing of solos."""
    cfg = load_config("tiny", overrides=[*FAST, "train.objective=supervised", "train.epochs=1", "train.workers=1",
                                         "train.steps_per_epoch=1", "train.batch_size=1"])  # fmt: skip
    summary = run_train(cfg, str(tiny_shards[1]), str(tmp_path), progress=False)
    doc = load_checkpoint(Path(summary.checkpoint).parent)
    assert doc["train_config"]["objective"] == "supervised" and doc["step"] == 1
    assert doc["metrics"]["loss"] > 0


def test_rerunning_after_the_driver_stopped_resumes(tiny_shards, tmp_path):
    """The driver died after epoch 1 (simulated by a run of 1 epoch): the same command continues."""
    base = [*FAST, "train.workers=1", "train.steps_per_epoch=1"]
    run_train(
        load_config("tiny", overrides=[*base, "train.epochs=1"]), str(tiny_shards[1]), str(tmp_path), progress=False
    )
    summary = run_train(load_config("tiny", overrides=[*base, "train.epochs=2"]), str(tiny_shards[1]), str(tmp_path),
                        progress=False)  # fmt: skip
    assert summary.epochs == 2 and summary.steps == 2  # epoch 1 was not trained again
    events = (tmp_path / "music_gesture" / "logs" / "events.jsonl").read_text()
    assert '"after_epoch": 0' in events


def test_training_rows_are_the_same_materialized_streamed_and_without_ray(tiny_shards):
    from ray.data.dataset import MaterializedDataset

    from pipeline.train import rows_in_memory, training_dataset

    _, folder = tiny_shards
    version = find_version(str(folder))
    files = sorted((version / "split=train").glob("*.parquet"))
    tc = load_config("tiny").train
    held = training_dataset(files, tc)  # the tiny shards are far under train.materialize_gb
    streamed = training_dataset(files, dataclasses.replace(tc, materialize_gb=0.0))
    assert isinstance(held, MaterializedDataset) and not isinstance(streamed, MaterializedDataset)
    plain = rows_in_memory(files, tc)
    clips = sorted(plain["clip"].tolist())
    assert len(clips) > 4
    for ds in (held, streamed):
        rows = {int(r["clip"]): r for r in ds.take_all()}
        assert sorted(rows) == clips
        i = int(torch.argmax(plain["clip"]))
        assert (rows[int(plain["clip"][i])]["wave"] == plain["wave"][i].numpy()).all()


def test_rows_per_step_follow_the_objective_and_pairing():
    from pipeline.train import rows_per_step

    tc = load_config("tiny", overrides=["train.batch_size=4", "train.sources=[2, 3]"]).train
    assert rows_per_step(dataclasses.replace(tc, pairing="any")) == 12
    assert rows_per_step(dataclasses.replace(tc, pairing="mixed")) == 24  # a pairing rule picks among twice as many
    assert rows_per_step(dataclasses.replace(tc, objective="supervised")) == 4  # one real mixture per row


class _Shard:
    """What ``_validate`` reads from a Ray Data shard: batches of training rows."""

    def __init__(self, rows):
        self.rows = rows

    def iter_torch_batches(self, batch_size, drop_last):
        n = len(self.rows["wave"])
        for i in range(0, n, batch_size):
            yield {k: v[i : i + batch_size] for k, v in self.rows.items()}


def test_validation_reports_the_constant_mask_floor_on_the_same_mixtures(tiny_shards):
    """The floor is the model-free score of mixture / N on the fixed held-out mixtures: the same for any
    model and any epoch, finite on real duets, and what the model's quick SDR is to be read against."""
    from pipeline.models.separators import build_model
    from pipeline.train import _validate, model_config, rows_in_memory

    _, folder = tiny_shards
    tc = load_config("tiny", overrides=FAST).train
    rows = rows_in_memory(sorted((find_version(str(folder)) / "split=train").glob("*.parquet")), tc)
    shard = _Shard(rows)
    results = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        results.append(_validate(build_model(model_config(tc)), shard, tc, torch.device("cpu"), False, 1))
    (sdr_a, floor_a), (sdr_b, floor_b) = results
    assert math.isfinite(floor_a) and floor_a == floor_b  # model-free, fixed mixtures
    assert 0.5 < floor_a < 6.0  # about 3 dB for duets of roughly uncorrelated sources
    assert math.isfinite(sdr_a) and math.isfinite(sdr_b) and sdr_a != sdr_b  # the models' own scores
    assert all(math.isnan(x) for x in _validate(None, None, tc, torch.device("cpu"), False, 1))  # no val split


def test_validation_mixtures_do_not_depend_on_the_order_rows_arrive_in(tiny_shards):
    """Ray delivers a materialized split's blocks in no fixed order: the same rows in another order, and in
    other batch sizes, give the same mixtures (same floor and score); two workers take disjoint clips."""
    from pipeline.models.separators import build_model
    from pipeline.train import _first_clips, _validate, model_config, rows_in_memory

    _, folder = tiny_shards
    tc = load_config("tiny", overrides=FAST).train
    rows = rows_in_memory(sorted((find_version(str(folder)) / "split=train").glob("*.parquet")), tc)
    shuffled = {k: v[torch.randperm(len(v), generator=torch.Generator().manual_seed(3))] for k, v in rows.items()}
    torch.manual_seed(0)
    model = build_model(model_config(tc))
    a = _validate(model, _Shard(rows), tc, torch.device("cpu"), False, 1)
    b = _validate(model, _Shard(shuffled), tc, torch.device("cpu"), False, 1)
    assert math.isfinite(a[1]) and a == b
    # the kept rows are the smallest clip numbers whatever the batch size; ranks split them
    first = _first_clips(_Shard(shuffled), 6, batch_size=4)["clip"]
    assert first.tolist() == sorted(rows["clip"].tolist())[:6]
    assert torch.equal(_first_clips(_Shard(rows), 6, batch_size=64)["clip"], first)
    assert set(first[0::2].tolist()).isdisjoint(first[1::2].tolist())
    one_row = _Shard({k: v[:1] for k, v in rows.items()})  # fewer rows than workers: nothing to mix, no error
    assert all(math.isnan(x) for x in _validate(model, one_row, tc, torch.device("cpu"), False, 2, rank=1))


def test_learning_rate_warms_up_then_decays_to_zero():
    from pipeline.train import lr_factor, lr_schedule

    tc = load_config("tiny", overrides=["train.epochs=10", "train.warmup_epochs=3"]).train
    f = [lr_factor(e, tc, motion_epochs=2) for e in range(12)]
    assert f[:2] == [1.0, 1.0]  # the motion warm-up trains at the full rate
    assert f[2:5] == [0.25, 0.5, 0.75]  # then the separation's rate rises linearly...
    assert f[5] == 1.0 and all(a > b for a, b in zip(f[5:], f[6:])) and f[-1] < 0.06  # ...and decays by a cosine
    # without warm-ups the schedule is the cosine of earlier versions (old checkpoints resume into it)
    plain = dataclasses.replace(tc, warmup_epochs=0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = lr_schedule(opt, plain, 0)
    assert isinstance(cosine, torch.optim.lr_scheduler.CosineAnnealingLR)
    for e in range(10):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor(e, plain, 0), abs=1e-9)
        opt.step()
        cosine.step()


def test_motion_warmup_step_trains_only_the_motion_branch(tiny_shards):
    """The warm-up's loss is the motion branch's envelope loss alone: the U-Net, the fusion and the
    attention get no gradient, while the GCN and the appearance encoder that feeds it do."""
    from pipeline.models.separators import build_model
    from pipeline.train import _step_loss, model_config, rows_in_memory, rows_per_step

    _, folder = tiny_shards
    tc = load_config("tiny", overrides=[*FAST, "train.motion_aux=0.5", "train.motion_bands=8"]).train
    rows = rows_in_memory(sorted((find_version(str(folder)) / "split=train").glob("*.parquet")), tc)
    batch = {k: v[: rows_per_step(tc)] for k, v in rows.items()}
    torch.manual_seed(0)
    model = build_model(model_config(tc))
    loss = _step_loss(model, batch, tc, torch.Generator().manual_seed(0), torch.device("cpu"), False, True)
    loss.backward()
    grads = {name.split(".")[0]: p.grad for name, p in model.named_parameters()}
    assert {k for k, g in grads.items() if g is None} == {"unet", "fusion"}
    assert all(float(grads[k].abs().sum()) > 0 for k in ("gcn", "appearance", "to_audio_dim", "motion_head"))
    # the full step on the same mixtures (same generator) adds the mask loss to the weighted envelope loss
    full = _step_loss(model, batch, tc, torch.Generator().manual_seed(0), torch.device("cpu"), False)
    assert float(full.detach()) > 0.5 * float(loss.detach()) > 0


def test_ddp_motion_warmup_then_separation(tiny_shards, tmp_path):
    """Two workers: one warm-up epoch leaves the separator as built and the replicas equal (DDP with
    parameters outside the graph), then one separation epoch trains it; the run counts both epochs.
    The weight average begins with separation, is what a checkpoint gives, and survives a resume."""
    from pipeline.models.separators import build_model
    from pipeline.train import model_config

    overrides = [*FAST, "train.motion_aux=0.5", "train.motion_bands=8", "train.motion_warmup_epochs=1",
                 "train.epochs=1", "train.workers=2", "train.steps_per_epoch=2", "train.ema_decay=0.9"]  # fmt: skip
    cfg = load_config("tiny", overrides=overrides)
    summary = run_train(cfg, str(tiny_shards[1]), str(tmp_path), audit=True, progress=False)
    assert summary.epochs == 2 and summary.steps == 4
    run = tmp_path / "music_gesture"
    history = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [h["phase"] for h in history] == ["motion", "separate"]
    for epoch in range(2):
        a, b = (json.loads((run / "logs" / "audit" / f"epoch{epoch}-rank{r}.json").read_text()) for r in (0, 1))
        assert a["weights"] == b["weights"]
    torch.manual_seed(cfg.train.seed)
    built = build_model(model_config(cfg.train)).state_dict()
    first, last = (load_checkpoint(sorted(run.glob("checkpoint_*"))[i])["model"] for i in (0, 1))
    unet = [k for k in built if k.startswith("unet.")]
    assert unet and all(torch.equal(first[k], built[k]) for k in unet)  # the warm-up left the U-Net alone
    assert not all(torch.equal(last[k], built[k]) for k in unet)  # separation trained it
    assert not torch.equal(first["motion_head.weight"], built["motion_head.weight"])
    # a second run of the same command finds the run finished (warm-up included) and trains nothing
    again = run_train(cfg, str(tiny_shards[1]), str(tmp_path), progress=False)
    assert again.epochs == 2 and again.steps == 4
    # the average: none during the warm-up; after 2 separation steps 0.9 w1 + 0.1 w2, not the last weights
    assert "ema_model" not in load_checkpoint(sorted(run.glob("checkpoint_*"))[0])
    doc = load_checkpoint(summary.checkpoint)
    assert doc["ema_steps"] == 2
    key = "motion_head.weight"
    assert not torch.allclose(doc["ema_model"][key], doc["model"][key])
    model, _ = model_from_checkpoint(summary.checkpoint)
    assert torch.equal(model.state_dict()[key], doc["ema_model"][key])
    # one more epoch resumes the average with the weights: 2 + 2 steps averaged
    more = load_config("tiny", overrides=[*overrides, "train.epochs=2"])
    assert run_train(more, str(tiny_shards[1]), str(tmp_path), progress=False).steps == 6
    assert load_checkpoint(run / "final")["ema_steps"] == 4


def test_weight_average_is_an_exponential_moving_average():
    from pipeline.train import weight_average

    assert weight_average(torch.nn.Linear(2, 1), 0.0) is None
    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    ema = weight_average(net, 0.9)
    for value in (0.0, 1.0, 1.0):
        with torch.no_grad():
            net[0].weight.fill_(value)
            net[1].running_mean.fill_(value)
        ema.update_parameters(net)
    expected = 0.9 * (0.9 * 0.0 + 0.1 * 1.0) + 0.1 * 1.0  # the first update copies
    assert torch.allclose(ema.module[0].weight, torch.full((1, 2), expected))
    assert torch.allclose(ema.module[1].running_mean, torch.full((1,), expected))  # buffers too


def test_weight_average_of_music_gesture_after_a_forward():
    """Music Gesture keeps its last motion prediction (a non-leaf tensor) for the auxiliary loss;
    the average can still be made after a forward, and the model trains on."""
    from pipeline.models.separators import build_model
    from pipeline.train import model_config, weight_average

    cfg = model_config(load_config("tiny", overrides=[*FAST, "train.motion_bands=8", "train.motion_aux=1.0"]).train)
    model = build_model(cfg).train()
    mix, kp, crops = torch.randn(1, 1, 256, 64), torch.rand(1, 2, 16, 61, 3) * 300, torch.rand(1, 2, 3, 64, 64)
    model(mix, kp, crops).mean().backward()
    assert model.motion_prediction is not None and model.motion_prediction.grad_fn is not None
    ema = weight_average(model, 0.9)
    ema.update_parameters(model)  # the first update copies the weights and buffers
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ema.module.state_dict().values()))
    with torch.no_grad():
        assert torch.equal(ema.module.eval()(mix, kp, crops), model.eval()(mix, kp, crops))
    model.train()(mix, kp, crops).mean().backward()  # the model itself trains on
    assert model.motion_prediction.shape[:2] == (1, 2)


def test_a_training_runs_folder_names_its_final_or_newest_checkpoint(tiny_config, tmp_path):
    """``--checkpoint runs/x/train/music_gesture`` (the run folder a user sees) works, not only ``.../final``."""
    from conftest import make_checkpoint
    from pipeline.errors import UserError
    from pipeline.train import checkpoint_file

    run = tmp_path / "music_gesture"
    older = make_checkpoint(tiny_config, "music_gesture", run / "checkpoint_2026-12-03_09-58-16.439651", seed=1)
    newer = make_checkpoint(tiny_config, "music_gesture", run / "checkpoint_2026-12-03_10-02-49.385792", seed=2)
    assert checkpoint_file(run) == newer != older  # an unfinished run: its newest checkpoint
    final = make_checkpoint(tiny_config, "music_gesture", run / "final", seed=3)
    assert checkpoint_file(run) == final
    assert checkpoint_file(run / "checkpoint_2026-12-03_09-58-16.439651") == older
    assert checkpoint_file(older) == older
    torch.testing.assert_close(load_checkpoint(run)["model"], load_checkpoint(final)["model"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=f"no checkpoint in {empty}"):
        checkpoint_file(empty)
    with pytest.raises(UserError, match="checkpoint not found: .*missing.pt"):
        checkpoint_file(tmp_path / "missing.pt")


def test_step_precision_follows_the_config_and_the_device():
    from pipeline.errors import UserError
    from pipeline.train import step_precision

    cpu = torch.device("cpu")
    assert step_precision("fp32", cpu) is None
    assert step_precision("bf16", cpu) is torch.bfloat16
    assert step_precision("fp16", torch.device("cuda")) is torch.float16
    assert step_precision("auto", torch.device("cuda")) is torch.float16
    flags = Path("/proc/cpuinfo").read_text()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert step_precision("auto", cpu) is (torch.bfloat16 if native else None)
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        step_precision("fp16", cpu)
    with pytest.raises(UserError, match="precision must be one of"):
        load_config("tiny", overrides=["train.precision=half"])


def test_a_bf16_step_gives_the_fp32_loss_and_gradients(tiny_shards):
    """Under bf16 autocast (the demo's CPU steps where the CPU has it) the demo-sized Music Gesture's
    loss and gradients match float32's to bf16's precision; the weights stay float32."""
    from pipeline.models.separators import build_model
    from pipeline.train import _step_loss, model_config, rows_in_memory, rows_per_step

    _, folder = tiny_shards
    tc = load_config("demo", overrides=["train.batch_size=2", "train.sources=[2]"]).train
    rows = rows_in_memory(sorted((find_version(str(folder)) / "split=train").glob("*.parquet")), tc)
    batch = {k: v[: rows_per_step(tc)] for k, v in rows.items()}
    torch.manual_seed(0)
    model = build_model(model_config(tc))
    results = []
    for dtype in (None, torch.bfloat16):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the step draws from the global generator too (the GCN's dropout)
        loss = _step_loss(
            model, batch, tc, torch.Generator().manual_seed(0), torch.device("cpu"), False, amp_dtype=dtype
        )
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((float(loss.detach()), grad))
    (loss32, g32), (loss16, g16) = results
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.isfinite(g16).all() and loss16 != loss32 and abs(loss16 - loss32) < 0.01 * abs(loss32)
    cosine = float(torch.nn.functional.cosine_similarity(g16, g32, dim=0))
    assert cosine > 0.75, cosine  # measured 0.8-0.9: most of the norm is the appearance encoder's first convolutions


def test_instrument_context_adds_the_instrument_loss_to_every_step(tiny_shards, monkeypatch):
    """With train.instrument_context the step's loss is the separation's (or the warm-up's envelope loss)
    plus the cross-entropy of each mixed person's instrument; unknown instruments (-1) do not count."""
    import pipeline.train as train
    from pipeline.instruments import CODES
    from pipeline.models.separators import build_model
    from pipeline.train import _step_loss, instrument_loss, model_config, rows_in_memory, rows_per_step

    labels = torch.tensor([0, 3, -1])
    assert abs(float(instrument_loss(torch.zeros(3, 13), labels)) - math.log(13)) < 1e-5
    assert float(instrument_loss(torch.randn(2, 13), torch.tensor([-1, -1]))) == 0.0
    _, folder = tiny_shards
    tc = load_config("tiny", overrides=[*FAST, "train.motion_aux=0.5", "train.motion_bands=8",
                                        "train.instrument_context=true"]).train  # fmt: skip
    rows = rows_in_memory(sorted((find_version(str(folder)) / "split=train").glob("*.parquet")), tc)
    batch = {k: v[: rows_per_step(tc)] for k, v in rows.items()}
    assert bool((batch["instrument"] >= 0).all())
    torch.manual_seed(0)
    model = build_model(model_config(tc))
    model.instrument_head.weight.data.zero_()  # every instrument equally likely: CE = log(instruments)
    model.instrument_head.bias.data.zero_()

    def step(motion_only: bool) -> float:
        torch.manual_seed(1)  # the same dropout draws
        gen = torch.Generator().manual_seed(0)
        return float(_step_loss(model, batch, tc, gen, torch.device("cpu"), False, motion_only).detach())

    with_ce = [step(False), step(True)]
    monkeypatch.setattr(train, "instrument_loss", lambda logits, labels: logits.sum() * 0.0)
    without = [step(False), step(True)]
    for a, b in zip(with_ce, without):
        assert abs(a - b - math.log(len(CODES))) < 1e-4


def test_a_checkpoint_from_another_version_names_the_options_this_one_lacks(tiny_checkpoints, tmp_path):
    from pipeline.errors import UserError

    doc = load_checkpoint(tiny_checkpoints[0])
    doc["model_config"] = {**doc["model_config"], "envelope_noise": 0.5, "gcn": {**doc["model_config"]["gcn"], "x": 1}}
    (tmp_path / "other").mkdir()
    torch.save(doc, tmp_path / "other" / CHECKPOINT_FILE)
    with pytest.raises(UserError, match=r"other/checkpoint\.pt: model options this version does not know: "
                                        r"envelope_noise, gcn\.x: another version"):  # fmt: skip
        model_from_checkpoint(tmp_path / "other")
    model, _ = model_from_checkpoint(tiny_checkpoints[0])  # the unchanged one loads
    assert not model.training
