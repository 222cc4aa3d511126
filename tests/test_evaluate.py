"""Evaluation: mir_eval scoring of folders (real regression data), and the distributed stage on tiny shards."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline import shards
from pipeline.cli import main
from pipeline.config import with_overrides
from pipeline.evalreport import summarize
from pipeline.evaluate import IDEAL, MIXTURE, list_split, plan_mixtures, run_evaluate, run_scoring
from pipeline.scoring import bss_eval, score_folders
from tests.conftest import shared_data

METRICS = {"sdr": "Source to Distortion", "sir": "Source to Interference", "sar": "Source to Artifact"}


def _mir_eval_layout(tmp_path):
    """mir_eval's refNN/estNN folders as one reference and one estimate folder with a subfolder per mixture."""
    data = shared_data("mir_eval_separation")
    (tmp_path / "ref").mkdir()
    (tmp_path / "est").mkdir()
    names = []
    for ref in sorted(data.glob("ref*")):
        name = ref.name[3:]
        (tmp_path / "ref" / name).symlink_to(ref)
        (tmp_path / "est" / name).symlink_to(data / f"est{name}")
        names.append(name)
    return data, names


def test_score_reproduces_mir_eval_regression_data(tmp_path):
    data, names = _mir_eval_layout(tmp_path)
    out = tmp_path / "scores.json"
    assert main(["score", "--reference", str(tmp_path / "ref"), "--estimate", str(tmp_path / "est"),
                 "--permutation", "--output", str(out)]) == 0  # fmt: skip
    scores = json.loads(out.read_text())["mixtures"]
    assert sorted(scores) == names and len(names) == 8
    for name in names:
        expected = json.loads((data / f"output{name}.json").read_text())["Sources"]
        for key, title in METRICS.items():
            np.testing.assert_allclose(scores[name][key], expected[title], atol=0.01, err_msg=f"{name} {key}")
        perm = [int(p) for p in expected["Source permutation"]]
        assert scores[name]["estimates"] == [f"{p}.wav" for p in perm]
    # Matched by name instead, a mixture whose best permutation is not the identity scores lower.
    by_name = score_folders(tmp_path / "ref", tmp_path / "est", search=False).mixtures
    assert np.mean(by_name["02"]["sdr"]) < np.mean(scores["02"]["sdr"]) - 5
    assert by_name["01"]["sdr"] == pytest.approx(scores["01"]["sdr"], abs=1e-9)


def test_score_resamples_aligns_and_reports_what_it_cannot_score(tmp_path):
    data = shared_data("mir_eval_separation")
    ref, rate = sf.read(data / "ref01" / "0.wav")
    for d in ("ref/a", "est/a", "ref/b", "est/b", "ref/c", "est/c"):
        (tmp_path / d).mkdir(parents=True)
    for k in ("0", "1"):
        r, _ = sf.read(data / "ref01" / f"{k}.wav")
        e, _ = sf.read(data / "est01" / f"{k}.wav")
        sf.write(tmp_path / "ref" / "a" / f"{k}.wav", r, rate)
        sf.write(tmp_path / "est" / "a" / f"{k}.wav", e, rate)
        # b: the estimate at twice the rate and 100 samples too long
        from scipy.signal import resample_poly

        sf.write(tmp_path / "ref" / "b" / f"{k}.wav", r, rate)
        sf.write(tmp_path / "est" / "b" / f"{k}.wav", np.r_[resample_poly(e, 2, 1), np.zeros(100)], 2 * rate)
        # c: the second reference is silent
        sf.write(tmp_path / "ref" / "c" / f"{k}.wav", r * (k == "0"), rate)
        sf.write(tmp_path / "est" / "c" / f"{k}.wav", e, rate)
    (tmp_path / "ref" / "d").mkdir()
    sf.write(tmp_path / "ref" / "d" / "0.wav", ref, rate)  # no estimate folder
    s = score_folders(tmp_path / "ref", tmp_path / "est")
    assert sorted(s.mixtures) == ["a", "b"]
    np.testing.assert_allclose(s.mixtures["b"]["sdr"], s.mixtures["a"]["sdr"], atol=0.2)
    assert "silent reference" in s.excluded["c"] and "no estimate" in s.excluded["d"]
    assert "c" in s.table() and "not scored" in s.table()


def test_silent_estimate_is_scored_as_a_failure_not_an_exception():
    t = np.arange(4000) / 8000
    refs = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])
    s = bss_eval(refs, np.stack([refs[0], np.zeros_like(t)]), search=False)
    assert s.silent_estimates == 1 and s.sdr[0] > 30 and s.sdr[1] < 0


