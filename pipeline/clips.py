"""Cutting a processed video into clips: audio windows, spectrograms, keypoints, appearance crops.

Plain functions on numpy arrays; the preprocessing stage calls them per video.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from pipeline import shards
from pipeline.audio import CLIP_SAMPLES, SAMPLE_RATE, magnitude
from pipeline.pose import layout
from pipeline.sources import Item


def clip_starts(duration_s: float, hop_s: float) -> np.ndarray:
    """Start times of the clips that fit in ``duration_s``, every ``hop_s`` seconds from 0."""
    last = duration_s - shards.CLIP_SECONDS
    if last < -1e-9:
        return np.zeros(0)
    return np.arange(0.0, last + 1e-9, hop_s)


def to_pcm(wave: np.ndarray) -> np.ndarray:
    """Float waveform → int16 PCM as stored (clipped to the int16 range)."""
    return np.clip(np.round(wave * shards.PCM_SCALE), -32768, 32767).astype(np.int16)


def window(wave: np.ndarray, start_s: float) -> np.ndarray:
    """The clip's 65535 samples starting at ``start_s`` (zero-padded past the end)."""
    a = int(round(start_s * SAMPLE_RATE))
    seg = wave[..., a : a + CLIP_SAMPLES]
    pad = CLIP_SAMPLES - seg.shape[-1]
    return np.pad(seg, [(0, 0)] * (seg.ndim - 1) + [(0, pad)]) if pad > 0 else seg


def frame_slice(start_s: float, fps: int) -> slice:
    """Which sampled video frames (at ``fps``) belong to the clip starting at ``start_s``."""
    first = int(round(start_s * fps))
    return slice(first, first + shards.CLIP_VIDEO_FRAMES)


def encode_crop(frame: np.ndarray, person: np.ndarray, scale: float, size: int) -> bytes:
    """JPEG of the square around one person's found joints (10% margin), ``size`` x ``size``.

    ``frame`` is the decoded (possibly resized) RGB frame; ``person`` is ``(61, 3)``
    in original pixels, ``scale`` = decoded width / original width. An empty
    crop (no joint found) is a grey square.
    """
    box = layout.bounding_box(person)
    h, w = frame.shape[:2]
    if box is None:
        crop = np.full((size, size, 3), 127, np.uint8)
    else:
        cx, cy = (box[:2] + box[2:]) / 2 * scale
        half = max(box[2] - box[0], box[3] - box[1]) * scale * 0.55 + 2
        x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
        x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
        crop = frame[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else np.full((size, size, 3), 127, np.uint8)
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def make_clips(
    item: Item,
    persons: np.ndarray,
    mix: np.ndarray,
    stems: np.ndarray | None,
    keyframes: list[np.ndarray],
    frame_size: tuple[int, int],
    fps: int,
    hop_s: float,
    crop_size: int,
) -> Iterator[dict]:
    """Shard rows for one video.

    ``persons`` ``(K, n_frames, 61, 3)`` in seating order; ``mix`` ``(samples,)``
    and ``stems`` ``(K, samples)`` at 11025 Hz (None without stems);
    ``keyframes[i]`` is the decoded frame at clip ``i``'s middle, for the crops.
    """
    width, height = frame_size
    K = persons.shape[0]
    duration = min(mix.shape[-1] / SAMPLE_RATE, persons.shape[1] / fps)
    for i, start in enumerate(clip_starts(duration, hop_s)):
        row = shards.empty_row()
        row["mix_wave"] = to_pcm(window(mix, start))
        row["mix_mag"] = magnitude(row["mix_wave"] / shards.PCM_SCALE).astype(np.float16)
        if stems is not None:
            row["stem_wave"][:K] = to_pcm(window(stems, start))
            row["stem_mag"][:K] = magnitude(row["stem_wave"][:K] / shards.PCM_SCALE).astype(np.float16)
        kp = persons[:, frame_slice(start, fps)]
        row["keypoints"][:K, : kp.shape[1]] = kp
        mid = persons[:, min(frame_slice(start, fps).start + shards.CLIP_VIDEO_FRAMES // 2, persons.shape[1] - 1)]
        scale = keyframes[i].shape[1] / width
        row |= {
            "clip_id": f"{item.item_id}@{int(round(start * 1000)):08d}",
            "item_id": item.item_id,
            "dataset": item.dataset,
            "split": item.split,
            "video": item.video,
            "start_s": float(start),
            "num_sources": K,
            "instruments": list(item.instruments) if item.instruments else [""] * K,
            "has_stems": stems is not None,
            "frame_width": width,
            "frame_height": height,
            "crops": [encode_crop(keyframes[i], mid[k], scale, crop_size) for k in range(K)],
        }
        yield row
