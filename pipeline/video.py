"""Video files: decoding with decord, writing H.264 mp4 through the ffmpeg program.

Frames are RGB ``uint8`` arrays of shape ``(height, width, 3)``. Decoding
streams: frames come in chunks at the requested rate, so a long video never
sits in memory whole.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from pipeline.errors import UserError


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: native rate, frame count and size, duration, whether it has sound."""

    path: str
    fps: float
    frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video with decord; raises ValueError naming the file if it cannot be decoded."""
    import decord

    try:
        reader = decord.VideoReader(str(path))
        frames, fps = len(reader), float(reader.get_avg_fps())
        height, width = reader[0].shape[:2]
    except (decord.DECORDError, RuntimeError, IndexError, OSError) as e:
        raise ValueError(f"{path}: not a readable video ({_short(e)})") from None
    if frames == 0 or not fps > 0:
        raise ValueError(f"{path}: video has no frames")
    try:
        decord.AudioReader(str(path), sample_rate=8000, mono=True)
        has_audio = True
    except (decord.DECORDError, RuntimeError):
        has_audio = False
    return VideoInfo(str(path), fps, frames, int(width), int(height), frames / fps, has_audio)


def frame_indices(info: VideoInfo, fps: float) -> np.ndarray:
    """Native frame index nearest to each time ``k / fps`` inside the video."""
    times = np.arange(int(np.floor(info.duration * fps + 1e-6))) / fps
    return np.minimum(np.round(times * info.fps).astype(int), info.frames - 1)


def iter_frames(
    path: str | Path, fps: float, size: tuple[int, int] | None = None, chunk: int = 32
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Decode frames at ``fps`` in chunks: yields ``(times_s, frames (n, h, w, 3) uint8)``.

    ``size`` is ``(width, height)`` to resize in the decoder (cheaper than after);
    None keeps the native size.
    """
    import decord

    info = probe_video(path)
    kwargs = {"width": size[0], "height": size[1]} if size else {}
    reader = decord.VideoReader(str(path), **kwargs)
    idx = frame_indices(info, fps)
    for start in range(0, len(idx), chunk):
        sel = idx[start : start + chunk]
        yield (start + np.arange(len(sel))) / fps, reader.get_batch(sel.tolist()).asnumpy()


def read_audio(path: str | Path, rate: int) -> np.ndarray:
    """Mono float32 audio at ``rate``: wav/flac through soundfile, a video's track through decord.

    Raises ValueError naming the file when there is no audio stream or it cannot be read.
    """
    from pipeline.audio import read_wav, resample

    path = Path(path)
    if path.suffix.lower() in (".wav", ".flac", ".ogg"):
        try:
            wave, native = read_wav(path)
        except RuntimeError as e:
            raise ValueError(f"{path}: not a readable sound file ({_short(e)})") from None
        return resample(wave, native, rate)
    import decord

    try:
        reader = decord.AudioReader(str(path), sample_rate=rate, mono=True)
    except (decord.DECORDError, RuntimeError) as e:
        raise ValueError(f"{path}: no audio track ({_short(e)})") from None
    return reader[:].asnumpy()[0].astype(np.float32)


def _short(e: Exception) -> str:
    """First line of a decoder error, without decord's timestamp, source location and stack dump."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", text.splitlines()[0])[:200]


def check_ffmpeg() -> str:
    """Path of the ffmpeg program, or a UserError saying how to install it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise UserError("ffmpeg is not installed (Debian/Ubuntu: apt-get install ffmpeg)")
    return exe


class VideoWriter:
    """Stream RGB frames into an H.264 mp4, optionally muxing a wav file as AAC audio.

    Use as a context manager; frames go straight to ffmpeg's stdin, so memory
    stays constant however long the video is.
    """

    def __init__(self, path: Path, width: int, height: int, fps: int, audio: Path | None = None, crf: int = 23) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 with yuv420p needs even sizes, got {width}x{height}")
        cmd = [check_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
        cmd += ["-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
        if audio is not None:
            cmd += ["-i", str(audio)]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p"]
        cmd += ["-threads", "1", "-movflags", "+faststart"]
        if audio is not None:
            cmd += ["-c:a", "aac", "-b:a", "192k", "-shortest"]
        cmd += [str(path)]
        self.path, self.shape = path, (height, width, 3)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame."""
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {self.shape}, got {frame.dtype} {frame.shape}")
        assert self._proc.stdin is not None
        self._proc.stdin.write(frame.tobytes())

    def close(self) -> None:
        """Finish the file; raises RuntimeError with ffmpeg's message if encoding failed."""
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace")
        if self._proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path}: {err.strip()}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._proc.kill()
            self._proc.wait()