def test_mixture_plan_is_seeded_and_follows_the_rules(tiny_shards, tiny_config):
    _, version = tiny_shards
    sources, real = list_split(version, "test")
    cfg = with_overrides(tiny_config, ["evaluate.mixtures_per_group=5"]).evaluate
    plan = plan_mixtures(sources, real, cfg)
    assert plan == plan_mixtures(sources, real, cfg)
    assert {m["kind"] for m in plan} == {"mix", "real"}
    for m in plan:
        assert m["homo"] == (len(set(m["instruments"])) == 1) and m["n"] == len(m["members"])
        if m["kind"] == "mix":
            assert m["homo"] == ("homo" in m["mixture_id"])
            assert len({clip.split("@")[0] for _, clip, _ in m["members"]}) == m["n"]  # n different videos
    assert sum(m["kind"] == "real" for m in plan) == len(real) > 0


def test_evaluation_on_tiny_shards_serial_equals_parallel(tiny_shards, tiny_config, tiny_checkpoints, tmp_path):
    _, version = tiny_shards
    ckpts = [str(c) for c in tiny_checkpoints]
    serial_cfg = with_overrides(tiny_config, ["evaluate.workers=0"])
    mixtures, serial, labels = run_scoring(version, ckpts, serial_cfg.evaluate, progress=False)
    assert labels == ["music_gesture", "audio_only"] and len(mixtures) >= 3
    assert len(serial) == len(mixtures) * 4 and serial.scored.all()
    parallel_cfg = with_overrides(tiny_config, ["evaluate.workers=2", "evaluate.score_workers=2"])
    summary = run_evaluate(parallel_cfg, str(version), ckpts, str(tmp_path / "eval"), progress=False)
    parallel = pq.read_table(tmp_path / "eval" / "scores.parquet").to_pandas()
    assert list(parallel.mixture_id) == list(serial.mixture_id) and list(parallel.system) == list(serial.system)
    for a, b in zip(serial.sdr, parallel.sdr):
        np.testing.assert_allclose(a, b, atol=1e-3)
    # The ideal binary mask beats the mixture on every mixture.
    stats = {r["system"]: r["sdr_mean"] for r in summarize(serial, labels)["table"] if r["group"] == "all"}
    assert stats[IDEAL] > stats[MIXTURE] + 10
    report = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert report["headline"][IDEAL]["all"] == pytest.approx(stats[IDEAL], abs=1e-3)
    assert summary.mixtures == len(mixtures) and "ideal_binary_mask" in summary.table()
    assert (tmp_path / "eval" / "plots" / "sdr_distribution.png").stat().st_size > 1000
    wavs = sorted(p.name for p in (tmp_path / "eval" / "examples").glob("*/*.wav"))
    assert "mixture.wav" in wavs and any(w.startswith("music_gesture_1_") for w in wavs)


def test_silent_reference_is_counted_not_scored(tiny_shards, tiny_config, tiny_checkpoints, tmp_path):
    _, version = tiny_shards
    copy = tmp_path / "v"
    shutil.copytree(version, copy)
    # Silence person 1 of the first real duet clip in the test split.
    target = next(f for f in sorted((copy / "split=test").glob("*.parquet"))
                  if max(pq.read_table(f, columns=["num_sources"])["num_sources"].to_pylist()) >= 2)  # fmt: skip
    table = pq.read_table(target)
    stems = shards.read_column(table, "stem_wave").copy()
    stems[0, 0] = 0
    col = pa.FixedShapeTensorArray.from_numpy_ndarray(stems)
    pq.write_table(
        table.set_column(table.schema.get_field_index("stem_wave"), table.schema.field("stem_wave"), col), target
    )
    cfg = with_overrides(tiny_config, ["evaluate.workers=0"]).evaluate
    mixtures, df, labels = run_scoring(copy, [str(tiny_checkpoints[0])], cfg, progress=False)
    silent_clip = pq.read_table(target, columns=["clip_id"])["clip_id"][0].as_py()
    hit = df[df.clip_ids.map(lambda c: silent_clip in c)]
    assert len(hit) > 0 and not hit.scored.any() and hit.excluded.str.startswith("silent reference").all()
    summary = summarize(df, labels)
    assert summary["excluded_silent_reference"] == hit.mixture_id.nunique() >= 1
    assert df[~df.clip_ids.map(lambda c: silent_clip in c)].scored.all()
