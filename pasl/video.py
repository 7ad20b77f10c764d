"""Video in and out for the CLI, streamed in chunks, keeping the driver's audio.

Uses PyAV (``av``, which ComfyUI also depends on). Frames are uint8 RGB ``(n, H, W, 3)``
numpy arrays: chunks are small and the caller converts them, so a long clip is never in
memory at once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import VideoError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif")
DEFAULT_CRF = "18"
"""x264 quality: visually lossless for faces, still far smaller than the input frames."""


def _av():
    try:
        import av
    except ImportError as err:
        raise VideoError("video input/output needs PyAV: pip install av") from err
    return av


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: Fraction
    frames: int
    """Frame count from the container header (0 when the container does not say)."""
    width: int
    height: int
    has_audio: bool


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def probe(path: str | Path) -> VideoInfo:
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or Fraction(25)
            return VideoInfo(path, Fraction(fps), int(stream.frames or 0), stream.width, stream.height, bool(container.streams.audio))
    except av.error.FFmpegError as err:
        raise VideoError(f"{path} could not be opened as a video: {err}") from None


def iter_frames(path: str | Path, start: int = 0, count: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
    """The video decoder: yield frames ``start, start + step, ...`` of ``path`` as
    ``(H, W, 3)`` uint8 RGB, at most ``count`` of them (all when None).

    Decodes sequentially (seeking is unreliable in compressed streams), converts only the
    frames it yields and stops decoding after the last one wanted. Rotation metadata is
    not applied.

    Raises:
        ValueError: ``start < 0`` or ``step < 1`` (on the first ``next``).
        VideoError: PyAV is missing, or the file cannot be opened or decoded.
    """
    if step < 1 or start < 0:
        raise ValueError(f"need start >= 0 and step >= 1, got start={start}, step={step}")
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise VideoError(f"{path} could not be opened as a video: {err}") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        frames = container.decode(video=0)
        index = produced = 0
        while count is None or produced < count:
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as err:
                raise VideoError(f"{path}: decoding failed after {index} frames: {err}") from None
            if frame is None:
                break
            if index >= start and (index - start) % step == 0:
                yield frame.to_ndarray(format="rgb24")
                produced += 1
            index += 1


def iter_frame_chunks(
    path: str | Path, chunk_size: int, start: int = 0, count: int | None = None, step: int = 1
) -> Iterator[np.ndarray]:
    """:func:`iter_frames` in RGB uint8 chunks ``(n, H, W, 3)`` of at most ``chunk_size`` frames."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    chunk: list[np.ndarray] = []
    for frame in iter_frames(path, start=start, count=count, step=step):
        chunk.append(frame)
        if len(chunk) == chunk_size:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


def read_video(path: str | Path, start: int = 0, count: int | None = None, step: int = 1) -> np.ndarray:
    """Frames ``start, start + step, ...`` of a video as one ``(T, H, W, 3)`` uint8 RGB array.

    Stops decoding after ``count`` frames; for long videos read it chunk by chunk
    (:func:`iter_frame_chunks` takes the same ``start``, ``count`` and ``step``).

    Raises:
        ValueError: no frame was read (``start`` past the end, ``count`` 0), bad ``start``/``step``.
        VideoError: as :func:`iter_frames`.
    """
    frames = list(iter_frames(path, start=start, count=count, step=step))
    if not frames:
        raise ValueError(f"no frames could be read from {path} (start={start})")
    return np.stack(frames)


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: repeat the last row/column where needed."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


class VideoWriter:
    """Write RGB uint8 chunks to an H.264 (or MPEG-4 fallback) file; optionally copy the
    audio of another file on :meth:`close` (remuxed, not re-encoded).

    Use as a context manager: ``with VideoWriter(out, fps, audio_from=driver) as w: w.write(chunk)``.
    """

    def __init__(self, path: str | Path, fps: Fraction | float, audio_from: str | Path | None = None):
        self._av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.audio_from = Path(audio_from) if audio_from else None
        self.container = self._av.open(str(self.path), mode="w")
        self.stream = None
        self.audio_stream = None
        self.audio_source = None
        if self.audio_from is not None:
            self._add_audio_stream()
        self.frames_written = 0

    def _add_audio_stream(self) -> None:
        source = self._av.open(str(self.audio_from))
        if not source.streams.audio:
            source.close()
            return
        try:
            self.audio_stream = self.container.add_stream_from_template(source.streams.audio[0])
            self.audio_source = source
        except (ValueError, self._av.error.FFmpegError) as err:  # codec not allowed in this container
            log.warning("audio of %s not copied to %s: %s", self.audio_from, self.path, err)
            source.close()

    def _open_stream(self, width: int, height: int) -> None:
        for codec, options in (("libx264", {"crf": DEFAULT_CRF}), ("mpeg4", {})):
            try:
                stream = self.container.add_stream(codec, rate=self.fps)
            except (ValueError, self._av.error.FFmpegError):
                continue
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = options
            self.stream = stream
            return
        raise VideoError(f"no H.264 or MPEG-4 encoder available to write {self.path}")

    def write(self, frames: np.ndarray) -> None:
        """Append RGB uint8 frames ``(n, H, W, 3)`` (all chunks must share H and W)."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (n, H, W, 3), got {frames.dtype} {frames.shape}")
        frames = _even(frames)
        if self.stream is None:
            self._open_stream(frames.shape[2], frames.shape[1])
        for image in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.frames_written += 1

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        if self.audio_source is not None:
            for packet in self.audio_source.demux(self.audio_source.streams.audio[0]):
                if packet.dts is None:
                    continue
                packet.stream = self.audio_stream
                self.container.mux(packet)
            self.audio_source.close()
        self.container.close()

    def abort(self) -> None:
        """Close without finishing the file, after a failure: the caller deletes it, so nothing is
        flushed and errors from the half-written container are ignored."""
        for handle in (self.audio_source, self.container):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
