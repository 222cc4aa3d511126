"""Distributed evaluation: separate a fixed list of test mixtures and score them with mir_eval.

The stage, top to bottom:

1. :func:`plan_mixtures` lists what is scored, from the split's metadata only:
   mix-and-separate mixtures of N single sources (N from ``evaluate.sources``;
   as many hetero and homo groups each as ``mixtures_per_group``, sources from
   different videos, drawn with a fixed seed), and every real mixture with
   stems (clips of ensembles). The list depends only on the shards and the seed.
2. :class:`Separator` (a Ray Data actor; GPU when there is one) loads each
   checkpoint once, reads the mixtures' rows from the shards, and returns
   the mixture, references and every model's separated waveforms (masks on
   the mixture's STFT, inverse STFT with the mixture phase).
3. :func:`score_batch` (parallel CPU tasks) runs ``bss_eval_sources`` for
   every system on the same mixture, plus two reference rows: the mixture
   itself as every estimate (lower bound) and the ideal binary mask (upper
   bound). Visual models are scored against the person they were given;
   ``audio_only`` gets its best assignment of outputs to sources (an oracle).

``evaluate.workers: 0`` runs the same functions in this process, without Ray.
The report (tables, plots, example wavs) is :mod:`pipeline.evalreport`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from pipeline import shards
from pipeline.config import Config, EvaluateConfig, write_resolved
from pipeline.errors import UserError
from pipeline.mixing import istft, masks_from_logits, model_input, separate, stft
from pipeline.models.separators import is_permutation_invariant
from pipeline.scoring import bss_eval, level_db

log = logging.getLogger(__name__)

MIXTURE = "mixture"  # reference row: the mixture as every estimate (lower bound)
IDEAL = "ideal_binary_mask"  # reference row: the oracle binary mask (upper bound)
META_COLUMNS = ["clip_id", "item_id", "num_sources", "instruments", "has_stems"]


# --- 1. what is scored ------------------------------------------------------------------------


def list_split(version: Path, split: str) -> tuple[list[dict], list[dict]]:
    """(single sources, real mixtures) of a split, from metadata columns only."""
    files = sorted((version / f"split={split}").glob("*.parquet"))
    sources, real = [], []
    for f in files:
        for r in pq.read_table(f, columns=META_COLUMNS).to_pylist():
            if not r["has_stems"]:
                continue
            n = int(r["num_sources"])
            members = [[f.name, r["clip_id"], k] for k in range(n)]
            for k in range(n):
                sources.append({"member": members[k], "item": r["item_id"], "instrument": r["instruments"][k]})
            if n >= 2:
                real.append({"members": members, "items": [r["item_id"]] * n, "instruments": r["instruments"][:n]})
    return sources, real


def plan_mixtures(sources: list[dict], real: list[dict], cfg: EvaluateConfig) -> list[dict]:
    """The fixed, seeded list of mixtures (JSON-able dicts), mix-and-separate first, then real."""
    rng = np.random.default_rng(cfg.seed)
    plan = []
    for n in cfg.sources:
        for pairing in ("hetero", "homo"):
            groups = _draw_groups(sources, n, pairing, cfg.mixtures_per_group, rng)
            if len(groups) < cfg.mixtures_per_group:
                log.warning("only %d %s mixtures of %d sources could be formed", len(groups), pairing, n)
            for i, g in enumerate(groups):
                plan.append(_mixture(f"mix{n}-{pairing}-{i:03d}", "mix", [sources[j] for j in g]))
    for r in real:
        src = [
            {"member": m, "item": it, "instrument": ins}
            for m, it, ins in zip(r["members"], r["items"], r["instruments"])
        ]
        plan.append(_mixture(f"real-{r['members'][0][1]}", "real", src))
    return plan


def _mixture(mixture_id: str, kind: str, src: list[dict]) -> dict:
    instruments = [s["instrument"] for s in src]
    return {
        "mixture_id": mixture_id,
        "kind": kind,
        "n": len(src),
        "homo": len(set(instruments)) == 1,
        "members": [s["member"] for s in src],
        "instruments": instruments,
    }


def _draw_groups(sources: list[dict], n: int, pairing: str, count: int, rng: np.random.Generator) -> list[tuple]:
    """Up to ``count`` distinct groups of n sources from n different videos obeying the pairing."""
    by_instrument = defaultdict(list)
    for j, s in enumerate(sources):
        by_instrument[s["instrument"]].append(j)
    groups: set[tuple] = set()
    for _ in range(count * 50):
        if len(groups) >= count:
            break
        if pairing == "homo":
            pool = [ins for ins, js in sorted(by_instrument.items()) if len(js) >= n]
            if not pool:
                break
            js = by_instrument[pool[rng.integers(len(pool))]]
            g = tuple(js[i] for i in rng.choice(len(js), n, replace=False))
        else:
            g = tuple(int(j) for j in rng.choice(len(sources), n, replace=False))
            if len({sources[j]["instrument"] for j in g}) < n:
                continue
        if len({sources[j]["item"] for j in g}) == n:
            groups.add(tuple(sorted(g)))
    return sorted(groups, key=lambda g: [sources[j]["member"] for j in g])


# --- 2. separation ----------------------------------------------------------------------------


def load_inputs(version: Path, split: str, mixtures: list[dict]) -> list[dict]:
    """Waveforms (float, [-1, 1)), keypoints and crops of each mixture's members, read from the shards.

    A mix-and-separate mixture is the mean of its sources (as in training), so
    its references are the sources divided by N; a real mixture is the clip's
    own mixture with its stems as references.
    """
    wanted = defaultdict(set)
    for m in mixtures:
        for shard, clip, _ in m["members"]:
            wanted[shard].add(clip)
    rows = {}
    for shard, clips in wanted.items():
        path = version / f"split={split}" / shard
        table = pq.read_table(path, filters=[("clip_id", "in", sorted(clips))],
                              columns=["clip_id", "mix_wave", "stem_wave", "keypoints", "crops"])  # fmt: skip
        mix, stems, kp = (shards.read_column(table, c) for c in ("mix_wave", "stem_wave", "keypoints"))
        for i, (clip, crops) in enumerate(zip(table["clip_id"].to_pylist(), table["crops"].to_pylist())):
            rows[clip] = (mix[i], stems[i], kp[i], crops)
    out = []
    for m in mixtures:
        members = [rows[clip] for _, clip, _ in m["members"]]
        persons = [p for _, _, p in m["members"]]
        refs = np.stack([r[1][p] for r, p in zip(members, persons)]).astype(np.float32) / shards.PCM_SCALE
        if m["kind"] == "mix":
            refs = refs / m["n"]
            mix = refs.sum(axis=0)
        else:
            mix = members[0][0].astype(np.float32) / shards.PCM_SCALE
        out.append({
            "mix": mix,
            "refs": refs,
            "keypoints": np.stack([r[2][p] for r, p in zip(members, persons)]).astype(np.float32),
            "crops": [r[3][p] for r, p in zip(members, persons)],
        })  # fmt: skip
    return out


def system_labels(checkpoints: list[str]) -> list[str]:
    """One name per checkpoint: its model's name, numbered when two share it."""
    from pipeline.train import load_checkpoint

    names = [load_checkpoint(c)["model_name"] for c in checkpoints]
    return [n if names.count(n) == 1 else f"{n}-{names[:i].count(n) + 1}" for i, n in enumerate(names)]


