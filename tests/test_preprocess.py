"""Preprocessing end to end through Ray Data on the tiny benchmark, incremental runs, bad inputs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from conftest import shared_data
from pipeline.config import load_config
from pipeline.preprocess import run_preprocess

READER = r"""
import json, sys
from math import gcd
import numpy as np, pyarrow.parquet as pq, soundfile as sf
from scipy.signal import resample_poly

folder, bench = sys.argv[1], sys.argv[2]
t = pq.read_table(f"{folder}/split=train")
mag = t["mix_mag"].combine_chunks().to_numpy_ndarray()
kp = t["keypoints"].combine_chunks().to_numpy_ndarray()
stems = t["stem_mag"].combine_chunks().to_numpy_ndarray()
row = 0
video, start = t["video"][row].as_py(), t["start_s"][row].as_py()
mix, rate = sf.read(f"{bench}/{video.replace('Vid_', 'AuMix_').replace('.mp4', '.wav')}", dtype="float32")
g = gcd(11025, rate)
mix = resample_poly(mix, 11025 // g, rate // g)
seg = mix[int(round(start * 11025)) : int(round(start * 11025)) + 65535]
x = np.pad(seg, 511, mode="reflect")
win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1022) / 1022)
frames = np.stack([x[i * 256 : i * 256 + 1022] * win for i in range(256)])
ref = np.abs(np.fft.rfft(frames, axis=1)).T
err = float(np.abs(mag[row].astype(np.float32) - ref).max() / ref.max())
print(json.dumps({"mag": mag.shape, "mag_dtype": str(mag.dtype), "kp": kp.shape, "stems": stems.shape,
                  "err": err, "n": t["num_sources"].to_pylist(), "pipeline_imported": "pipeline" in sys.modules}))
