"""Reenactment from files to files: a driving image, a folder of images or a video.

The command line's ``reenact`` is this module; it reads and writes, the pipeline computes.
Videos are streamed in chunks and keep the driver's audio.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .imageops import read_image, to_uint8_hwc
from .pipeline import ReenactedChunk, Reenactor, RunSummary
from .video import VideoWriter, is_video, iter_frame_chunks, probe

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_rgb(path: str | Path) -> np.ndarray:
    """Any image file -> ``(H, W, 3)`` uint8 RGB (:func:`pasl.imageops.read_image`); a file
    that cannot be read raises ``ValueError`` naming it."""
    try:
        return read_image(path)  # a writable copy (torch warns on read-only arrays)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} could not be read as an image: {err}") from None


def _output_images(chunk: ReenactedChunk, rounding: str = "round") -> np.ndarray:
    images = chunk.frames if chunk.frames is not None else chunk.faces
    return to_uint8_hwc(images, rounding)  # (B, H, W, 3) uint8


def _save_image(chunk: ReenactedChunk, path: Path, rounding: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_output_images(chunk, rounding)[0]).save(path)


def check_paths(source: str | Path, driving: str | Path, out: str | Path) -> None:
    """Fail at once, before any model loads, when the inputs or the output cannot work.

    Checks that ``source`` is a file, ``driving`` a file or a folder, and that ``out`` is what
    the driver calls for: a video file for a video, a folder (not an existing file) for a
    folder, an image file with a known extension for an image. Messages use the flags' names.
    """
    source, driving, out = Path(source), Path(driving), Path(out)
    if not source.is_file():
        raise FileNotFoundError(f"--source {source}: no such file")
    if not driving.exists():
        raise FileNotFoundError(f"--driving {driving}: no such file or folder")
    if driving.is_dir():
        if out.is_file():
            raise ValueError(f"the driving input is a folder, so --out must be a folder too, but {out} is a file")
    elif is_video(driving):
        if not is_video(out):
            raise ValueError(f"the driving input is a video, so --out must be a video file too (.mp4), got {out}")
    elif out.is_dir() or out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"the driving input is an image, so --out must be an image file ({', '.join(IMAGE_SUFFIXES)}), got {out}")
    blocked = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocked is not None and blocked != out and not blocked.is_dir():
        raise ValueError(f"--out {out}: {blocked} is a file, not a folder")


def reenact_files(
    reenactor: Reenactor,
    source: str | Path,
    driving: str | Path,
    out: str | Path,
    chunk_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Reenact ``source`` with ``driving`` into ``out``.

    - driving image -> ``out`` image;
    - driving folder -> ``out`` folder, one PNG per image (same stem);
    - driving video -> ``out`` video (H.264, the driver's fps and audio), streamed.

    ``progress(done, total)`` is called after every chunk (total 0 when unknown).
    """
    source, driving, out = Path(source), Path(driving), Path(out)
    rounding = reenactor.options.output_rounding
    face = reenactor.encode_source(read_rgb(source))
    summary = RunSummary()
    if driving.is_dir():
        images = sorted(p for p in driving.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"{driving} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for index, path in enumerate(images):
            chunk = reenactor.reenact(face, read_rgb(path), first_frame=index)
            summary.add(chunk)
            _save_image(chunk, out / f"{path.stem}.png", rounding)
            if progress:
                progress(index + 1, len(images))
    elif is_video(driving):
        info = probe(driving)
        if not is_video(out):
            raise ValueError(f"the driving input is a video, so --out must be a video file too (.mp4), got {out}")
        with VideoWriter(out, info.fps, audio_from=driving if info.has_audio else None) as writer:
            chunks = (torch.from_numpy(c).permute(0, 3, 1, 2).float().div(255) for c in iter_frame_chunks(driving, chunk_size))
            for chunk in reenactor.reenact_stream(face, chunks, fps=float(info.fps), summary=summary):
                writer.write(_output_images(chunk, rounding))
                if progress:
                    progress(summary.frames, info.frames)
    else:
        chunk = reenactor.reenact(face, read_rgb(driving))
        summary.add(chunk)
        _save_image(chunk, out, rounding)
    log.info("%s", summary.text())
    return summary
