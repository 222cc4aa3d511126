"""The separation quality bar, read from an evaluation summary (``summary.json``).

The bar (on the test split of the benchmark the models were trained on):

- homo duets: Music Gesture's mean SDR ≥ ``audio_only`` + 3 dB and ≥ ``sound_of_pixels`` + 2 dB;
- hetero duets: Music Gesture's mean SDR ≥ ``sound_of_pixels``'s.

``python scripts/quality_bar.py RUN_DIR`` prints the table, the checks and the
training times of a main-job run folder, and writes them into BENCHMARKS.md.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

from pipeline.evalreport import KIND_NAMES, headline_markdown

TARGET = "music_gesture"
BARS = [  # (column, baseline, margin in dB)
    ("duets homo", "audio_only", 3.0),
    ("duets homo", "sound_of_pixels", 2.0),
    ("duets hetero", "sound_of_pixels", 0.0),
]


@dataclass(frozen=True)
class Check:
    """One claim of the bar and whether the numbers meet it."""

    column: str
    baseline: str
    margin: float
    gap: float | None  # TARGET's mean SDR minus the baseline's (dB); None when a number is missing

    @property
    def met(self) -> bool:
        return self.gap is not None and self.gap >= self.margin

    def line(self) -> str:
        gap = "n/a" if self.gap is None else f"{self.gap:+.2f} dB"
        verdict = "met" if self.met else "NOT met"
        return f"{self.column}: {TARGET} − {self.baseline} = {gap} (target ≥ {self.margin:+.1f} dB): {verdict}"


def check_bar(summary: dict) -> list[Check]:
    """Every claim of the bar against an evaluation summary."""
    head = summary["headline"]
    checks = []
    for column, baseline, margin in BARS:
        a = head.get(TARGET, {}).get(column)
        b = head.get(baseline, {}).get(column)
        checks.append(Check(column, baseline, margin, None if a is None or b is None else a - b))
    return checks


def report(run_dir: Path) -> str:
    """The quality section for BENCHMARKS.md: table, checks, training times, machine."""
    summary = json.loads((run_dir / "evaluation" / "summary.json").read_text())
    lines = [headline_markdown(summary), "", summary["note"], ""]
    lines += [f"- {c.line()}" for c in check_bar(summary)]
    split = split_markdown(summary)
    if split:
        lines += ["", "The bar's columns by kind of mixture (mean SDR, dB; the bar reads the whole column):", "", split]
    lines += ["", "Training (2 DDP workers):"]
    for path in sorted((run_dir / "train").glob("*/train_summary.json")):
        t = json.loads(path.read_text())
        lines.append(f"- {path.parent.name}: {t['epochs']} epochs, {t['steps']} steps, {t['seconds'] / 60:.0f} min")
    lines += ["", f"Machine: {platform.machine()}, {_cpus()} CPU cores, Python {platform.python_version()}, no GPU."]
    return "\n".join(lines)


def split_markdown(summary: dict) -> str:
    """The duet columns split into mix-and-separate and real mixtures: systems × parts (empty for old summaries)."""
    columns = list(dict.fromkeys(column for column, _, _ in BARS))  # each once, in the bar's order
    parts = [f"{column}, {kind}" for column in columns for kind in KIND_NAMES.values()]
    cell = {(r["group"], r["system"]): (r["sdr_mean"], r["sources"]) for r in summary.get("table", [])}
    if not any(group == parts[0] for group, _ in cell):
        return ""
    head = [f"{p} ({cell.get((p, TARGET), (None, 0))[1]} sources)" for p in parts]
    lines = ["| system | " + " | ".join(head) + " |", "|---|" + "---:|" * len(parts)]
    for system in summary["systems"]:
        values = [cell.get((p, system), (None, 0))[0] for p in parts]
        lines.append(f"| {system} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_section(markdown_file: Path, body: str, name: str = "quality") -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = markdown_file.read_text() if markdown_file.is_file() else ""
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    tmp = markdown_file.with_name(f".{markdown_file.name}.tmp")
    tmp.write_text(text)
    tmp.replace(markdown_file)
