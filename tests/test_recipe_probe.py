"""scripts/recipe_probe.py: trains in-process on real shards and prints finite validation SDRs."""

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_probe_trains_and_scores_duets(tiny_shards):
    _, version = tiny_shards
    cmd = [sys.executable, str(ROOT / "scripts" / "recipe_probe.py"), str(version), "--preset", "tiny",
           "--steps", "2", "--every", "1", "--duets", "2", "--val-split", "train",
           "--set", "train.model=audio_only"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = re.findall(r"step +(\d+) +loss ([\d.]+) +val homo +(\S+) dB +hetero +(\S+) dB", proc.stdout)
    assert [int(s) for s, *_ in lines] == [1, 2]
    for _, loss, homo, hetero in lines:
        assert math.isfinite(float(loss)) and float(loss) > 0
        assert math.isfinite(float(homo)) or math.isfinite(float(hetero))
    mixture = dict(re.findall(r"mixture as the estimate, (\w+): (\S+) dB", proc.stdout))
    constant = dict(re.findall(r"constant mask 1/N \(mixture / N\), (\w+): (\S+) dB", proc.stdout))
    ibm = dict(re.findall(r"ideal binary mask, (\w+): (\S+) dB", proc.stdout))
    assert mixture and set(constant) == set(mixture) == set(ibm)
    for kind in mixture:  # halving the mixture removes half the other source's leak: a higher quick SDR
        assert float(constant[kind]) > float(mixture[kind])
        assert float(ibm[kind]) > float(constant[kind]) + 3.0  # the ideal mask separates


def test_probe_warms_up_the_motion_branch_first(tiny_shards):
    """... and, with train.ema_decay, scores the weight average begun with separation."""
    _, version = tiny_shards
    cmd = [sys.executable, str(ROOT / "scripts" / "recipe_probe.py"), str(version), "--preset", "tiny",
           "--steps", "1", "--every", "1", "--duets", "2", "--val-split", "train", "--motion-warmup", "2",
           "--set", "train.motion_aux=0.5", "--set", "train.motion_bands=8",
           "--set", "train.ema_decay=0.9"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warm = re.findall(r"motion warm-up step +(\d+) +envelope loss ([\d.]+)", proc.stdout)
    assert [int(s) for s, _ in warm] == [1, 2] and all(float(v) > 0 for _, v in warm)
    assert re.search(r"step +1 +loss [\d.]+ +val homo", proc.stdout)  # then the separation steps
    assert proc.stdout.index("motion warm-up step") < proc.stdout.index("val homo")
