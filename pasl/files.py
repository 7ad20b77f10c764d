"""Reenactment from files to files: a driving image, a folder of images or a video.

The command line's ``reenact`` is this module; it reads and writes, the pipeline computes.
Videos are streamed in chunks and keep the driver's audio.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_output, remove_empty
from .background import WriteBehind, read_ahead
from .errors import NoFaceError
from .imageops import read_image, to_uint8_hwc
from .pipeline import ReenactedChunk, Reenactor, RunSummary, SourceFace
from .video import VideoWriter, is_video, iter_frame_chunks, probe

log = logging.getLogger(__name__)

READ_AHEAD = 2
"""Video chunks decoded ahead of, and waiting to be encoded behind, the chunk being reenacted (8-bit frames:
at most 2 x (READ_AHEAD + 1) chunks of uint8 more than a sequential run)."""
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
    with atomic_output(path) as temporary:
        Image.fromarray(_output_images(chunk, rounding)[0]).save(temporary, format=Image.registered_extensions().get(path.suffix.lower()))


def _no_face(flag: str, path: Path, reenactor: Reenactor, what: str, crop_flag: str) -> NoFaceError:
    """The command line's no-face message: which input, which file, and the library's advice in flags."""
    return NoFaceError(
        f"{flag} {path}: no face found {what} (backend {reenactor.detector.name!r}, --select {reenactor.options.select}); "
        "check that it shows a human face not much smaller than ~40 px, try --backend dlib (it finds more large-pose "
        f"faces than dlib-hog), or give {crop_flag} if it is already an aligned face crop"
    )


def encode_source_file(reenactor: Reenactor, source: Path) -> SourceFace:
    """Read and encode the source; a source without a face is a :class:`NoFaceError` naming ``--source`` and the file."""
    try:
        return reenactor.encode_source(read_rgb(source))
    except NoFaceError:
        raise _no_face("--source", source, reenactor, "in the source image", "--source-is-crop") from None


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
    stage: Callable[[str], None] | None = None,
) -> RunSummary:
    """Reenact ``source`` with ``driving`` into ``out``.

    - driving image -> ``out`` image;
    - driving folder -> ``out`` folder, one PNG per image (same stem);
    - driving video -> ``out`` video (H.264, the driver's fps and audio), streamed.

    Frames and images without a face pass through unchanged and are listed in the summary. It is an
    error (:class:`NoFaceError`, naming ``--source`` or ``--driving`` and the file) when the source has
    no face, or when nothing was reenacted: a still driver without a face, a folder or video in which
    no image or frame has one. Every output is written atomically (:func:`pasl.atomic.atomic_output`), so a failed
    or interrupted run leaves no file behind.

    ``progress(done, total)`` is called after every chunk (total 0 when unknown); ``stage(name)``
    when a step of a still driver starts ("encoding source", "reenacting").
    """
    source, driving, out = Path(source), Path(driving), Path(out)
    rounding = reenactor.options.output_rounding
    if stage:
        stage("encoding source")
    face = encode_source_file(reenactor, source)
    summary = RunSummary()
    summary.note_source(face, reenactor.options.select)
    if driving.is_dir():
        _reenact_folder(reenactor, face, driving, out, rounding, summary, progress)
    elif is_video(driving):
        _reenact_video(reenactor, face, driving, out, rounding, summary, chunk_size, progress)
    else:
        if stage:
            stage("reenacting")
        chunk = reenactor.reenact(face, read_rgb(driving))
        summary.add(chunk)
        if not bool(chunk.has_face.any()):
            raise _no_face("--driving", driving, reenactor, "in the driving image, so nothing was reenacted", "--driver-is-crop")
        _save_image(chunk, out, rounding)
    log.info("%s", summary.text())
    return summary


def _reenact_folder(reenactor: Reenactor, face: SourceFace, driving: Path, out: Path, rounding: str, summary: RunSummary,
                    progress: Callable[[int, int], None] | None) -> None:
    """One PNG per image; the files written are removed again if the run fails or no image had a face."""
    images = sorted(p for p in driving.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"--driving {driving} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    created = [p for p in (out, *out.parents) if not p.exists()]
    written: list[Path] = []
    try:
        for index, path in enumerate(images):
            chunk = reenactor.reenact(face, read_rgb(path), first_frame=index)
            summary.add(chunk)
            _save_image(chunk, out / f"{path.stem}.png", rounding)
            written.append(out / f"{path.stem}.png")
            if progress:
                progress(index + 1, len(images))
        if len(summary.faceless) == len(images):
            raise _no_face("--driving", driving, reenactor, f"in any of its {len(images)} images, so nothing was reenacted",
                           "--driver-is-crop")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        remove_empty(created)
        raise


def _reenact_video(reenactor: Reenactor, face: SourceFace, driving: Path, out: Path, rounding: str, summary: RunSummary,
                   chunk_size: int, progress: Callable[[int, int], None] | None) -> None:
    """Streamed into a temporary file that becomes ``out`` only when at least one frame had a face."""
    info = probe(driving)
    if not is_video(out):
        raise ValueError(f"the driving input is a video, so --out must be a video file too (.mp4), got {out}")
    with atomic_output(out) as temporary:
        writer = VideoWriter(temporary, info.fps, audio_from=driving if info.has_audio else None)
        try:
            # decoding runs ahead and encoding behind the networks, each in one thread; both queues hold 8-bit frames
            with contextlib.closing(read_ahead(iter_frame_chunks(driving, chunk_size), READ_AHEAD)) as decoded, \
                    WriteBehind(writer.write, READ_AHEAD) as encoder:
                frames = (torch.from_numpy(c).permute(0, 3, 1, 2).float().div(255) for c in decoded)
                for chunk in reenactor.reenact_stream(face, frames, fps=float(info.fps), summary=summary):
                    encoder.submit(_output_images(chunk, rounding))
                    if progress:
                        progress(summary.frames, info.frames)
        except NoFaceError:
            writer.abort()
            raise _no_face("--driving", driving, reenactor, f"in any of its {summary.frames} frames, so nothing was reenacted",
                           "--driver-is-crop") from None
        except BaseException:
            writer.abort()
            raise
        writer.close()


# ---------------------------------------------------------------- a portrait posed by edits (no driver)


def _photo(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1).float().div(255)


def _posed_images(face: SourceFace, photo: torch.Tensor, posed, paste: bool, options) -> np.ndarray:
    from .portrait import paste_posed

    if not paste:
        return to_uint8_hwc(posed.faces, options.output_rounding)
    frames, _ = paste_posed(photo, face.alignment.frame_from_crop[0], face.alignment.landmarks_crop[0], posed,
                            erode=options.erode, blur=options.blur, forehead=options.forehead, color_match=options.color_match)
    return to_uint8_hwc(frames, options.output_rounding)


def edit_file(reenactor: Reenactor, source: str | Path, out: str | Path, edit, stage: Callable[[str], None] | None = None) -> SourceFace:
    """The source photo with its head and expression edited (:class:`pasl.edit.HeadEdit`) into ``out``:
    the whole photo with the edited face pasted back, or the 256 crop without paste-back."""
    from .edit import ExpressionControls, edit_codes
    from .portrait import pose_source

    source, out = Path(source), Path(out)
    if stage:
        stage("encoding source")
    face = encode_source_file(reenactor, source)
    models = reenactor.models
    controls = ExpressionControls.from_flame(models.flame) if edit.controls else None
    if stage:
        stage("editing")
    codes = edit_codes(face.shape.codes, edit, controls, models.flame)
    posed = pose_source(models, face.style, face.shape, codes, batch_size=1)
    image = _posed_images(face, _photo(source), posed, reenactor.options.paste_back, reenactor.options)[0]
    with atomic_output(out) as temporary:
        Image.fromarray(image).save(temporary, format=Image.registered_extensions().get(out.suffix.lower()))
    return face


def animate_file(
    reenactor: Reenactor,
    source: str | Path,
    out: str | Path,
    keyframes,
    frames: int,
    fps: float = 25.0,
    easing: str = "ease-in-out",
    chunk_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> int:
    """The source photo animated along ``keyframes`` (:func:`pasl.keyframes.animate_codes`) into the video ``out``,
    ``chunk_size`` frames at a time (memory stays flat). Returns the number of frames written."""
    from .edit import ExpressionControls
    from .keyframes import animate_codes
    from .portrait import pose_source

    source, out = Path(source), Path(out)
    if stage:
        stage("encoding source")
    face = encode_source_file(reenactor, source)
    models, options = reenactor.models, reenactor.options
    controls = ExpressionControls.from_flame(models.flame) if any(k.edit.controls for k in keyframes) else None
    codes = animate_codes(face.shape.codes, keyframes, frames, easing, controls, models.flame)
    photo = _photo(source)
    with atomic_output(out) as temporary:
        writer = VideoWriter(temporary, fps)
        try:
            for start in range(0, frames, chunk_size):
                part = codes[start : start + chunk_size]
                posed = pose_source(models, face.style, face.shape, part, batch_size=options.batch_size)
                writer.write(_posed_images(face, photo, posed, options.paste_back, options))
                if progress:
                    progress(min(start + chunk_size, frames), frames)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    return frames
