"""scripts/motion_probe.py: the linear check of how much keypoints tell about a person's sound."""

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "motion_probe.py"


def _module():
    spec = importlib.util.spec_from_file_location("motion_probe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ridge_r2_recovers_the_explained_variance():
    mp = _module()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 5))
    signal = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0])  # variance 5.25
    y = np.c_[signal + rng.normal(size=4000) * np.sqrt(5.25), rng.normal(size=4000)]  # half explained; none
    r2 = mp.ridge_r2(x[:3000], y[:3000], x[3000:], y[3000:], lam=1.0)
    assert abs(r2[0] - 0.5) < 0.05
    assert abs(r2[1]) < 0.02


def test_sound_targets_follow_the_wave():
    mp = _module()
    t = np.arange(11025 * 2) / 11025
    tone = np.sin(2 * np.pi * 440 * t) * (t >= 1.0)  # silent for a second, then A4
    env, peak, loud = mp.sound_targets(torch.from_numpy(tone * 20000)[None], frames=16, bands=8)
    assert env.shape == (16, 8) and peak.shape == (16,) and loud.shape == (16,)
    assert loud[:7].sum() == 0 and loud[9:].all()  # loud only once the tone plays
    assert env[12].max() > env[3].max() + 5  # the envelope rises by orders of magnitude
    assert len(set(peak[loud].tolist())) == 1  # one dominant bin while the tone holds


def test_probe_runs_on_real_shards(tiny_shards):
    _, version = tiny_shards
    cmd = [sys.executable, str(SCRIPT), str(version), "--preset", "tiny", "--test-split", "train"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mean = float(re.search(r"mean over bands: (\S+)", proc.stdout).group(1))
    alone, both = map(float, re.search(r"instrument alone (\S+), instrument \+ keypoints (\S+)", proc.stdout).groups())
    assert math.isfinite(mean) and 0 < mean <= 1  # scored on the data it was fitted on: above the mean's 0
    assert both >= alone - 1e-6  # more features cannot fit the fit set worse
