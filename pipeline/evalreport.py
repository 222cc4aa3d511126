"""The evaluation report: summary tables (Markdown + JSON), plots and example wavs.

Everything here reads the per-(mixture, system) score rows of
:mod:`pipeline.evaluate`; nothing is computed twice. Means and medians are
over sources (one SDR per separated person). Excluded mixtures are counted by
reason, never dropped silently.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.audio import SAMPLE_RATE, write_pcm16
from pipeline.evaluate import IDEAL, MIXTURE

log = logging.getLogger(__name__)

# The headline columns: (title, rule on per-source rows).
HEADLINE = [
    ("all", lambda d: d.index == d.index),
    ("duets homo", lambda d: (d.n == 2) & d.homo),
    ("duets hetero", lambda d: (d.n == 2) & ~d.homo),
    ("N=3", lambda d: d.n == 3),
    ("real mixtures", lambda d: d.kind == "real"),
]
# The duet columns hold both kinds of mixture; the summary also splits them (the bar reads the whole column).
KIND_NAMES = {"mix": "mix-and-separate", "real": "real"}
NOTE = (
    "Mean SDR in dB over separated sources (mir_eval bss_eval_sources). Visual models are scored "
    "source by source against the person they were conditioned on (no permutation search); "
    "audio_only gets its best assignment of outputs to sources (an oracle). `mixture` (the mixture "
    "as every estimate) and `ideal_binary_mask` are reference rows on the same mixtures."
)


def per_source(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (mixture, system, source) of the scored rows."""
    scored = df[df.scored]
    rows = []
    for r in scored.itertuples(index=False):
        for k in range(r.n):
            rows.append({"mixture_id": r.mixture_id, "kind": r.kind, "n": r.n, "homo": bool(r.homo),
                         "system": r.system, "instrument": r.instruments[k], "sdr": r.sdr[k], "sir": r.sir[k],
                         "sar": r.sar[k]})  # fmt: skip
    return pd.DataFrame(rows, columns=["mixture_id", "kind", "n", "homo", "system", "instrument", "sdr", "sir", "sar"])


def summarize(df: pd.DataFrame, labels: list[str]) -> dict:
    """The summary as a plain dict (written as JSON, rendered as Markdown)."""
    src = per_source(df)
    systems = [*labels, MIXTURE, IDEAL]
    groups = [(title, rule) for title, rule in HEADLINE]
    groups += [(f"{title}, {KIND_NAMES[kind]}", lambda d, rule=rule, kind=kind: rule(d) & (d.kind == kind))
               for title, rule in HEADLINE if title.startswith("duets") for kind in KIND_NAMES]  # fmt: skip
    groups += [("homo", lambda d: d.homo), ("hetero", lambda d: ~d.homo)]
    groups += [(f"N={n}", lambda d, n=n: d.n == n) for n in sorted(src.n.unique()) if n != 3]
    groups += [(f"instrument {i}", lambda d, i=i: d.instrument == i) for i in sorted(src.instrument.unique())]
    table = []
    for title, rule in groups:
        part = src[rule(src)] if len(src) else src
        for system in systems:
            s = part[part.system == system]
            table.append({"group": title, "system": system, "mixtures": int(s.mixture_id.nunique()),
                          "sources": len(s), **_stats(s)})  # fmt: skip
    excluded = df[~df.scored]
    counts = excluded.groupby(["system", "excluded"]).size().reset_index(name="mixtures").to_dict("records")
    silent_ref = int(excluded[excluded.excluded.str.startswith("silent reference")].mixture_id.nunique())
    silent_est = df.groupby("system").silent_estimates.sum().to_dict()
    return {
        "systems": systems,
        "mixtures": int(df.mixture_id.nunique()) if len(df) else 0,
        "excluded_silent_reference": silent_ref,
        "excluded": counts,
        "silent_estimates": {k: int(v) for k, v in silent_est.items()},
        "table": table,
        "headline": _headline(table, systems),
        "note": NOTE,
    }


def _stats(s: pd.DataFrame) -> dict:
    if len(s) == 0:
        return {"sdr_mean": None, "sdr_median": None, "sir_mean": None, "sar_mean": None}
    finite = {c: s[c].replace([np.inf, -np.inf], np.nan) for c in ("sdr", "sir", "sar")}
    return {"sdr_mean": float(finite["sdr"].mean()), "sdr_median": float(finite["sdr"].median()),
            "sir_mean": float(finite["sir"].mean()), "sar_mean": float(finite["sar"].mean())}  # fmt: skip


def _headline(table: list[dict], systems: list[str]) -> dict[str, dict[str, float | None]]:
    cell = {(r["group"], r["system"]): r["sdr_mean"] for r in table}
    return {system: {title: cell.get((title, system)) for title, _ in HEADLINE} for system in systems}


def headline_markdown(summary: dict) -> str:
    """The headline table: systems × (all, duets homo, duets hetero, N=3, real), mean SDR."""
    titles = [t for t, _ in HEADLINE]
    lines = ["| system | " + " | ".join(titles) + " |", "|---|" + "---:|" * len(titles)]
    for system in summary["systems"]:
        row = summary["headline"][system]
        lines.append(f"| {system} | " + " | ".join(_fmt(row[t]) for t in titles) + " |")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.2f}"


