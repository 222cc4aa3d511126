"""The benchmark as a whole: plan the pieces, render them (here or as Ray tasks), write splits.

Output folder::

    OUT/NN_Title_i1_i2/...      URMP layout, one folder per piece (see pipeline.urmp)
    OUT/openpose/NN_.../        OpenPose JSON, one file per video frame
    OUT/splits.json             {"train": [...], "val": [...], "test": [...]} piece folder names
    OUT/benchmark.json          summary + what was rendered for each piece
    OUT/config.yaml             the resolved configuration

Re-running into the same folder with the same configuration renders only the
pieces that are missing; so does raising ``synth.extra_train_*`` (more training pieces).
Any other change of configuration is refused, never mixed in.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline import __version__
from pipeline.config import RESOLVED_NAME, Config, SynthConfig, setting_changes, write_resolved
from pipeline.errors import UserError
from pipeline.report import key_value_table
from pipeline.synth.piece import OPENPOSE_DIR, PieceInfo, PieceSpec, render_piece
from pipeline.synth.sound import check_fluidsynth, find_soundfont
from pipeline.video import check_ffmpeg

log = logging.getLogger(__name__)

SPLITS_NAME = "splits.json"
SUMMARY_NAME = "benchmark.json"
# Settings a benchmark folder can grow by: more training pieces, nothing else changes.
GROWABLE = ("synth.extra_train_solos", "synth.extra_train_duets")


@dataclass(frozen=True)
class Summary:
    """What a benchmark holds, as printed at the end of a run and stored in ``benchmark.json``."""

    pieces: int
    players: int
    instruments: dict[str, int]
    duets: int
    homo_duets: int
    minutes: float
    splits: dict[str, int]

    def table(self) -> str:
        """A few aligned lines for the terminal."""
        inst = ", ".join(f"{k} {v}" for k, v in sorted(self.instruments.items()))
        split = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        rows = [
            ("pieces", str(self.pieces)),
            ("players", str(self.players)),
            ("duets (homo-musical)", f"{self.duets} ({self.homo_duets})"),
            ("minutes of audio", f"{self.minutes:.1f}"),
            ("splits", split),
            ("instruments", inst),
        ]
        return key_value_table(rows)


def plan_pieces(cfg: SynthConfig) -> list[PieceSpec]:
    """The pieces to render, fixed by the seed: sizes, homo-musical duets, music source, length.

    The ``extra_train_*`` pieces come after the others, drawn from a stream of their own, so
    adding them leaves every other piece (and so the validation and test splits) as it was.
    """
    rng = np.random.default_rng(cfg.seed)
    specs = _plan(rng, cfg.solos, cfg.duets, cfg.trios, cfg.quartets, cfg, first=1, train_only=False)
    extra = np.random.default_rng([cfg.seed, 2_000_003])
    return specs + _plan(
        extra, cfg.extra_train_solos, cfg.extra_train_duets, 0, 0, cfg, first=len(specs) + 1, train_only=True
    )


def _plan(rng, solos: int, duets: int, trios: int, quartets: int, cfg: SynthConfig, first: int, train_only: bool):
    sizes = [1] * solos + [2] * duets + [3] * trios + [4] * quartets
    n_homo = int(round(duets * cfg.homo_duet_fraction))
    homo = [False] * solos + [i < n_homo for i in range(duets)] + [False] * (trios + quartets)
    order = rng.permutation(len(sizes))
    corpus = np.zeros(len(sizes), bool)  # exactly the asked share, spread at random
    corpus[rng.permutation(len(sizes))[: int(round(len(sizes) * cfg.corpus_fraction))]] = True
    lengths = rng.uniform(cfg.min_duration_s, cfg.max_duration_s, size=len(sizes))
    return [
        PieceSpec(
            first + number,
            sizes[i],
            homo[i],
            bool(corpus[number]),
            round(float(lengths[number]) * 2) / 2,
            train_only,
        )
        for number, i in enumerate(order)
    ]


def assign_splits(specs: list[PieceSpec], infos: list[PieceInfo], cfg: SynthConfig) -> dict[str, list[str]]:
    """Split by piece, within each kind (players, homo), so every split sees every kind.

    Each kind with two or more pieces puts at least one in test; with three or
    more, at least one in validation. Pieces planned as ``train_only`` all go to train.
    """
    rng = np.random.default_rng([cfg.seed, 1_000_003])
    kinds: dict[tuple[int, bool], list[str]] = {}
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for spec, info in zip(specs, infos):
        if spec.train_only:
            splits["train"].append(info.name)
        else:
            kinds.setdefault((spec.players, spec.homo), []).append(info.name)
    for key in sorted(kinds):
        names = [kinds[key][i] for i in rng.permutation(len(kinds[key]))]
        n = len(names)
        n_test = max(int(n >= 2), int(round(n * cfg.test_fraction)))
        n_val = max(int(n >= 3), int(round(n * cfg.val_fraction)))
        splits["test"] += names[:n_test]
        splits["val"] += names[n_test : n_test + n_val]
        splits["train"] += names[n_test + n_val :]
    return {k: sorted(v) for k, v in splits.items()}


def summarize(infos: list[PieceInfo], splits: dict[str, list[str]]) -> Summary:
    """Counts over the rendered pieces."""
    codes = Counter(c for info in infos for c in info.codes)
    duets = [i for i in infos if len(i.codes) == 2]
    return Summary(
        pieces=len(infos),
        players=sum(len(i.codes) for i in infos),
        instruments=dict(sorted(codes.items())),
        duets=len(duets),
        homo_duets=sum(i.homo for i in duets),
        minutes=sum(i.duration for i in infos) / 60.0,
        splits={k: len(v) for k, v in splits.items()},
    )


def generate_benchmark(config: Config, out: Path, progress: bool = True) -> Summary:
    """Render the whole benchmark into ``out``; returns its summary."""
    cfg = config.synth
    soundfont = find_soundfont(cfg.soundfont)
    check_fluidsynth()
    check_ffmpeg()
    _prepare_output(out, config)
    write_resolved(config, out, extra={"code_version": __version__})
    specs = plan_pieces(cfg)
    done = _recorded_pieces(out)
    todo = [s for s in specs if s.number not in done]
    log.info("rendering %d pieces into %s (%d already there)", len(todo), out, len(specs) - len(todo))
    if cfg.workers > 0 and todo:
        rendered = _render_with_ray(todo, cfg, out, soundfont, progress)
    else:
        bar = tqdm(todo, desc="pieces", unit="piece", disable=not progress)
        rendered = [render_piece(s, cfg, out, soundfont) for s in bar]
    by_number = {**done, **{i.number: i for i in rendered}}
    infos = [by_number[s.number] for s in specs]
    partial = out / ".partial"
    if partial.is_dir() and not any(partial.iterdir()):
        partial.rmdir()
    splits = assign_splits(specs, infos, cfg)
    summary = summarize(infos, splits)
    _write_json(out / SPLITS_NAME, splits)
    _write_json(
        out / SUMMARY_NAME,
        {"summary": summary.__dict__, "code_version": __version__, "pieces": [i.to_json() for i in infos]},
    )
    return summary


def _recorded_pieces(out: Path) -> dict[int, PieceInfo]:
    """Pieces a finished earlier run of this benchmark recorded in benchmark.json whose folders exist.

    Re-running then skips them without re-reading their scores (music21 parsing is slow).
    The caller has checked that the earlier run used the same settings.
    """
    try:
        doc = json.loads((out / SUMMARY_NAME).read_text())
    except (OSError, ValueError):
        return {}
    found = {}
    for p in doc.get("pieces", []):
        info = PieceInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})
        if (out / info.name).is_dir() and (out / OPENPOSE_DIR / info.name).is_dir():
            found[info.number] = info
    return found


def _render_with_ray(specs, cfg: SynthConfig, out: Path, soundfont: Path, progress: bool) -> list[PieceInfo]:
    """Render pieces as Ray tasks, at most ``cfg.workers`` at a time, in plan order."""
    import ray

    from pipeline.raysession import init_ray

    init_ray()
    task = ray.remote(num_cpus=1)(render_piece)
    results: dict[Any, int] = {}
    infos: list[PieceInfo | None] = [None] * len(specs)
    todo = list(enumerate(specs))
    with tqdm(total=len(specs), desc="pieces", unit="piece", disable=not progress) as bar:
        while todo or results:
            while todo and len(results) < cfg.workers:
                i, spec = todo.pop(0)
                results[task.remote(spec, cfg, out, soundfont)] = i
            done, _ = ray.wait(list(results), num_returns=1)
            for ref in done:
                infos[results.pop(ref)] = ray.get(ref)
                bar.update(1)
    return [i for i in infos if i is not None]


def _prepare_output(out: Path, config: Config) -> None:
    """Make ``out`` or check it holds this same benchmark; never touch a folder of something else."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    previous = out / RESOLVED_NAME
    if previous.is_file():
        changed = setting_changes(previous, config, sections=("synth",))
        if changed and all(key in GROWABLE and now > then for key, (then, now) in changed.items()):
            log.info(
                "adding training pieces to %s (%s)",
                out,
                ", ".join(f"{key} {then} → {now}" for key, (then, now) in changed.items()),
            )
        elif changed:
            raise UserError(
                f"{out} holds a benchmark made with other settings ({', '.join(changed)}); choose a new --out folder"
            )
    elif any(p for p in out.iterdir() if p.name not in (".partial", OPENPOSE_DIR)):
        raise UserError(f"{out} is not empty and holds no benchmark; choose a new or empty --out folder")


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
