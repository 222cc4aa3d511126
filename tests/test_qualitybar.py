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