"""


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_tiny_benchmark_to_shards(tiny_shards, tiny_bench: Path):
    summary, folder = tiny_shards
    assert summary.videos == 7 and summary.errors == 0 and summary.clips >= 7
    doc = json.loads((folder / "_dataset.json").read_text())
    assert doc["schema_version"] == 1 and doc["counts"]["videos"] == 7 and doc["config"]["fps"] == 8
    splits = json.loads((tiny_bench / "splits.json").read_text())
    for split, names in splits.items():
        assert sorted(p.stem for p in (folder / f"split={split}").glob("*.parquet")) == sorted(names)
    t = pq.read_table(folder / "split=train")
    n = np.array(t["num_sources"].to_pylist())
    kp = t["keypoints"].combine_chunks().to_numpy_ndarray()
    seen = (kp[..., 2] > 0).any(axis=-1).mean(axis=-1)  # (rows, persons): share of frames with the person
    for row in range(len(n)):
        assert (seen[row, : n[row]] > 0.9).all() and (seen[row, n[row] :] == 0).all()
    assert all(len(c) == k and all(b[:2] == b"\xff\xd8" for b in c) for c, k in zip(t["crops"].to_pylist(), n))


def test_shards_read_with_plain_pyarrow(tiny_shards, tiny_bench: Path):
    _, folder = tiny_shards
    done = subprocess.run([sys.executable, "-c", READER, str(folder), str(tiny_bench)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert not out["pipeline_imported"]
    assert out["mag"][1:] == [512, 256] and out["mag_dtype"] == "float16"
    assert out["kp"][1:] == [5, 48, 61, 3] and out["stems"][1:] == [5, 512, 256]
    assert out["err"] < 0.01  # the stored spectrogram is the STFT of AuMix at that time


def test_rerun_writes_nothing_and_new_piece_adds_only_its_shard(tmp_path: Path, tiny_bench: Path, ray_local):
    cfg = load_config("tiny")
    bench = tmp_path / "bench"
    shutil.copytree(tiny_bench, bench)
    held_back = sorted(p.name for p in bench.iterdir() if p.name[0].isdigit())[-1]
    shutil.move(bench / held_back, tmp_path / held_back)
    first = run_preprocess(cfg, str(bench), str(tmp_path / "out"))
    folder = Path(first.version_dir)
    before = _files(folder)
    again = run_preprocess(cfg, str(bench), str(tmp_path / "out"))
    assert again.videos == 0 and again.skipped == 6 and _files(folder) == before
    shutil.move(tmp_path / held_back, bench / held_back)
    third = run_preprocess(cfg, str(bench), str(tmp_path / "out"))
    after = _files(folder)
    assert third.videos == 1
    new = {k for k in after if k not in before}
    assert [k for k in new if k.endswith(".parquet")] == [next(k for k in new if held_back in k)]
    assert all(after[k] == before[k] for k in before if k.endswith(".parquet"))
    other = run_preprocess(
        load_config("tiny", overrides=["preprocess.clip_hop_s=2.0"]), str(bench), str(tmp_path / "out")
    )
    assert other.version_dir != first.version_dir and _files(folder) == after  # new version beside the old


def _break(bench: Path, name: str, how: str) -> None:
    folder = bench / name
    video = next(folder.glob("Vid_*.mp4"))
    if how == "zero-byte":
        video.write_bytes(b"")
    elif how == "not-a-video":
        video.write_text("this is a text file\n" * 50)
    elif how == "silent-stem":
        stem = next(folder.glob("AuSep_1_*.wav"))
        data, rate = sf.read(stem, dtype="int16")
        sf.write(stem, np.zeros_like(data), rate, subtype="PCM_16")
    else:
        for f in (bench / "openpose" / name).glob("*.json"):
            doc = json.loads(f.read_text())
            doc["people"] = [] if how == "no-person" else doc["people"][:1]
            f.write_text(json.dumps(doc))


def test_bad_inputs_become_error_rows(tmp_path: Path, tiny_bench: Path, ray_local):
    bench = tmp_path / "bench"
    shutil.copytree(tiny_bench, bench)
    names = sorted(p.name for p in bench.iterdir() if p.name[0].isdigit())
    duet = next(n for n in names if n.count("_") == 3)
    solos = [n for n in names if n.count("_") == 2]
    broken = {solos[0]: "zero-byte", solos[1]: "not-a-video", duet: "fewer-persons", solos[2]: "no-person"}
    trio = next(n for n in names if n.count("_") == 4)
    broken[trio] = "silent-stem"
    for name, how in broken.items():
        _break(bench, name, how)
    summary = run_preprocess(load_config("tiny"), str(bench), str(tmp_path / "out"))
    folder = Path(summary.version_dir)
    errors = pq.read_table(next((folder / "errors").glob("*.parquet"))).to_pylist()
    by_piece = {e["path"].split("/")[0]: e for e in errors}
    assert set(by_piece) == set(broken) and summary.errors == len(broken)
    assert by_piece[solos[0]]["stage"] == "decode" and "not a readable video" in by_piece[solos[0]]["message"]
    assert by_piece[solos[1]]["stage"] == "decode"
    assert "found 1 persons, expected 2" in by_piece[duet]["message"]
    assert by_piece[solos[2]]["message"] == "no person found"
    assert "is silent" in by_piece[trio]["message"] and "AuSep_1" in by_piece[trio]["message"]
    written = sorted(p.stem for p in folder.rglob("*.parquet") if p.parent.name != "errors")
    assert written == sorted(set(names) - set(broken))  # the rest went on


def test_folder_videos_short_and_silent_ones(tmp_path: Path, ray_local):
    """Plain videos (MediaPipe finds the people): no audio track, too short, unreadable."""
    src = tmp_path / "videos"
    src.mkdir()
    shutil.copy(shared_data("raga_performance", "example_1person", "short_video.mp4"), src / "no_sound.mp4")
    (src / "empty.mp4").write_bytes(b"")
    three_people = shared_data("raga_performance", "example_3people", "short_video.mp4")
    cut = ["ffmpeg", "-loglevel", "error", "-i", str(three_people), "-t", "3", "-c", "copy", str(src / "short.mp4")]
    subprocess.run(cut, check=True)
    cfg = load_config("tiny", overrides=["preprocess.decode_width=320"])
    summary = run_preprocess(cfg, f"file://{src}", f"file://{tmp_path / 'out'}")  # URIs: the object-store path
    assert summary.version_dir.startswith("file://")
    errors = pq.read_table(next((tmp_path / "out").glob("v1-*/errors/*.parquet"))).to_pylist()
    by_file = {e["path"]: e for e in errors}
    assert by_file["no_sound.mp4"]["stage"] == "audio" and "no audio track" in by_file["no_sound.mp4"]["message"]
    assert by_file["empty.mp4"]["stage"] == "decode"
    assert by_file["short.mp4"]["stage"] == "clips" and "shorter than one clip" in by_file["short.mp4"]["message"]
    assert summary.clips == 0 and summary.videos == 3
