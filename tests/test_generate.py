"""Planning, determinism (in this process and as Ray tasks), and the command line's errors."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.config import load_config
from pipeline.errors import UserError
from pipeline.synth.generate import assign_splits, generate_benchmark, plan_pieces

SMALL = [
    "synth.solos=1",
    "synth.duets=2",
    "synth.trios=0",
    "synth.homo_duet_fraction=0.5",
    "synth.min_duration_s=4",
    "synth.max_duration_s=4",
]


def _digest(root: Path) -> dict[str, str]:
    """Hash of every audio, note, score and keypoint file (video bytes are the encoder's business)."""
    files = [p for p in root.rglob("*") if p.suffix in (".wav", ".txt", ".mid", ".json") and p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_plan_follows_the_config():
    cfg = load_config("demo").synth
    plan = [p for p in plan_pieces(cfg) if not p.train_only]
    sizes = [p.players for p in plan]
    assert sizes.count(1) == cfg.solos and sizes.count(2) == cfg.duets and sizes.count(4) == cfg.quartets
    assert sum(p.homo for p in plan) == round(cfg.duets * cfg.homo_duet_fraction)
    assert all(p.players == 2 for p in plan if p.homo)
    assert sum(p.from_corpus for p in plan) == round(len(plan) * cfg.corpus_fraction)
    assert all(cfg.min_duration_s <= p.duration <= cfg.max_duration_s for p in plan)
    assert [p.number for p in plan] == list(range(1, len(plan) + 1))
    assert plan_pieces(cfg)[: len(plan)] == plan


def test_extra_training_pieces_leave_the_other_pieces_and_splits_as_they_were():
    base = load_config("demo", overrides=["synth.extra_train_solos=0", "synth.extra_train_duets=0"]).synth
    more = load_config("demo", overrides=["synth.extra_train_solos=7", "synth.extra_train_duets=4"]).synth
    plan, bigger = plan_pieces(base), plan_pieces(more)
    assert bigger[: len(plan)] == plan
    extra = bigger[len(plan) :]
    assert [p.number for p in extra] == list(range(len(plan) + 1, len(plan) + 12))
    assert all(p.train_only for p in extra) and not any(p.train_only for p in plan)
    assert sorted(p.players for p in extra) == [1] * 7 + [2] * 4 and sum(p.homo for p in extra) == 2

    def names(specs):  # what assign_splits reads of a rendered piece: its folder name
        return [SimpleNamespace(name=f"{p.number:03d}_{p.players}{'h' if p.homo else ''}") for p in specs]

    a, b = assign_splits(plan, names(plan), base), assign_splits(bigger, names(bigger), more)
    assert a["val"] == b["val"] and a["test"] == b["test"]
    assert sorted(b["train"]) == sorted(a["train"] + [n.name for n in names(extra)])


def test_same_seed_same_bytes_in_process_and_as_ray_tasks(tmp_path: Path, ray_local):
    serial = load_config("tiny", overrides=[*SMALL, "synth.seed=3"])
    parallel = load_config("tiny", overrides=[*SMALL, "synth.seed=3", "synth.workers=2"])
    generate_benchmark(serial, tmp_path / "a", progress=False)
    generate_benchmark(parallel, tmp_path / "b", progress=False)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(a) > 3 * 4 * 30 and a == b
    other = load_config("tiny", overrides=[*SMALL, "synth.seed=4"])
    generate_benchmark(other, tmp_path / "c", progress=False)
    c = _digest(tmp_path / "c")
    assert set(a) != set(c) or a != c
    wav_a = {k: v for k, v in a.items() if k.endswith(".wav")}
    assert not set(wav_a.values()) & set(c.values())  # no audio file in common


def test_rerun_renders_only_what_is_missing(tmp_path: Path):
    cfg = load_config("tiny", overrides=[*SMALL, "synth.duets=0"])
    out = tmp_path / "bench"
    generate_benchmark(cfg, out, progress=False)
    piece = next(p for p in out.iterdir() if p.name[0].isdigit())
    mtimes = {p: p.stat().st_mtime_ns for p in piece.iterdir()}
    generate_benchmark(cfg, out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in piece.iterdir()} == mtimes
    # A folder written before synth.extra_train_* existed is the same benchmark as one with them at 0.
    resolved = out / "config.yaml"
    resolved.write_text(re.sub(r"\n  extra_train_\w+: 0", "", resolved.read_text()))
    assert "extra_train" not in resolved.read_text()
    generate_benchmark(cfg, out, progress=False)
    # More training pieces: only the new one is rendered, and it goes to train.
    before = json.loads((out / "splits.json").read_text())
    grown = load_config("tiny", overrides=[*SMALL, "synth.duets=0", "synth.extra_train_solos=1"])
    generate_benchmark(grown, out, progress=False)
    after = json.loads((out / "splits.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in piece.iterdir()} == mtimes
    added = set(after["train"]) - set(before["train"])
    assert len(added) == 1 and (out / added.pop()).is_dir()
    assert after["val"] == before["val"] and after["test"] == before["test"]
    # Fewer again would leave a piece the settings do not name: refused.
    with pytest.raises(UserError, match="extra_train_solos"):
        generate_benchmark(cfg, out, progress=False)
    cfg = grown
    # A piece the same settings would not make here (an older generator's): refused, nothing touched.
    number = piece.name.split("_")[0]
    piece.rename(out / f"{number}_Older_xx")
    (out / "openpose" / piece.name).rename(out / "openpose" / f"{number}_Older_xx")
    with pytest.raises(UserError, match=f"holds {number}_Older_xx"):
        generate_benchmark(cfg, out, progress=False)
    assert not piece.exists() and (out / f"{number}_Older_xx").is_dir()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # The main job trains two models and evaluates them: minutes on 2 busy cores, so a generous limit.
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env, timeout=1200
    )


def test_cli_help():
    top = _cli("--help")
    assert top.returncode == 0 and "synth" in top.stdout and "run" in top.stdout
    for command in ("synth", "run"):
        done = _cli(command, "--help")
        assert done.returncode == 0
        assert "--preset" in done.stdout and "--set" in done.stdout and "--config" in done.stdout
    assert "--seed" in _cli("synth", "--help").stdout


def test_cli_generates_and_prints_a_summary(tmp_path: Path):
    sets = [x for s in SMALL for x in ("--set", s)]
    done = _cli("-q", "synth", "--out", str(tmp_path / "b"), "--preset", "tiny", "--seed", "8", *sets)
    assert done.returncode == 0, done.stderr
    assert "pieces                3" in done.stdout and "(1)" in done.stdout
    assert (tmp_path / "b" / "splits.json").is_file()


def _assert_clean_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--preset", "huge"], ["invalid choice: 'huge'"]),
        (["--preset", "tiny", "--set", "synth.soundfont=/nope/gm.sf2"], ["soundfont not found: /nope/gm.sf2"]),
        (["--preset", "tiny", "--set", "synth.bogus=1"], ["unknown config key 'bogus'"]),
        (["--preset", "tiny", "--set", "synth.duets=two"], ["synth.duets must be an integer"]),
    ],
)
def test_cli_bad_arguments(tmp_path: Path, args, needles):
    _assert_clean_error(_cli("synth", "--out", str(tmp_path / "o"), *args), *needles)
    assert not (tmp_path / "o").exists()  # nothing written when the arguments are wrong


def test_cli_unwritable_or_foreign_output(tmp_path: Path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    _assert_clean_error(_cli("synth", "--out", str(a_file / "sub"), "--preset", "tiny"), "cannot write", str(a_file))
    _assert_clean_error(_cli("synth", "--out", str(a_file), "--preset", "tiny"), "not a folder")
    _assert_clean_error(_cli("synth", "--out", str(tmp_path), "--preset", "tiny"), "not empty")
    assert a_file.read_text() == "mine"


def test_cli_refuses_to_mix_configs(tmp_path: Path):
    out = tmp_path / "bench"
    generate_benchmark(load_config("tiny", overrides=[*SMALL, "synth.duets=0"]), out, progress=False)
    before = sorted(p.name for p in out.iterdir())
    done = _cli("synth", "--out", str(out), "--preset", "tiny", *("--set", "synth.solos=2"))
    _assert_clean_error(done, "other settings", "synth.duets", "synth.solos")
    assert sorted(p.name for p in out.iterdir()) == before


def test_cli_missing_programs(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}  # neither fluidsynth nor ffmpeg
    _assert_clean_error(
        _cli("synth", "--out", str(tmp_path / "o"), "--preset", "tiny", env=env), "fluidsynth is not installed"
    )


def test_main_job_runs_resumes_and_guards_its_folder(tmp_path: Path):
    # A solo and two homo duets: one duet lands in the test split, so there are real mixtures to score.
    small = [*SMALL, "synth.min_duration_s=7", "synth.max_duration_s=7", "synth.homo_duet_fraction=1.0"]
    quick = ["train.workers=1", "train.epochs=1", "train.batch_size=1", "train.sources=[2]"]
    sets = [x for s in [*small, *quick] for x in ("--set", s)]
    out = tmp_path / "run"
    models = ["--models", "music_gesture,audio_only"]
    first = _cli("-q", "run", "--out", str(out), "--preset", "tiny", *models, *sets)
    assert first.returncode == 0, first.stderr
    assert "pieces                3" in first.stdout
    # Ray's own chatter stays out of the console: the placement-group cleaner's once-a-second warning
    # (the embedded Ray has no state API) and a line per pass over a split from the training workers.
    console = first.stdout + first.stderr
    assert "Failed to query Ray Train Controller actor state" not in console
    assert not re.search(r"Dataset (train|val)_\w* execution finished", console)
    assert (out / "config.yaml").is_file() and (out / "benchmark" / "splits.json").is_file()
    assert len(list((out / "shards").glob("v1-*/split=*/*.parquet"))) == 3
    for model in ("music_gesture", "audio_only"):
        assert (out / "train" / model / "final" / "checkpoint.pt").is_file()
    # It ends with the evaluation's headline table: both models and the reference rows.
    table = first.stdout[first.stdout.index("| system |") :]
    for row in ("| music_gesture |", "| audio_only |", "| mixture |", "| ideal_binary_mask |"):
        assert row in table
    assert (out / "evaluation" / "summary.md").is_file() and str(out / "evaluation") in table
    # A run folder from before synth.extra_train_* existed is the same run as one with them at 0.
    resolved = out / "config.yaml"
    resolved.write_text(re.sub(r"\n  extra_train_\w+: 0", "", resolved.read_text()))
    assert "extra_train" not in resolved.read_text()
    again = _cli("-q", "run", "--out", str(out), "--preset", "tiny", *models, *sets)  # nothing left to do
    assert again.returncode == 0 and "videos unchanged  3" in again.stdout and "epochs           1" in again.stdout
    # Other settings are refused, naming them (here the quick ones above, back at the tiny preset's values).
    _assert_clean_error(_cli("run", "--out", str(out), "--preset", "tiny"), "other settings", "train.epochs")
    _assert_clean_error(_cli("run", "--out", str(tmp_path), "--preset", "tiny"), "not a run folder")


def test_job_entrypoint_help():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "jobs" / "synth.py"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--out" in done.stdout and "--preset" in done.stdout