class Separator:
    """Ray Data actor: every checkpoint's model, loaded once; separates batches of planned mixtures."""

    def __init__(self, checkpoints: list[str], version: str, split: str) -> None:
        from pipeline.train import model_from_checkpoint

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.models = []
        for path in checkpoints:
            model, doc = model_from_checkpoint(path)
            self.models.append((model.to(self.device), doc["train_config"]["crop_size"], doc["train_config"]["mask"]))
        self.version, self.split = Path(version), split

    def separate(self, mixtures: list[dict]) -> tuple[list[dict], list[list[tuple[np.ndarray, np.ndarray]]]]:
        """(inputs, outputs): per mixture, per model, (estimates (outputs, samples), warped masks)."""
        from pipeline.train import decode_crop

        inputs = load_inputs(self.version, self.split, mixtures)
        results: list[list] = [[] for _ in mixtures]
        for model, crop_size, mask_kind in self.models:
            for idx in _by_size(mixtures).values():
                mix = torch.from_numpy(np.stack([inputs[i]["mix"] for i in idx])).to(self.device)
                kp = torch.from_numpy(np.stack([inputs[i]["keypoints"] for i in idx])).to(self.device)
                crops = np.stack([[decode_crop(c, crop_size) for c in inputs[i]["crops"]] for i in idx])
                crops = torch.from_numpy(crops).to(self.device).float().permute(0, 1, 4, 2, 3) / 255.0
                with torch.no_grad():
                    logmag = model_input(stft(mix))
                    masks = masks_from_logits(model(logmag, kp, crops).float(), mask_kind)
                    est = separate(mix, masks)
                for j, i in enumerate(idx):
                    results[i].append((est[j].cpu().numpy(), masks[j].cpu().numpy()))
        return inputs, results

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mixtures = [json.loads(s) for s in batch["spec"]]
        inputs, results = self.separate(mixtures)
        out = {"spec": batch["spec"], "mix": np.stack([x["mix"] for x in inputs]),
               "refs": np.stack([_pad(x["refs"]) for x in inputs])}  # fmt: skip
        for k in range(len(self.models)):
            out[f"est{k}"] = np.stack([_pad(r[k][0]) for r in results])
            out[f"outputs{k}"] = np.array([len(r[k][0]) for r in results])
        return out


