"""The Parquet shards: every column's name, type, shape and unit, and how to read and write them.

This module is the only place that spells a column. One row is one clip (a
6-second window of one video). Per-person arrays are padded to
:data:`MAX_SOURCES` persons; ``num_sources`` says how many are real, in
seating order (left to right), and the padding is zero.

Tensors are Arrow's standard ``arrow.fixed_shape_tensor`` extension, so plain
pyarrow reads them back as numpy arrays without this package::

    import pyarrow.parquet as pq
    t = pq.read_table("shards/split=train/part-....parquet")
    mix = t["mix_mag"].combine_chunks().to_numpy_ndarray()   # (rows, 512, 256) float16

(pandas gives each cell as a flat array: ``np.stack(df.mix_mag).reshape(-1, 512, 256)``.)
Each field's metadata states its shape, dtype and unit; the schema metadata
holds the schema version.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.audio import CLIP_FRAMES, CLIP_SAMPLES, FREQ_BINS, SAMPLE_RATE
from pipeline.pose.layout import NUM_JOINTS

SCHEMA_VERSION = 1
MAX_SOURCES = 5  # URMP's largest ensemble is a quintet
CLIP_FPS = 8  # video frames per second kept in a clip (as in Sound of Pixels / Music Gesture)
CLIP_SECONDS = CLIP_SAMPLES / SAMPLE_RATE  # 5.944 s
CLIP_VIDEO_FRAMES = int(np.ceil(CLIP_SECONDS * CLIP_FPS))  # 48: frames at start + k / 8 s, k = 0..47
PCM_SCALE = 32768.0  # int16 waveform / PCM_SCALE = float waveform in [-1, 1)


@dataclass(frozen=True)
class Column:
    """One column: Arrow type, numpy shape and dtype of one cell (tensors), and what it means."""

    name: str
    type: pa.DataType
    doc: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None


def _tensor(dtype: pa.DataType, shape: tuple[int, ...]) -> pa.DataType:
    return pa.fixed_shape_tensor(dtype, shape)


P, T, J = MAX_SOURCES, CLIP_VIDEO_FRAMES, NUM_JOINTS
COLUMNS: tuple[Column, ...] = (
    Column("clip_id", pa.string(), "unique id: <item_id>@<start in ms, 8 digits>"),
    Column("item_id", pa.string(), "the video's id: URMP piece folder, MUSIC YouTube id, or file stem"),
    Column("dataset", pa.string(), "urmp | music | folder"),
    Column("split", pa.string(), "train | val | test | all"),
    Column("video", pa.string(), "path of the video, relative to the input root"),
    Column("start_s", pa.float64(), "clip start in the video, seconds"),
    Column("num_sources", pa.int8(), "persons (and stems, if any) in this clip, 1..5; the rest is padding"),
    Column("instruments", pa.list_(pa.string()), "instrument code per person, seating order ('' unknown)"),
    Column("has_stems", pa.bool_(), "true when stem_wave / stem_mag hold real stems"),
    Column("frame_width", pa.int32(), "width of the original video, pixels (keypoints are in these pixels)"),
    Column("frame_height", pa.int32(), "height of the original video, pixels"),
    Column("mix_wave", _tensor(pa.int16(), (CLIP_SAMPLES,)), "mixture, 11025 Hz mono PCM", (CLIP_SAMPLES,), "int16"),
    Column("stem_wave", _tensor(pa.int16(), (P, CLIP_SAMPLES)), "stems per person, PCM", (P, CLIP_SAMPLES), "int16"),
    Column(
        "mix_mag",
        _tensor(pa.float16(), (FREQ_BINS, CLIP_FRAMES)),
        "|STFT| of the mixture (n_fft 1022, hop 256)",
        (FREQ_BINS, CLIP_FRAMES),
        "float16",
    ),
    Column(
        "stem_mag",
        _tensor(pa.float16(), (P, FREQ_BINS, CLIP_FRAMES)),
        "|STFT| of each stem",
        (P, FREQ_BINS, CLIP_FRAMES),
        "float16",
    ),
    Column(
        "keypoints",
        _tensor(pa.float32(), (P, T, J, 3)),
        "per person, per frame at 8 fps: 61 joints (pipeline.pose.layout) x (x px, y px, confidence)",
        (P, T, J, 3),
        "float32",
    ),
    Column("crops", pa.list_(pa.binary()), "one JPEG appearance crop per person, seating order"),
)
COLUMN = {c.name: c for c in COLUMNS}


def schema() -> pa.Schema:
    """The Arrow schema of a shard, with shapes and meanings in the field metadata."""
    fields = []
    for c in COLUMNS:
        meta = {"doc": c.doc}
        if c.shape is not None:
            meta |= {"shape": json.dumps(c.shape), "dtype": c.dtype or ""}
        if c.name.endswith("_wave"):
            meta["unit"] = f"int16 PCM at {SAMPLE_RATE} Hz; divide by {PCM_SCALE:g} for [-1, 1)"
        fields.append(pa.field(c.name, c.type, nullable=False, metadata=meta))
    return pa.schema(fields, metadata={"schema_version": str(SCHEMA_VERSION), "producer": "music-gesture-pipeline"})


def empty_row() -> dict[str, Any]:
    """A row with every tensor zero-filled, to be filled in by the clip stage."""
    row: dict[str, Any] = {}
    for c in COLUMNS:
        if c.shape is not None:
            row[c.name] = np.zeros(c.shape, np.dtype(c.dtype))
    return row


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts of python values and numpy arrays) → an Arrow table of the shard schema.

    Raises ValueError naming the column when a value has the wrong shape.
    """
    arrays = []
    for c in COLUMNS:
        values = [r[c.name] for r in rows]
        if c.shape is not None:
            stacked = np.stack([np.asarray(v, np.dtype(c.dtype)) for v in values]) if values else None
            if stacked is None:
                arrays.append(pa.array([], type=c.type))
                continue
            if stacked.shape[1:] != c.shape:
                raise ValueError(f"column {c.name}: cell shape {stacked.shape[1:]}, expected {c.shape}")
            arrays.append(pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(stacked)))
        else:
            arrays.append(pa.array(values, type=c.type))
    return pa.Table.from_arrays(arrays, schema=schema())


