from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config, with_overrides, write_resolved
from pipeline.errors import UserError


def test_defaults_and_presets_layer():
    default = load_config()
    tiny = load_config("tiny")
    assert default.synth.solos == 60 and default.synth.workers == 2
    assert tiny.synth.solos == 3 and tiny.synth.workers == 0
    # keys the preset does not name keep their defaults
    assert tiny.synth.sample_rate == default.synth.sample_rate == 44100


def test_set_overrides_are_type_checked():
    cfg = load_config("tiny", overrides=["synth.duets=5", "synth.jitter_px=2", "synth.soundfont=/x.sf2"])
    assert cfg.synth.duets == 5
    assert cfg.synth.jitter_px == 2.0 and isinstance(cfg.synth.jitter_px, float)
    assert cfg.synth.soundfont == "/x.sf2"
    with pytest.raises(UserError, match=r"synth\.duets must be an integer"):
        load_config(overrides=["synth.duets=many"])
    with pytest.raises(UserError, match=r"synth\.duets must be an integer"):
        load_config(overrides=["synth.duets=2.5"])
    with pytest.raises(UserError, match=r"synth\.jitter_px must be a number"):
        load_config(overrides=["synth.jitter_px=true"])


def test_unknown_keys_are_named():
    with pytest.raises(UserError, match="'bogus'"):
        load_config(overrides=["synth.bogus=1"])
    with pytest.raises(UserError, match="'nosection'"):
        load_config(overrides=["nosection.key=1"])
    with pytest.raises(UserError, match="section.key=value"):
        load_config(overrides=["duets=3"])


def test_unknown_preset_and_bad_files(tmp_path: Path):
    with pytest.raises(UserError, match="unknown preset 'huge'"):
        load_config("huge")
    with pytest.raises(UserError, match="cannot read config file"):
        load_config(files=[tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("synth: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(files=[bad])


def test_user_file_then_set(tmp_path: Path):
    f = tmp_path / "mine.yaml"
    f.write_text("synth:\n  trios: 9\n  seed: 4\n")
    cfg = load_config("tiny", files=[f], overrides=["synth.seed=5"])
    assert cfg.synth.trios == 9 and cfg.synth.seed == 5  # --set wins over the file


def test_resolved_config_round_trips(tmp_path: Path):
    cfg = load_config("tiny", overrides=["synth.seed=11"])
    path = write_resolved(cfg, tmp_path / "out", extra={"code_version": "x"})
    doc = yaml.safe_load(path.read_text())
    assert doc["code_version"] == "x" and doc["synth"]["seed"] == 11
    doc.pop("code_version")
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(doc))
    assert load_config(files=[again]) == cfg
    assert with_overrides(cfg, ["synth.seed=12"]).synth.seed == 12
    assert not list((tmp_path / "out").glob(".*tmp"))  # written then renamed
