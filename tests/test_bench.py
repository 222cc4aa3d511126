"""``bench``: every section measures something finite, the table and files are written, nothing else is touched."""

import json
import math

import pytest

from pipeline.bench import SECTIONS, Row, run_bench, table, write_markdown


def test_row_statistics_and_targets():
    r = Row("loader", "x", [3.0, 1.0, 2.0, float("nan")], "ratio", ">= 0.9")
    assert r.stats == (1.0, 2.0, 3.0) and r.met is True
    assert Row("loader", "x", [0.5], "ratio", ">= 0.9").met is False
    assert Row("memory", "x", [1.05], "ratio", "<= 1.1").met is True
    assert Row("pose", "x", [5.0], "frames/s").met is None
    assert "| 4 | x | 1 | 2 | 3 | ratio | >= 0.9 | yes |" in table([r])


def test_bench_section_replaces_only_itself(tmp_path):
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n\nintro\n\n<!-- quality:start -->\nQ\n<!-- quality:end -->\n\ntail\n")

    class Result:
        def __init__(self, text):
            self.text = text

        def markdown(self):
            return self.text

    write_markdown(md, Result("first"))
    write_markdown(md, Result("second"))
    text = md.read_text()
    assert text.count("<!-- bench:start -->") == 1 and "second" in text and "first" not in text
    assert "<!-- quality:start -->\nQ\n<!-- quality:end -->" in text and "intro" in text and "tail" in text


def test_quick_bench_runs_every_section(tiny_bench, ray_local, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- quality:start -->\n| system | all |\n|---|---:|\n| mg | 1.0 |\n"
                  "<!-- quality:end -->\n")  # fmt: skip
    before = sorted(p.relative_to(tiny_bench) for p in tiny_bench.rglob("*"))
    result = run_bench(tmp_path / "out", quick=True, benchmarks_md=md, videos=tiny_bench)
    assert sorted(p.relative_to(tiny_bench) for p in tiny_bench.rglob("*")) == before  # the input is only read

    sections = {r.section for r in result.rows}
    assert sections == set(SECTIONS) - {"quality"}  # quality is copied in, not measured
    for r in result.rows:
        if r.section == "pose" and r.note.startswith("unavailable"):
            pytest.fail(f"pose backend {r.measure}: {r.note}")
        lo, med, hi = r.stats
        assert math.isfinite(med) and lo <= med <= hi, r
        assert all(v > 0 for v in r.values), r
    by = {r.measure: r for r in result.rows}
    # ratios are the quotients of the figures they compare, repeat by repeat
    assert by["preprocess / floor"].values[0] == pytest.approx(
        by["preprocess wall time (7 videos, OpenPose JSON)"].values[0]
        / by["decode-only floor (frames at 8 fps + audio)"].values[0]
    )
    assert by["our bytes / SoP bytes"].values[0] == pytest.approx(
        by["our shards"].values[0] / by["SoP layout"].values[0]
    )
    for name, figure in (("loader / memory", "steps/s, Parquet → Ray Data → model"),
                         ("materialized / memory", "steps/s, Ray Data materialized once")):  # fmt: skip
        assert by[name].values[0] == pytest.approx(
            by[figure].values[0] / by["steps/s, same batches from memory"].values[0]
        )
    pose = [r for r in result.rows if r.section == "pose"]
    assert len(pose) == 9  # 3 backends x batch 1 / 8 / 32

    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert len(doc["rows"]) == len(result.rows) and doc["machine"]
    text = md.read_text()
    assert "<!-- bench:start -->" in text and "| mg | 1.0 |" in text  # the quality table, kept and copied in
    assert text.split("<!-- bench:start -->")[1].count("| mg | 1.0 |") == 1
    assert "python -m pipeline bench --quick" in text
    assert not list((tmp_path / "out").glob("work-*"))  # scratch space removed
