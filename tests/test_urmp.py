import pytest

from pipeline.urmp import Piece, parse_piece


def test_piece_names_follow_urmp():
    p = Piece(3, "Dance", ("fl", "cl"))
    assert p.name == "03_Dance_fl_cl"
    assert p.video == "Vid_03_Dance_fl_cl.mp4"
    assert p.mix == "AuMix_03_Dance_fl_cl.wav"
    assert p.score == "Sco_03_Dance_fl_cl.mid"
    assert p.stem(2) == "AuSep_2_cl_03_Dance.wav"
    assert p.notes(1) == "Notes_1_fl_03_Dance.txt"
    assert p.keypoints(7) == "Vid_03_Dance_fl_cl_000000000007_keypoints.json"


@pytest.mark.parametrize("name", ["01_Jupiter_vn_vc", "44_K515_vn_vn_va_va_vc", "120_Aria_tba"])
def test_parse_round_trip(name):
    assert parse_piece(name).name == name


@pytest.mark.parametrize("name", ["1_Jupiter_vn", "01_Jupiter", "01_Jupiter_xx", "01_Ju_piter_vn", "notes.txt"])
def test_parse_rejects_non_pieces(name):
    with pytest.raises(ValueError, match="URMP|unknown instrument"):
        parse_piece(name)
