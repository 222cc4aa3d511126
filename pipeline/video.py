"""Video files: writing H.264 mp4 through the ffmpeg program.

Frames are RGB ``uint8`` arrays of shape ``(height, width, 3)``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType

import numpy as np

from pipeline.errors import UserError


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
