import numpy as np
import pytest

from pipeline.instruments import CODES, INSTRUMENTS, fit_to_range
from pipeline.synth.music import Note, Part, _distinct_rhythms, choose_codes, corpus_excerpt, generated_score


def test_urmp_codes_and_programs():
    assert set(CODES) == {"bn", "cl", "db", "fl", "hn", "ob", "sax", "tba", "tbn", "tpt", "va", "vc", "vn"}
    assert INSTRUMENTS["vn"].program == 40 and INSTRUMENTS["tpt"].program == 56
    assert all(i.low < i.high for i in INSTRUMENTS.values())


def test_fit_to_range_moves_by_octaves():
    assert fit_to_range([40, 45, 47], "vn") == 24  # a bass line moved up two octaves for a violin
    assert fit_to_range([60, 64], "fl") == 0


def test_choose_codes():
    rng = np.random.default_rng(1)
    homo = choose_codes(rng, 2, homo=True)
    assert homo[0] == homo[1]
    hetero = choose_codes(rng, 4, homo=False)
    assert len(set(hetero)) == 4


@pytest.mark.parametrize("seed", range(4))
def test_corpus_excerpt_is_playable(seed):
    rng = np.random.default_rng(seed)
    score = corpus_excerpt(rng, ("vn", "vc"), 10.0)
    assert score is not None and score.source.startswith("music21:")
    for part in score.parts:
        inst = INSTRUMENTS[part.code]
        assert len(part.notes) >= 4
        assert all(inst.low <= n.pitch <= inst.high for n in part.notes)
        assert all(0 <= n.start < n.end <= 10.0 - 0.5 + 1e-9 for n in part.notes)
        assert all(a.start <= b.start for a, b in zip(part.notes, part.notes[1:]))
    assert _distinct_rhythms(list(score.parts))


def test_generated_duet_of_one_instrument_differs_in_rhythm():
    score = generated_score(np.random.default_rng(3), ("cl", "cl"), 12.0)
    a, b = ({round(n.start, 2) for n in p.notes} for p in score.parts)
    assert len(a ^ b) > 0.5 * len(a | b)
    assert all(1 <= n.velocity <= 127 for p in score.parts for n in p.notes)


def test_distinct_rhythms_rejects_lockstep():
    notes = tuple(Note(i * 0.5, i * 0.5 + 0.4, 60, 80) for i in range(8))
    same = [Part("vn", notes), Part("va", notes)]
    assert not _distinct_rhythms(same)
    offbeat = tuple(Note(n.start + 0.25, n.end + 0.25, 60, 80) for n in notes)
    assert _distinct_rhythms([Part("vn", notes), Part("va", offbeat)])


def test_same_generator_same_music():
    one = generated_score(np.random.default_rng(9), ("fl", "bn"), 8.0)
    two = generated_score(np.random.default_rng(9), ("fl", "bn"), 8.0)
    assert one == two