class ShardWriter:
    """Write one shard in row groups as rows arrive; it appears at ``dest`` only when complete.

    Rows go to a local temporary file; :meth:`close` renames it into place (local
    ``dest``) or uploads it whole (object-store URI). zstd; no dictionary encoding
    for tensor columns (it inflates floats by about a third); row groups of 64 clips.
    """

    ROW_GROUP = 64

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self._fs, self._path = storage.resolve(dest)
        local = isinstance(self._fs, pafs.LocalFileSystem)
        folder = Path(self._path).parent if local else Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkstemp(prefix=f".{Path(self._path).name}.", suffix=".tmp", dir=folder)[1])
        dictionary = [c.name for c in COLUMNS if c.shape is None and c.name != "crops"]
        self._writer = pq.ParquetWriter(self._tmp, schema(), compression="zstd", use_dictionary=dictionary)
        self.rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (see :func:`to_table`)."""
        if rows:
            self._writer.write_table(to_table(rows), row_group_size=self.ROW_GROUP)
            self.rows += len(rows)

    def close(self) -> int:
        """Finish and publish the file; returns its size in bytes."""
        self._writer.close()
        size = self._tmp.stat().st_size
        if isinstance(self._fs, pafs.LocalFileSystem):
            os.replace(self._tmp, self._path)
        else:
            pafs.copy_files(str(self._tmp), self._path, destination_filesystem=self._fs)
            self._tmp.unlink()
        return size

    def abort(self) -> None:
        """Drop what was written; nothing appears at ``dest``."""
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_shard(table: pa.Table, path: Path) -> int:
    """Write a whole table as one shard (see :class:`ShardWriter`); returns its size in bytes."""
    writer = ShardWriter(str(path))
    writer._writer.write_table(table, row_group_size=ShardWriter.ROW_GROUP)
    return writer.close()


def read_column(table: pa.Table, name: str) -> np.ndarray:
    """A tensor column as one numpy array ``(rows, *shape)``."""
    return table[name].combine_chunks().to_numpy_ndarray()


def read_batch(table: pa.Table) -> dict[str, np.ndarray]:
    """Every column of ``table`` as Ray Data's numpy batches give it: tensors stacked, others as objects."""
    return {
        name: read_column(table, name)
        if name in COLUMN and COLUMN[name].shape
        else np.asarray(table[name].to_pylist(), dtype=object)
        for name in table.column_names
    }
