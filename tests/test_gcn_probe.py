"""scripts/gcn_probe.py: trains the motion branch alone on real shards and prints R² on held-out sources."""

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gcn_probe_trains_and_prints_r2(tiny_shards):
    _, version = tiny_shards
    cmd = [sys.executable, str(ROOT / "scripts" / "gcn_probe.py"), str(version), "--preset", "tiny",
           "--steps", "3", "--every", "1", "--batch", "4", "--val-split", "train",
           "--set", "train.gcn_partitions=spatial", "--set", "train.gcn_bones=true"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = re.findall(r"step +(\d+) +loss ([\d.]+) +val R² (\S+)", proc.stdout)
    assert [int(s) for s, *_ in lines] == [1, 2, 3]
    for _, loss, r2 in lines:
        assert math.isfinite(float(loss)) and float(loss) > 0
        assert math.isfinite(float(r2)) and float(r2) <= 1.0
    assert re.search(r"\d+ train / \d+ val sources, \d+ steps x \d+ bands", proc.stdout)
    full = int(re.search(r"(\d+) train / ", proc.stdout).group(1))
    # --train-fraction: a random part of the training sources (how much more data would help)
    half = subprocess.run([*cmd[:6], "1", *cmd[7:], "--train-fraction", "0.5"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)  # fmt: skip
    assert half.returncode == 0, half.stderr[-2000:]
    assert int(re.search(r"(\d+) train / ", half.stdout).group(1)) == max(1, round(full / 2)) < full
    bad = subprocess.run([*cmd, "--train-fraction", "0"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode != 0 and "--train-fraction must be in (0, 1]" in bad.stderr
