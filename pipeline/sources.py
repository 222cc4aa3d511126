"""Catalogs of what to preprocess: URMP-layout folders, MUSIC JSON lists, plain folders of videos.

:func:`catalog` looks at an input root (local path or object-store URI) and
returns one :class:`Item` per video, plus a :class:`Problem` for anything that
cannot be used (a MUSIC id that was never downloaded, a URMP piece without its
video). Items carry a content key (sizes and modification times) so an
incremental run can tell what changed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

from pipeline import storage
from pipeline.urmp import parse_piece

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
SPLITS_FILE = "splits.json"
OPENPOSE_DIR = "openpose"


@dataclass(frozen=True)
class Item:
    """One video to preprocess, and what is known about it."""

    item_id: str
    dataset: str  # urmp | music | folder
    split: str
    video: str  # path relative to the root
    stems: tuple[str, ...] = ()  # relative paths of per-player audio, seating order
    instruments: tuple[str, ...] = ()  # per player ('' unknown); empty when the count is unknown
    keypoints: str = ""  # relative folder of OpenPose JSON for this video, if any
    mix: str = ""  # relative path of the mixture wav; "" means the video's own audio track
    key: str = ""  # content key: changes when any input file changes

    def to_row(self) -> dict:
        """As a plain dict (lists for tuples), for a Ray Data row."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @staticmethod
    def from_row(row: dict) -> Item:
        names = Item.__dataclass_fields__
        return Item(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Problem:
    """Something in the input that cannot be processed: where, at which stage, and why."""

    path: str
    stage: str
    message: str


@dataclass
class Catalog:
    """What :func:`catalog` found."""

    kind: str
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def catalog(root: str) -> Catalog:
    """Find every video under ``root`` and describe it; the layout is detected from the files."""
    files = storage.list_files(root)
    by_rel = {f.rel: f for f in files}
    if any(_is_urmp_video(f.rel) for f in files):
        return _urmp(root, by_rel)
    music_lists = [f.rel for f in files if f.rel.endswith(".json") and _is_music_list(root, f.rel)]
    if music_lists:
        return _music(root, by_rel, music_lists)
    return _folder(by_rel)


def _key(by_rel: dict, rels: list[str]) -> str:
    return ";".join(f"{r}:{by_rel[r].size}:{by_rel[r].mtime_ns}" for r in rels if r in by_rel)


def _is_urmp_video(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    if len(parts) < 2 or not parts[-1].startswith("Vid_"):
        return False
    try:
        return parts[-1] == parse_piece(parts[-2]).video
    except ValueError:
        return False


def _urmp(root: str, by_rel: dict) -> Catalog:
    out = Catalog("urmp")
    splits = _read_splits(root, by_rel)
    for rel in sorted(r for r in by_rel if _is_urmp_video(r)):
        folder = str(PurePosixPath(rel).parent)
        piece = parse_piece(PurePosixPath(folder).name)
        stems = [f"{folder}/{piece.stem(k)}" for k in range(1, len(piece.codes) + 1)]
        missing = [s for s in stems if s not in by_rel]
        if missing:
            out.problems.append(Problem(rel, "catalog", f"stem file missing: {missing[0]}"))
            continue
        kp = f"{OPENPOSE_DIR}/{piece.name}"
        mix = f"{folder}/{piece.mix}"
        kp_files = sorted(r for r in by_rel if r.startswith(kp + "/") and r.endswith("_keypoints.json"))
        key = _key(by_rel, [rel, *stems, mix]) + f";kp:{len(kp_files)}:{sum(by_rel[r].size for r in kp_files)}"
        out.items.append(
            Item(
                piece.name,
                "urmp",
                splits.get(piece.name, "all"),
                rel,
                stems=tuple(stems),
                instruments=piece.codes,
                keypoints=kp if kp_files else "",
                mix=mix if mix in by_rel else "",
                key=key,
            )
        )
    return out


def _read_splits(root: str, by_rel: dict) -> dict[str, str]:
    if SPLITS_FILE not in by_rel:
        return {}
    doc = json.loads(storage.read_text(storage.join(root, SPLITS_FILE)))
    return {name: split for split, names in doc.items() for name in names}


def _is_music_list(root: str, rel: str) -> bool:
    try:
        doc = json.loads(storage.read_text(storage.join(root, rel)))
    except (ValueError, OSError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("videos"), dict)


def _music(root: str, by_rel: dict, lists: list[str]) -> Catalog:
    """MUSIC / MUSIC-21: ``{"videos": {instrument(s): [youtube_id, ...]}}``; videos named by id."""
    out = Catalog("music")
    videos = defaultdict(list)
    for rel in by_rel:
        p = PurePosixPath(rel)
        if p.suffix.lower() in VIDEO_SUFFIXES:
            videos[p.stem].append(rel)
    seen = set()
    for list_rel in lists:
        doc = json.loads(storage.read_text(storage.join(root, list_rel)))
        for label, ids in sorted(doc["videos"].items()):
            instruments = tuple(label.split())  # duet lists name both instruments
            for yid in ids:
                if yid in seen:
                    continue
                seen.add(yid)
                if yid not in videos:
                    out.problems.append(
                        Problem(f"{list_rel}#{yid}", "catalog", f"video {yid} ({label}) not downloaded")
                    )
                    continue
                rel = sorted(videos[yid])[0]
                out.items.append(Item(yid, "music", "all", rel, instruments=instruments, key=_key(by_rel, [rel])))
    return out


def _folder(by_rel: dict) -> Catalog:
    """Any videos, no stems: for separation only; person count found by the pose stage."""
    out = Catalog("folder")
    for rel in sorted(by_rel):
        p = PurePosixPath(rel)
        if p.suffix.lower() in VIDEO_SUFFIXES:
            item_id = str(p.with_suffix("")).replace("/", "__")
            out.items.append(Item(item_id, "folder", "all", rel, key=_key(by_rel, [rel])))
    return out