def markdown(summary: dict) -> str:
    """The whole summary as Markdown: headline, exclusions, then every group."""
    out = ["# Evaluation summary", "", headline_markdown(summary), "", NOTE, ""]
    out.append(f"Mixtures: {summary['mixtures']}. Excluded with a silent reference: "
               f"{summary['excluded_silent_reference']}.")  # fmt: skip
    for e in summary["excluded"]:
        out.append(f"- {e['system']}: {e['mixtures']} not scored: {e['excluded']}")
    for system, count in summary["silent_estimates"].items():
        if count:
            out.append(f"- {system}: {count} silent estimates (scored as near-silence)")
    out += ["", "| group | system | mixtures | sources | SDR mean | SDR median | SIR mean | SAR mean |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in summary["table"]:
        if r["sources"]:
            out.append(f"| {r['group']} | {r['system']} | {r['mixtures']} | {r['sources']} | {_fmt(r['sdr_mean'])} | "
                       f"{_fmt(r['sdr_median'])} | {_fmt(r['sir_mean'])} | {_fmt(r['sar_mean'])} |")  # fmt: skip
    return "\n".join(out) + "\n"


def write_summary(summary: dict, folder: Path) -> None:
    """summary.json and summary.md (each written whole, then renamed into place)."""
    _atomic(folder / "summary.json", json.dumps(summary, indent=1, default=_json_default) + "\n")
    _atomic(folder / "summary.md", markdown(summary))


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v))


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- plots and sound --------------------------------------------------------------------------


def plot_distribution(df: pd.DataFrame, labels: list[str], path: Path) -> None:
    """Box plot of per-source SDR for every system, split by duets homo / hetero / N=3 / real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src = per_source(df)
    systems = [*labels, MIXTURE, IDEAL]
    panels = [(t, r) for t, r in HEADLINE if t != "all"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), sharey=True)
    for ax, (title, rule) in zip(np.atleast_1d(axes), panels):
        part = src[rule(src)] if len(src) else src
        data = [part[part.system == s].sdr.replace([np.inf, -np.inf], np.nan).dropna().to_numpy() for s in systems]
        ax.boxplot([d if len(d) else [np.nan] for d in data], showmeans=True)
        ax.set_xticks(range(1, len(systems) + 1), systems, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{title} ({part.mixture_id.nunique()} mixtures)")
        ax.axhline(0, color="grey", lw=0.5)
    np.atleast_1d(axes)[0].set_ylabel("SDR (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_example(mixture: dict, inputs: dict, outputs: list, labels: list[str], path: Path) -> None:
    """Spectrograms of one mixture: the mixture, each reference, and each model's mask and estimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.audio import magnitude

    n = mixture["n"]
    cols = 2 + 2 * len(labels)
    fig, axes = plt.subplots(n, cols, figsize=(2.2 * cols, 2.2 * n), squeeze=False)

    def show(ax, img, title):
        ax.imshow(img, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=7)
        ax.axis("off")

    db = lambda w: 20 * np.log10(magnitude(w) + 1e-5)  # noqa: E731
    for k in range(n):
        who = f"person {k + 1} ({mixture['instruments'][k]})"
        show(axes[k, 0], db(inputs["mix"]), "mixture")
        show(axes[k, 1], db(inputs["refs"][k]), f"{who}: truth")
        for j, label in enumerate(labels):
            est, masks = outputs[j]
            show(axes[k, 2 + 2 * j], masks[k], f"{label}: mask (log-freq)")
            show(axes[k, 3 + 2 * j], db(est[k]), f"{label}: estimate")
    fig.suptitle(mixture["mixture_id"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_example_audio(mixture: dict, inputs: dict, outputs: list, labels: list[str], folder: Path) -> None:
    """mixture.wav, reference_<k>_<instrument>.wav and <system>_<k>_<instrument>.wav for one mixture."""
    folder.mkdir(parents=True, exist_ok=True)
    pcm = lambda w: (np.clip(w, -1, 1 - 1 / 32768) * 32768).astype(np.int16)  # noqa: E731
    write_pcm16(folder / "mixture.wav", pcm(inputs["mix"]), SAMPLE_RATE)
    for k in range(mixture["n"]):
        tag = f"{k + 1}_{mixture['instruments'][k]}"
        write_pcm16(folder / f"reference_{tag}.wav", pcm(inputs["refs"][k]), SAMPLE_RATE)
        for j, label in enumerate(labels):
            write_pcm16(folder / f"{label}_{tag}.wav", pcm(outputs[j][0][k]), SAMPLE_RATE)


def pick_examples(mixtures: list[dict], count: int) -> list[dict]:
    """``count`` mixtures to show, one per kind first (homo duet, hetero duet, real, ...)."""
    seen, picked = set(), []
    for m in mixtures:
        key = (m["kind"], m["n"], m["homo"])
        if key not in seen:
            seen.add(key)
            picked.append(m)
    rest = [m for m in mixtures if m not in picked]
    return (picked + rest)[:count]
