"""Separate a user's own video: one wav per musician, and a preview with who is who.

``python -m pipeline separate --video FILE --checkpoint CKPT --output DIR``:

1. poses: OpenPose JSON when given (``--keypoints``), else the configured
   backend on the decoded frames (mediapipe on a laptop, mmpose on a GPU);
2. tracking: every person present in at least ``preprocess.min_presence``
   of the frames is a musician, numbered left to right;
3. separation: the video's sound in consecutive 5.94 s windows (the last one
   zero-padded), each musician's keypoints and appearance crop from that
   window; the model's masks are made to add up to one across musicians, so
   the tracks add up to the mixture (nothing is lost or counted twice);
4. output: ``person<k>.wav`` per musician, ``mixture.wav``, and
   ``preview.mp4`` (the pose frame rate, the mixture as sound) with each
   musician's box labelled by their wav's file name.

Runs on one machine, no Ray: a single video is small work.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline import shards
from pipeline.audio import CLIP_SAMPLES, SAMPLE_RATE, write_pcm16
from pipeline.clips import encode_crop, frame_slice, to_pcm
from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.mixing import istft, masks_from_logits, model_input, stft
from pipeline.models.separators import is_permutation_invariant
from pipeline.models.spectral import unwarp
from pipeline.pose import layout
from pipeline.pose.backends import OpenPoseJSON
from pipeline.pose.tracking import track
from pipeline.video import VideoWriter, iter_frames, probe_video, read_audio

log = logging.getLogger(__name__)

COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


@dataclass(frozen=True)
class SeparateSummary:
    """What ``separate`` wrote."""

    output: str
    tracks: list[str]
    preview: str
    seconds: float
    audio_seconds: float

    def table(self) -> str:
        lines = [f"{len(self.tracks)} musicians, {self.audio_seconds:.1f} s of sound, {self.seconds:.0f} s"]
        lines += [f"  {t}" for t in self.tracks] + [f"  {self.preview}"]
        return "\n".join(lines)


def detect_musicians(video: Path, config: Config, keypoints: Path | None) -> np.ndarray:
    """Tracked persons ``(K, frames at preprocess.fps, 61, 3)``, left to right."""
    from pipeline.preprocess import _decode_size, make_backend
    from pipeline.sources import Item

    cfg = config.preprocess
    info = probe_video(video)
    item = Item(video.stem, "folder", "all", video.name, keypoints=str(keypoints.resolve()) if keypoints else "")
    backend = OpenPoseJSON(str(keypoints.resolve())) if keypoints else make_backend(cfg, item, str(video.parent), {})
    if not backend.needs_pixels:
        from pipeline.video import frame_indices

        detections = backend.detect_indices(frame_indices(info, cfg.fps))
    else:
        detections = []
        for _, frames in iter_frames(video, cfg.fps, _decode_size(info, cfg)):
            detections += backend.detect(frames, (info.width / frames.shape[2], info.height / frames.shape[1]))
            log.info("pose: %d frames", len(detections))
    try:
        persons = track(detections, cfg.min_presence)
    except ValueError as e:
        raise UserError(f"{video}: {e}") from None
    if len(persons) == 0:
        raise UserError(f"{video}: no musician found (nobody is seen in {cfg.min_presence:.0%} of the frames)")
    return persons


def _windows(n_samples: int) -> list[int]:
    return list(range(0, max(n_samples, 1), CLIP_SAMPLES))


def _window_keypoints(persons: np.ndarray, start_s: float, fps: int) -> np.ndarray:
    """(K, 48, 61, 3) for the window, the last frame repeated past the end of the video."""
    sl = frame_slice(start_s, fps)
    part = persons[:, sl.start : sl.stop]
    if part.shape[1] == 0:
        part = persons[:, -1:]
    pad = shards.CLIP_VIDEO_FRAMES - part.shape[1]
    return np.concatenate([part, np.repeat(part[:, -1:], pad, axis=1)], axis=1) if pad > 0 else part


def consistent_masks(masks: torch.Tensor) -> torch.Tensor:
    """Masks (K, F, T) scaled to add up to one in every bin (equal shares where all are ~0)."""
    total = masks.sum(dim=0, keepdim=True)
    k = masks.shape[0]
    return torch.where(total > 1e-6, masks / total.clamp(min=1e-6), torch.full_like(masks, 1.0 / k))


def run_separate(
    config: Config, video: Path, checkpoint: str, output: Path, keypoints: Path | None = None
) -> SeparateSummary:
    """Separate every musician of ``video`` with the model in ``checkpoint`` (see the module doc)."""
    from pipeline.train import decode_crop, model_from_checkpoint

    t0 = time.perf_counter()
    if not video.is_file():
        raise UserError(f"video not found: {video}")
    model, doc = model_from_checkpoint(checkpoint)
    if is_permutation_invariant(doc["model_name"]):
        raise UserError(f"{checkpoint} is an {doc['model_name']} model: it does not know who plays what; "
                        "use a visual model (music_gesture or sound_of_pixels)")  # fmt: skip
    if output.exists() and any(output.glob("person*.wav")):
        raise UserError(f"{output} already holds separated tracks; choose a new --output")
    fps, crop_size, mask_kind = config.preprocess.fps, doc["train_config"]["crop_size"], doc["train_config"]["mask"]
    info = probe_video(video)
    try:
        mix = read_audio(video, SAMPLE_RATE)
    except (ValueError, OSError) as e:
        raise UserError(f"{video}: cannot read its sound: {e}") from None
    persons = detect_musicians(video, config, keypoints)
    K = len(persons)
    log.info("%s: %d musicians, %.1f s", video.name, K, len(mix) / SAMPLE_RATE)
    starts = _windows(len(mix))
    mids = [min(int(((s / SAMPLE_RATE) + shards.CLIP_SECONDS / 2) * fps), persons.shape[1] - 1) for s in starts]
    output.mkdir(parents=True, exist_ok=True)
    names = [f"person{k + 1}.wav" for k in range(K)]
    crops = _preview_and_crops(video, info, persons, mids, names, output, config, mix)
    tracks = np.zeros((K, len(starts) * CLIP_SAMPLES), np.float32)
    for w, s in enumerate(starts):
        wave = np.zeros(CLIP_SAMPLES, np.float32)
        seg = mix[s : s + CLIP_SAMPLES]
        wave[: len(seg)] = seg
        kp = torch.from_numpy(_window_keypoints(persons, s / SAMPLE_RATE, fps)).float()[None]
        cr = np.stack([decode_crop(c, crop_size) for c in crops[w]])
        cr = torch.from_numpy(cr).float().permute(0, 3, 1, 2)[None] / 255.0
        x = torch.from_numpy(wave)[None]
        with torch.no_grad():
            spec = stft(x)
            logits = model(model_input(spec), kp, cr)[0]
            linear = consistent_masks(unwarp(masks_from_logits(logits, mask_kind)[:, None])[:, 0])
            tracks[:, s : s + CLIP_SAMPLES] = istft(spec * linear, CLIP_SAMPLES).numpy()
    tracks = tracks[:, : len(mix)]
    written = []
    for k in range(K):
        write_pcm16(output / names[k], to_pcm(tracks[k]), SAMPLE_RATE)
        written.append(str(output / names[k]))
    return SeparateSummary(str(output), written, str(output / "preview.mp4"), time.perf_counter() - t0,
                           len(mix) / SAMPLE_RATE)  # fmt: skip


def _preview_and_crops(video, info, persons, mids, names, output: Path, config: Config, mix) -> list[list[bytes]]:
    """Write preview.mp4 (boxes labelled with file names) and return each window's crops (JPEG per person)."""
    from pipeline.preprocess import _decode_size

    cfg = config.preprocess
    size = _decode_size(info, cfg)
    scale = size[0] / info.width
    write_pcm16(output / "mixture.wav", to_pcm(mix), SAMPLE_RATE)
    crops: list[list[bytes]] = [[] for _ in mids]
    wanted = {m: [i for i, x in enumerate(mids) if x == m] for m in set(mids)}
    tmp = output / ".preview.mp4.tmp.mp4"
    with VideoWriter(tmp, size[0] // 2 * 2, size[1] // 2 * 2, cfg.fps, audio=output / "mixture.wav") as writer:
        frame_no = 0
        for _, frames in iter_frames(video, cfg.fps, size):
            for frame in frames:
                f = min(frame_no, persons.shape[1] - 1)
                for w in wanted.get(frame_no, []):
                    crops[w] = [encode_crop(frame, persons[k, f], scale, cfg.crop_size) for k in range(len(persons))]
                writer.write(_draw_boxes(frame, persons[:, f], scale, names)[: size[1] // 2 * 2, : size[0] // 2 * 2])
                frame_no += 1
    tmp.replace(output / "preview.mp4")
    for w, c in enumerate(crops):  # a window past the last decoded frame takes the last crops
        if not c:
            crops[w] = crops[w - 1] if w else [encode_crop(np.zeros((8, 8, 3), np.uint8), persons[k, -1], scale, 8)
                                               for k in range(len(persons))]  # fmt: skip
    return crops


def _draw_boxes(frame: np.ndarray, people: np.ndarray, scale: float, names: list[str]) -> np.ndarray:
    out = np.ascontiguousarray(frame)
    for k, person in enumerate(people):
        box = layout.bounding_box(person)
        if box is None:
            continue
        x0, y0, x1, y1 = (box * scale).astype(int)
        colour = COLOURS[k % len(COLOURS)]
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        cv2.putText(out, names[k], (x0, max(y0 - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out
