"""The shard schema: one module spells every column; plain pyarrow reads it back."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import shards


def _row(i: int, n: int) -> dict:
    rng = np.random.default_rng(i)
    row = shards.empty_row()
    row |= {
        "clip_id": f"01_Aria_vn@{i * 3000:08d}",
        "item_id": "01_Aria_vn",
        "dataset": "urmp",
        "split": "train",
        "video": "01_Aria_vn/Vid_01_Aria_vn.mp4",
        "start_s": i * 3.0,
        "num_sources": n,
        "instruments": ["vn"] * n,
        "has_stems": True,
        "frame_width": 640,
        "frame_height": 360,
        "crops": [b"\xff\xd8jpeg"] * n,
    }
    row["mix_mag"] = rng.random((512, 256)).astype(np.float16)
    row["keypoints"][:n] = rng.uniform(0, 600, (n, shards.CLIP_VIDEO_FRAMES, 61, 3))
    row["mix_wave"] = (rng.normal(0, 3000, 65535)).astype(np.int16)
    return row


def test_schema_states_shapes_and_version():
    s = shards.schema()
    assert s.metadata[b"schema_version"] == str(shards.SCHEMA_VERSION).encode()
    assert json.loads(s.field("stem_mag").metadata[b"shape"]) == [5, 512, 256]
    assert json.loads(s.field("keypoints").metadata[b"shape"]) == [5, 48, 61, 3]
    assert b"int16" in s.field("mix_wave").metadata[b"unit"]
    assert shards.CLIP_VIDEO_FRAMES == 48 and (shards.CLIP_VIDEO_FRAMES - 1) / 8 < shards.CLIP_SECONDS


def test_round_trip_with_plain_pyarrow(tmp_path):
    rows = [_row(i, n) for i, n in enumerate([1, 2, 3])]
    path = tmp_path / "split=train" / "part-0.parquet"
    size = shards.write_shard(shards.to_table(rows), path)
    assert size == path.stat().st_size and not list(path.parent.glob(".*"))
    table = pq.read_table(path)
    mix = table["mix_mag"].combine_chunks().to_numpy_ndarray()
    kp = table["keypoints"].combine_chunks().to_numpy_ndarray()
    assert mix.shape == (3, 512, 256) and mix.dtype == np.float16
    assert np.array_equal(mix[1], rows[1]["mix_mag"])
    assert kp.shape == (3, 5, 48, 61, 3) and np.array_equal(kp[2], rows[2]["keypoints"])
    assert (kp[0, 1:] == 0).all()  # padding persons are zero
    assert table["instruments"].to_pylist()[1] == ["vn", "vn"]
    assert np.array_equal(shards.read_column(table, "mix_wave")[0], rows[0]["mix_wave"])


def test_pandas_gets_flat_arrays_that_reshape(tmp_path):
    import pandas as pd

    path = tmp_path / "a.parquet"
    rows = [_row(i, 1) for i in range(2)]
    shards.write_shard(shards.to_table(rows), path)
    df = pd.read_parquet(path)
    mix = np.stack(df["mix_mag"]).reshape(-1, 512, 256)
    assert np.array_equal(mix[1], rows[1]["mix_mag"])


def test_wrong_shape_names_the_column():
    row = _row(0, 1)
    row["mix_mag"] = np.zeros((512, 255), np.float16)
    with pytest.raises(ValueError, match="column mix_mag"):
        shards.to_table([row])
