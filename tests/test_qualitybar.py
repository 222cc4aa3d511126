"""The quality bar's checks and the BENCHMARKS.md section writer."""

from __future__ import annotations

import pytest

from pipeline.qualitybar import check_bar, write_section


def _summary(mg_homo, ao_homo, sop_homo, mg_het, sop_het):
    cols = lambda homo, het: {"all": 0.0, "duets homo": homo, "duets hetero": het, "N=3": 0.0}  # noqa: E731
    return {"headline": {"music_gesture": cols(mg_homo, mg_het), "audio_only": cols(ao_homo, None),
                         "sound_of_pixels": cols(sop_homo, sop_het)}}  # fmt: skip


@pytest.mark.parametrize(
    ("numbers", "met"),
    [
        ((6.0, 3.0, 4.0, 5.0, 5.0), [True, True, True]),  # exactly on every margin
        ((5.9, 3.0, 4.0, 5.0, 5.1), [False, False, False]),
        ((9.0, 2.0, 8.0, 5.0, 4.0), [True, False, True]),
    ],
)
def test_bar_checks(numbers, met):
    checks = check_bar(_summary(*numbers))
    assert [c.met for c in checks] == met
    assert checks[0].gap == pytest.approx(numbers[0] - numbers[1])
    assert ("NOT met" in checks[1].line()) == (not met[1])


def test_missing_model_is_not_met():
    summary = _summary(6.0, 3.0, 4.0, 5.0, 5.0)
    del summary["headline"]["sound_of_pixels"]
    checks = check_bar(summary)
    assert [c.met for c in checks] == [True, False, False] and "n/a" in checks[2].line()


def test_write_section_replaces_only_its_block(tmp_path):
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n\nintro\n")
    write_section(md, "first")
    write_section(md, "second")
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n") and "second" in text and "first" not in text
    assert text.count("<!-- quality:start -->") == 1


def test_duet_columns_split_by_kind_of_mixture():
    """The summary splits each duet column into mix-and-separate and real mixtures; the bar's column holds both."""
    import pandas as pd

    from pipeline.evalreport import summarize
    from pipeline.qualitybar import split_markdown

    def row(mid, kind, homo, system, sdr):
        return {"mixture_id": mid, "kind": kind, "n": 2, "homo": homo, "instruments": ["vn", "vn" if homo else "fl"],
                "system": system, "scored": True, "excluded": "", "sdr": sdr, "sir": sdr, "sar": sdr,
                "silent_estimates": 0}  # fmt: skip

    rows = []
    systems = [("music_gesture", 1.0, 7.0), ("mixture", 0.0, 1.0), ("ideal_binary_mask", 20.0, 22.0)]
    for system, mix_sdr, real_sdr in systems:
        rows += [row("m0", "mix", True, system, [mix_sdr, mix_sdr + 2]), row("m1", "mix", True, system, [mix_sdr] * 2)]
        rows += [row("r0", "real", True, system, [real_sdr] * 2), row("h0", "mix", False, system, [5.0, 5.0])]
    summary = summarize(pd.DataFrame(rows), ["music_gesture"])
    cell = {(r["group"], r["system"]): (r["sdr_mean"], r["sources"]) for r in summary["table"]}
    assert cell["duets homo, mix-and-separate", "music_gesture"] == (pytest.approx(1.5), 4)
    assert cell["duets homo, real", "music_gesture"] == (pytest.approx(7.0), 2)
    assert summary["headline"]["music_gesture"]["duets homo"] == pytest.approx((1 + 3 + 1 + 1 + 7 + 7) / 6)
    assert cell["duets hetero, real", "music_gesture"] == (None, 0)
    table = split_markdown(summary)
    assert "duets homo, mix-and-separate (4 sources)" in table and "duets homo, real (2 sources)" in table
    assert "| music_gesture | 1.50 | 7.00 | 5.00 | – |" in table
    assert split_markdown({"systems": [], "table": [], "headline": {}}) == ""
