"""Rendering one benchmark piece: music → stems and mix → motion → video and OpenPose JSON.

:func:`render_piece` is a pure function of the piece's spec and the config
(the same seed gives byte-identical audio and keypoints); it runs in this
process or as a Ray task.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.audio import rms_envelope, write_pcm16
from pipeline.config import SynthConfig
from pipeline.errors import UserError
from pipeline.pose.openpose import round_keypoints, write_frame
from pipeline.synth import draw, motion
from pipeline.synth.music import Score, choose_codes, make_score
from pipeline.synth.sound import mix_stems, render_part, score_midi
from pipeline.urmp import Piece
from pipeline.video import VideoWriter

log = logging.getLogger(__name__)

OPENPOSE_DIR = "openpose"


@dataclass(frozen=True)
class PieceSpec:
    """What the plan fixes about a piece before it is rendered."""

    number: int
    players: int
    homo: bool
    from_corpus: bool
    duration: float
    train_only: bool = False  # an extra training piece (synth.extra_train_*): never in val or test


@dataclass(frozen=True)
class PieceInfo:
    """What was rendered: written to ``benchmark.json`` for every piece."""

    name: str
    number: int
    title: str
    source: str
    codes: tuple[str, ...]
    homo: bool
    duration: float
    frames: int
    lags: tuple[int, ...]
    notes: tuple[int, ...]

    def to_json(self) -> dict:
        return asdict(self)


def render_piece(spec: PieceSpec, cfg: SynthConfig, out: Path, soundfont: Path) -> PieceInfo:
    """Render a piece into ``out/<piece>/`` and ``out/openpose/<piece>/``.

    Everything is written under ``out/.partial/`` first and renamed into place at
    the end, so a piece folder that exists is complete. A piece already there
    is not rendered again.
    """
    rng = np.random.default_rng([cfg.seed, spec.number])
    codes = choose_codes(rng, spec.players, spec.homo)
    score = make_score(rng, codes, spec.duration, spec.from_corpus)
    piece = Piece(spec.number, score.title, codes)
    info_lags = tuple(int(v) for v in rng.integers(-cfg.max_lag_frames, cfg.max_lag_frames + 1, spec.players))
    info = PieceInfo(
        piece.name, spec.number, score.title, score.source, codes, spec.homo, spec.duration,
        int(round(spec.duration * cfg.fps)), info_lags, tuple(len(p.notes) for p in score.parts),
    )  # fmt: skip
    final, final_kp = out / piece.name, out / OPENPOSE_DIR / piece.name
    if final.is_dir() and final_kp.is_dir():
        return info
    other = sorted(p.name for p in out.glob(f"{piece.name.split('_')[0]}_*") if p.is_dir() and p.name != piece.name)
    if other:  # the same settings planned another piece here: a benchmark from another version of this code
        raise UserError(f"{out} holds {other[0]} where this version of the generator makes {piece.name}; "
                        "choose a new --out folder")  # fmt: skip
    (out / ".partial").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{piece.name}-", dir=out / ".partial") as tmp:
        folder, kp_folder = Path(tmp, "piece"), Path(tmp, "openpose")
        folder.mkdir()
        kp_folder.mkdir()
        stems = _write_audio(score, piece, folder, cfg, soundfont, rng)
        keypoints, looks, wall, shake = _animate(score, stems, info, cfg, rng)
        _write_video(folder / piece.video, folder / piece.mix, keypoints, looks, codes, wall, shake, cfg)
        _write_openpose(kp_folder, piece, keypoints, rng)
        for src, dst in ((kp_folder, final_kp), (folder, final)):
            if dst.exists():  # left by an interrupted run of this same benchmark
                shutil.rmtree(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dst)
    return info


def _write_audio(score: Score, piece: Piece, folder: Path, cfg: SynthConfig, soundfont: Path, rng) -> np.ndarray:
    """Stems, mix, notes and score files; returns the stems as float ``(players, samples)``."""
    raw = np.stack([render_part(score, p, soundfont, cfg.sample_rate, cfg.fluidsynth_gain) for p in score.parts])
    gains_db = rng.uniform(-3.0, 3.0, size=len(score.parts))
    pcm, mix = mix_stems(raw, gains_db)
    for k, part in enumerate(score.parts, start=1):
        write_pcm16(folder / piece.stem(k), pcm[k - 1], cfg.sample_rate)
        lines = [f"{n.start:.4f}\t{n.pitch}\t{n.end - n.start:.4f}" for n in part.notes]
        (folder / piece.notes(k)).write_text("\n".join(lines) + "\n")
    write_pcm16(folder / piece.mix, mix, cfg.sample_rate)
    score_midi(score).write(str(folder / piece.score))
    return pcm.astype(np.float32) / 32767.0


def _animate(score: Score, stems: np.ndarray, info: PieceInfo, cfg: SynthConfig, rng):
    """Stored keypoints of every player ``(P, T, 67, 3)`` plus the scene's looks, wall and shake."""
    P, T = len(score.parts), info.frames
    slot = cfg.width / P
    L = min(0.22 * cfg.height, 0.42 * slot)
    poses = []
    for k, part in enumerate(score.parts):
        loud = rms_envelope(stems[k], cfg.sample_rate, cfg.fps, T)
        c = motion.control_signals(part.notes, part.code, loud, cfg.fps, info.lags[k], rng)
        seat = motion.Seat((k + 0.5) * slot + rng.uniform(-0.05, 0.05) * slot, 0.6 * cfg.height, L)
        poses.append(motion.pose_sequence(c, part.code, seat))
    shake = _camera_shake(rng, T, cfg.fps, cfg.shake_px)
    kp = np.stack([motion.add_nuisances(p + shake[:, None], rng, cfg.jitter_px, cfg.missing_rate) for p in poses])
    outside = (kp[..., 0] < 0) | (kp[..., 0] >= cfg.width) | (kp[..., 1] < 0) | (kp[..., 1] >= cfg.height)
    kp[outside] = 0.0
    looks = [draw.random_look(rng) for _ in range(P)]
    wall = tuple(int(v) for v in rng.integers(120, 220, size=3))
    return round_keypoints(kp), looks, wall, shake


def _camera_shake(rng: np.random.Generator, T: int, fps: int, amplitude: float) -> np.ndarray:
    """Small smooth camera motion ``(T, 2)`` in pixels, within ±amplitude."""
    steps = rng.normal(0, 1, size=(T, 2))
    kernel = np.hanning(max(3, int(0.3 * fps)))
    smooth = np.stack([np.convolve(steps[:, i], kernel, mode="same") for i in range(2)], axis=1)
    return amplitude * smooth / max(float(np.abs(smooth).max()), 1e-9)


def _write_video(path, audio, keypoints, looks, codes, wall, shake, cfg: SynthConfig) -> None:
    with VideoWriter(path, cfg.width, cfg.height, cfg.fps, audio=audio, crf=cfg.video_crf) as video:
        for t in range(keypoints.shape[1]):
            img = draw.background(cfg.height, cfg.width, wall, shake[t])
            for k, code in enumerate(codes):
                draw.draw_person(img, keypoints[k, t], looks[k], code)
            video.write(img)


def _write_openpose(folder: Path, piece: Piece, keypoints: np.ndarray, rng) -> None:
    """One JSON per frame; people in a shuffled order, as a detector lists them."""
    P, T = keypoints.shape[:2]
    for t in range(T):
        order = rng.permutation(P)
        write_frame(folder / piece.keypoints(t), [keypoints[k, t] for k in order])