def _by_size(mixtures: list[dict]) -> dict[int, list[int]]:
    groups = defaultdict(list)
    for i, m in enumerate(mixtures):
        groups[m["n"]].append(i)
    return dict(groups)


def _pad(x: np.ndarray) -> np.ndarray:
    """(k, samples) → (MAX_SOURCES, samples), zero rows after the real ones."""
    out = np.zeros((shards.MAX_SOURCES, x.shape[-1]), np.float32)
    out[: len(x)] = x
    return out


# --- 3. scoring -------------------------------------------------------------------------------


def ideal_binary_mask(mix: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Each time-frequency bin goes to the loudest reference: (n, samples) estimates."""
    spec, ref_spec = stft(torch.tensor(mix)), stft(torch.tensor(refs))  # copies: the arrays may be read-only
    owner = ref_spec.abs().argmax(dim=0)
    masks = torch.stack([(owner == k) for k in range(len(refs))]).to(spec.dtype)
    return istft(spec[None] * masks, mix.shape[-1]).numpy()


def score_batch(batch: dict[str, np.ndarray], labels: list[str], search: list[bool], silence_db: float) -> pd.DataFrame:
    """One row per (mixture, system): the systems in ``labels``, then the mixture and ideal-mask rows."""
    rows = []
    for i, spec in enumerate(batch["spec"]):
        m = json.loads(spec)
        n, mix, refs = m["n"], batch["mix"][i], batch["refs"][i][: m["n"]]
        systems = [(label, batch[f"est{k}"][i][: batch[f"outputs{k}"][i]], search[k]) for k, label in enumerate(labels)]
        systems += [(MIXTURE, np.repeat(mix[None], n, 0), False), (IDEAL, ideal_binary_mask(mix, refs), False)]
        quiet = [j for j in range(n) if level_db(refs[j]) < silence_db]
        for label, est, perm_search in systems:
            row = _score_row(m, label, refs, est, perm_search, silence_db) if not quiet else _excluded(
                m, label, f"silent reference (person {quiet[0] + 1} below {silence_db:g} dBFS)")  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


RESULT_COLUMNS = ["mixture_id", "kind", "n", "homo", "instruments", "clip_ids", "persons", "system", "scored",
                  "excluded", "sdr", "sir", "sar", "assignment", "silent_estimates"]  # fmt: skip


def _base(m: dict, label: str) -> dict[str, Any]:
    return {"mixture_id": m["mixture_id"], "kind": m["kind"], "n": m["n"], "homo": m["homo"],
            "instruments": m["instruments"], "clip_ids": [c for _, c, _ in m["members"]],
            "persons": [p for _, _, p in m["members"]], "system": label}  # fmt: skip


def _excluded(m: dict, label: str, why: str) -> dict[str, Any]:
    return {**_base(m, label), "scored": False, "excluded": why, "sdr": [], "sir": [], "sar": [],
            "assignment": [], "silent_estimates": 0}  # fmt: skip


def _score_row(m: dict, label: str, refs, est, search: bool, silence_db: float) -> dict[str, Any]:
    if len(est) < m["n"]:
        return _excluded(m, label, f"{len(est)} outputs for {m['n']} sources")
    s = bss_eval(refs, est, search, silence_db)
    return {**_base(m, label), "scored": True, "excluded": "", "sdr": s.sdr.tolist(), "sir": s.sir.tolist(),
            "sar": s.sar.tolist(), "assignment": s.assignment, "silent_estimates": s.silent_estimates}  # fmt: skip


# --- the stage --------------------------------------------------------------------------------


def run_scoring(
    version: Path, checkpoints: list[str], cfg: EvaluateConfig, progress: bool = True
) -> tuple[list[dict], pd.DataFrame, list[str]]:
    """Plan, separate and score; returns (mixtures, one row per (mixture, system), system labels)."""
    sources, real = list_split(version, cfg.split)
    mixtures = plan_mixtures(sources, real, cfg)
    labels = system_labels(checkpoints)
    search = [_is_permutation_invariant(c) for c in checkpoints]
    log.info("scoring %d mixtures × %d systems (+ 2 reference rows)", len(mixtures), len(labels))
    if not mixtures:
        raise UserError(f"the {cfg.split} split of {version} has nothing to score: it needs single sources from "
                        "two different videos, or an ensemble clip with stems")  # fmt: skip
    specs = [json.dumps(m) for m in mixtures]
    kwargs = {"labels": labels, "search": search, "silence_db": cfg.silence_db}
    if cfg.workers == 0:  # serial, in this process: the same functions without Ray
        sep = Separator(checkpoints, str(version), cfg.split)
        parts = []
        for start in range(0, len(specs), cfg.batch_size):
            parts.append(score_batch(sep({"spec": np.array(specs[start : start + cfg.batch_size])}), **kwargs))
        return mixtures, pd.concat(parts, ignore_index=True), labels
    df = _score_with_ray(specs, checkpoints, version, cfg, kwargs, progress)
    order = {m["mixture_id"]: i for i, m in enumerate(mixtures)}
    df = df.sort_values("mixture_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return mixtures, df, labels


def _score_with_ray(specs, checkpoints, version, cfg: EvaluateConfig, kwargs, progress: bool) -> pd.DataFrame:
    import ray

    from pipeline.raysession import init_ray

    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = progress
    ds = ray.data.from_items([{"spec": s} for s in specs], override_num_blocks=-(-len(specs) // cfg.batch_size))
    ds = ds.map_batches(
        Separator,
        fn_constructor_kwargs={"checkpoints": checkpoints, "version": str(version), "split": cfg.split},
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.workers),
        num_gpus=cfg.gpus_per_worker,
        batch_format="numpy",
    )
    pool = {"compute": ray.data.TaskPoolStrategy(size=cfg.score_workers)} if cfg.score_workers > 0 else {}
    ds = ds.map_batches(score_batch, fn_kwargs=kwargs, batch_size=1, num_cpus=1, batch_format="numpy", **pool)
    df = ds.to_pandas()
    for col in ("instruments", "clip_ids", "persons", "sdr", "sir", "sar", "assignment"):
        df[col] = df[col].map(lambda v: list(v) if v is not None else [])
    return df


def _is_permutation_invariant(checkpoint: str) -> bool:
    from pipeline.train import load_checkpoint

    return is_permutation_invariant(load_checkpoint(checkpoint)["model_name"])


# --- the command ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSummary:
    """What an evaluation wrote, and its headline table."""

    output: str
    mixtures: int
    excluded_silent_reference: int
    headline: str
    seconds: float

    def table(self) -> str:
        return (f"{self.headline}\n\n{self.mixtures} mixtures ({self.excluded_silent_reference} excluded: silent "
                f"reference); report: {self.output}/summary.md")  # fmt: skip


def run_evaluate(
    config: Config, shards_dir: str, checkpoints: list[str], output: str, progress: bool = True
) -> EvalSummary:
    """Score every checkpoint on the same test mixtures; write scores, summary, plots and example wavs."""
    import pyarrow as pa

    from pipeline import evalreport
    from pipeline.train import find_version, load_checkpoint

    if not checkpoints:
        raise UserError("give at least one --checkpoint")
    for c in checkpoints:
        load_checkpoint(c)  # a missing or foreign file fails here, with its name
    version = find_version(shards_dir)
    if not any((version / f"split={config.evaluate.split}").glob("*.parquet")):
        raise UserError(f"no {config.evaluate.split} shards in {version}")
    out = _claim_output(Path(output))
    t0 = time.perf_counter()
    mixtures, df, labels = run_scoring(version, checkpoints, config.evaluate, progress)
    write_resolved(config, out, extra={"shards": str(version), "checkpoints": checkpoints})
    (out / "mixtures.json").write_text(json.dumps(mixtures, indent=1) + "\n")
    tmp = out / ".scores.parquet.tmp"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    tmp.replace(out / "scores.parquet")
    summary = evalreport.summarize(df, labels)
    evalreport.write_summary(summary, out)
    (out / "plots").mkdir(exist_ok=True)
    evalreport.plot_distribution(df, labels, out / "plots" / "sdr_distribution.png")
    examples = evalreport.pick_examples(mixtures, config.evaluate.examples)
    if examples:
        inputs, outputs = Separator(checkpoints, str(version), config.evaluate.split).separate(examples)
        for m, x, o in zip(examples, inputs, outputs):
            evalreport.plot_example(m, x, o, labels, out / "plots" / f"example_{m['mixture_id']}.png")
            evalreport.write_example_audio(m, x, o, labels, out / "examples" / m["mixture_id"])
    if summary["excluded_silent_reference"]:
        log.warning("%d mixtures were not scored: a reference is silent (see summary.md)",
                    summary["excluded_silent_reference"])  # fmt: skip
    return EvalSummary(str(out), summary["mixtures"], summary["excluded_silent_reference"],
                       evalreport.headline_markdown(summary), time.perf_counter() - t0)  # fmt: skip


def _claim_output(out: Path) -> Path:
    """Use ``out`` for this evaluation: new, empty, or an earlier evaluation's folder (its files are replaced)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"evaluation output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "summary.json").is_file():
        raise UserError(f"{out} is not empty and holds no earlier evaluation; choose a new --output")
    out.mkdir(parents=True, exist_ok=True)
    return out
