"""Catalogs of the three input layouts, on the tiny benchmark and on real footage."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import shared_data
from pipeline import storage
from pipeline.sources import Item, catalog


def test_urmp_layout_of_the_benchmark(tiny_bench: Path):
    cat = catalog(str(tiny_bench))
    assert cat.kind == "urmp" and not cat.problems
    splits = json.loads((tiny_bench / "splits.json").read_text())
    assert sorted(i.item_id for i in cat.items) == sorted(n for v in splits.values() for n in v)
    for item in cat.items:
        assert item.item_id in splits[item.split]
        assert len(item.stems) == len(item.instruments) >= 1
        assert all((tiny_bench / s).is_file() for s in (item.video, *item.stems))
        assert item.keypoints == f"openpose/{item.item_id}" and item.key
        assert Item.from_row(item.to_row()) == item


def test_urmp_problems_and_content_key(tmp_path: Path, tiny_bench: Path):
    root = tmp_path / "urmp"
    shutil.copytree(tiny_bench, root, ignore=shutil.ignore_patterns("openpose"))
    first = catalog(str(root))
    assert all(i.keypoints == "" for i in first.items)  # no keypoints: the pose stage finds them
    victim = first.items[0]
    (root / victim.stems[0]).unlink()
    second = catalog(str(root))
    assert [p.path for p in second.problems] == [victim.video]
    assert "stem file missing" in second.problems[0].message
    other = first.items[1]
    (root / other.video).write_bytes((root / other.video).read_bytes() + b"\0")
    changed = {i.item_id: i.key for i in catalog(str(root)).items}
    assert changed[other.item_id] != other.key
    assert all(changed[i.item_id] == i.key for i in first.items[2:])


def test_music_layout_counts_missing_ids(tmp_path: Path):
    video = shared_data("raga_performance", "example_3people", "short_video.mp4")
    (tmp_path / "videos" / "erhu").mkdir(parents=True)
    shutil.copy(video, tmp_path / "videos" / "erhu" / "AbC123.mp4")
    doc = {"videos": {"erhu": ["AbC123", "gone_1"], "flute violin": ["gone_2"]}}
    (tmp_path / "MUSIC_solo_videos.json").write_text(json.dumps(doc))
    cat = catalog(str(tmp_path))
    assert cat.kind == "music"
    assert [(i.item_id, i.instruments, i.video) for i in cat.items] == [("AbC123", ("erhu",), "videos/erhu/AbC123.mp4")]
    assert sorted(p.message for p in cat.problems) == [
        "video gone_1 (erhu) not downloaded",
        "video gone_2 (flute violin) not downloaded",
    ]


def test_plain_folder_and_file_uris(tmp_path: Path):
    for name in ("example_3people", "example_1person"):
        shutil.copy(shared_data("raga_performance", name, "short_video.mp4"), tmp_path / f"{name}.mp4")
    (tmp_path / "readme.txt").write_text("not a video")
    for root in (str(tmp_path), f"file://{tmp_path}"):
        cat = catalog(root)
        assert cat.kind == "folder"
        assert [i.item_id for i in cat.items] == ["example_1person", "example_3people"]
        assert all(i.stems == () and i.split == "all" for i in cat.items)
    with storage.local_copy(storage.join(f"file://{tmp_path}", "readme.txt")) as local:
        assert local.read_text() == "not a video"


def test_missing_root_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        catalog(str(tmp_path / "nowhere"))
