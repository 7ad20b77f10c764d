"""Face detection, 68 landmarks and PASL's aligned 256x256 crops, for photos and video.

Typical use::

    from pasl.align import align_faces, make_detector
    detector = make_detector("auto")                # FAN if its weights are found, else dlib
    result = align_faces(frames, detector=detector) # frames: (B, H, W, 3) uint8 / float, list, ...
    result.crops            # (B, 3, 256, 256) in [0, 1], what the style encoder / CSG take
    result.frame_from_crop  # (B, 3, 3), to paste results back into the frames
    print(result.summary())

For a long video, keep one :class:`FaceTracker` (detects only when needed, follows the faces with the
cheap landmark stage in between, smooths each face) and feed chunks::

    tracker = FaceTracker(detector, detect_every=25, smoothing=1.0, fps=25)
    for chunk in chunks:
        part = align_faces(chunk, tracker=tracker, require_face=False)

or, detecting every frame, one :class:`TemporalSmoother`::

    smoother = TemporalSmoother(strength=1.0, fps=25, lock_scale=True)
    for chunk in chunks:
        part = align_faces(chunk, detector=detector, smoother=smoother, require_face=False)

Conventions: see :mod:`pasl.align.types` (OpenCV pixel coordinates; affines named
``crop_from_frame`` / ``frame_from_crop``; ``crop_from_frame[:2]`` is the ``M`` of
``cv2.warpAffine``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BackendUnavailableError, NoFaceError
from ..geometry import ALIGNED_SIZE, NUM_LANDMARKS, invert_affine, resize_transform, transform_points, warp_affine, warp_affine_cv2
from ..imageops import read_image, to_uint8_hwc
from ..video import read_video
from .crop import ALIGN_MODES, PASL_TEMPLATE_256, alignment_transform, five_points, letterbox_transform
from .detect import BACKENDS, SELECT_RULES, Detector, DlibDetector, FanDetector, make_detector, select_face
from .images import frame_sizes, to_frames
from .smooth import TemporalSmoother
from .track import DEFAULT_DETECT_EVERY, FaceTracker, TrackedFace
from .types import AlignedFace, Face, FaceAlignment

__all__ = [
    "ALIGN_MODES", "BACKENDS", "DEFAULT_DETECT_EVERY", "PASL_TEMPLATE_256", "SELECT_ALL", "SELECT_RULES", "WARPS",
    "AlignedFace", "BackendUnavailableError", "Detector", "DlibDetector", "Face", "FaceAlignment", "FaceTracker", "FanDetector",
    "NoFaceError", "TemporalSmoother", "TrackedFace",
    "align_faces", "alignment_transform", "crop_frames", "five_points", "letterbox_transform", "make_detector",
    "read_image", "read_video", "select_face", "to_frames",
]

log = logging.getLogger(__name__)

SELECT_ALL = "all"
"""``select="all"``: every face of every frame becomes a row of the result (see ``FaceAlignment.frame_index``)."""
WARPS = ("cv2", "torch")
"""How crops are cut: ``"cv2"`` (``cv2.warpAffine`` on uint8, bit-exact with the official crop; the
default everywhere) or ``"torch"`` (``grid_sample`` in float, batched on the frames' device)."""
WARP_CHUNK = 16
"""Frames stacked per ``grid_sample`` call (bounds the copy of the source frames)."""


@dataclass(frozen=True)
class _Found:
    """One face found in one frame, before the choice: what becomes a row of the result."""

    face: Face
    landmarks: torch.Tensor
    track_id: int = -1
    crop_from_frame: torch.Tensor | None = None


def _faces_per_frame(images: list[np.ndarray], detector: Detector | None, tracker: FaceTracker | None):
    """Every face of every ``(H, W, 3)`` uint8 frame (by the detector, or through the tracker), and per frame
    whether the detector ran (None without a tracker: it ran on all)."""
    if tracker is None:
        return [[_Found(f, f.landmarks) for f in detector.detect(image)] for image in images], None
    first = tracker.frame
    tracked = tracker.track(images)
    ran = set(tracker.stats.detection_frames[-len(images):])
    detected = torch.tensor([first + i in ran for i in range(len(images))], dtype=torch.bool)
    return [[_Found(t.face, t.landmarks, t.track_id, t.crop_from_frame) for t in faces] for faces in tracked], detected


def _choose(found: list[list[_Found]], select: str | int, frames: list[torch.Tensor]) -> tuple[list[int], list[_Found | None]]:
    """The rows of the result: ``(frame of each row, face of each row or None)``. One row per frame, or with
    ``select="all"`` one per face (left to right, or by track id) and one faceless row for a frame without any."""
    rows: list[int] = []
    chosen: list[_Found | None] = []
    for i, (faces, image) in enumerate(zip(found, frames)):
        if select == SELECT_ALL:
            order = sorted(range(len(faces)), key=lambda k: (faces[k].track_id, faces[k].face.center[0]))
            rows += [i] * max(1, len(order))
            chosen += [faces[k] for k in order] or [None]
            continue
        index = select_face([f.face for f in faces], select, (int(image.shape[-2]), int(image.shape[-1])))
        if index is None and faces:
            log.info("frame %d: %d faces but none matches select=%r", i, len(faces), select)
        rows.append(i)
        chosen.append(None if index is None else faces[index])
    return rows, chosen


def _to_device(matrix: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move float64 transforms to ``device`` (float32 on MPS, which has no float64)."""
    return matrix.to(torch.float32).to(device) if device.type == "mps" else matrix.to(device)


def _resize(frame: torch.Tensor, warp: str, image: np.ndarray | None = None) -> torch.Tensor:
    """``cv2.resize(frame, (256, 256))`` INTER_LINEAR (edges replicated, no antialiasing), as the official demos."""
    if warp == "cv2":
        import cv2

        out = cv2.resize(to_uint8_hwc(frame) if image is None else image, (ALIGNED_SIZE, ALIGNED_SIZE), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(out).permute(2, 0, 1).to(device=frame.device, dtype=torch.float32) / 255.0
    resized = torch.nn.functional.interpolate(frame[None].float(), size=(ALIGNED_SIZE, ALIGNED_SIZE), mode="bilinear", align_corners=False)
    return resized[0].clamp(0.0, 1.0)


def crop_frames(frames: list[torch.Tensor], crop_from_frame: torch.Tensor, warp: str = "cv2", mode: str = "align",
                images: list[np.ndarray] | None = None) -> torch.Tensor:
    """Crops ``(B, 3, 256, 256)`` float32 of each ``(3, H, W)`` frame by its ``crop_from_frame`` (see :data:`WARPS`).

    ``images``: the same frames already as ``to_uint8_hwc`` gives them, so the ``cv2`` warp does not convert
    them again (that conversion costs more than the warp itself)."""
    device = frames[0].device
    crops = torch.empty(len(frames), 3, ALIGNED_SIZE, ALIGNED_SIZE, dtype=torch.float32, device=device)
    if mode == "resize":
        for i, frame in enumerate(frames):
            crops[i] = _resize(frame, warp, None if images is None else images[i])
        return crops
    if warp == "cv2":
        for i, frame in enumerate(frames):
            out = warp_affine_cv2(to_uint8_hwc(frame) if images is None else images[i], crop_from_frame[i])
            crops[i] = torch.from_numpy(out).permute(2, 0, 1).to(device=device, dtype=torch.float32) / 255.0
        return crops
    groups: dict[tuple[int, int], list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(tuple(frame.shape[-2:]), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), WARP_CHUNK):
            part = indices[start : start + WARP_CHUNK]
            batch = torch.stack([frames[i] for i in part]).float()
            crops[part] = warp_affine(batch, _to_device(crop_from_frame[part], device), ALIGNED_SIZE).clamp(0.0, 1.0)
    return crops


def align_faces(
    images: Any,
    backend: str = "auto",
    select: str | int = "largest",
    mode: str = "align",
    smoothing: float = 0.0,
    lock_scale: bool | float = False,
    detector: Detector | None = None,
    *,
    smoother: TemporalSmoother | None = None,
    tracker: FaceTracker | None = None,
    fps: float = 25.0,
    weights_dir=None,
    warp: str = "cv2",
    require_face: bool = True,
) -> FaceAlignment:
    """Detect one face per frame and cut PASL's aligned 256x256 crop around it.

    Args:
        images: frames in any layout :func:`pasl.align.images.to_frames` accepts (numpy /
            torch, HWC / BHWC / CHW / BCHW, grey / RGB / RGBA, uint8 / float in [0, 1],
            PIL, or a list of those with different sizes).
        backend: ``"auto"``, ``"fan"``, ``"dlib"``, ``"dlib-hog"``, or ``"none"`` (no
            detection; only with ``mode="resize"``). Ignored when ``detector`` is given.
        select: ``"largest"``, ``"central"``, ``"score"`` (official: the detector's first)
            or an int (i-th face from the image-left); see :func:`select_face`. ``"all"``
            (:data:`SELECT_ALL`): every face is a row of the result, ``frame_index`` says whose frame
            (a frame without a face keeps one faceless row); smoothing then needs a ``tracker``.
        mode: ``"align"``: the official 5-point similarity to the ArcFace template
            (``get_arcface``). ``"resize"``: the whole frame stretched to 256x256
            (``cv2.resize`` INTER_LINEAR, what the official demos do to source images that
            are already face crops; no antialiasing, so shrink large images first);
            landmarks are still reported when a backend runs, smoothing is not applied,
            and a batch without faces is not an error.
        smoothing: temporal smoothing strength for video (0 = off, 1 = default); the
            frames must be consecutive. Ignored when ``smoother`` is given.
        lock_scale: fix the crop scale over the clip (``True``: median; or a value).
        detector: a reusable detector from :func:`make_detector` (models loaded once).
        smoother: a :class:`TemporalSmoother` carried across chunks of one video.
        tracker: a :class:`FaceTracker` carried across chunks of one video: the detector runs only
            when needed and the landmark stage follows the faces in between; the tracker uses its
            own detector and smooths each face itself, so ``detector``, ``backend``, ``smoothing``,
            ``lock_scale`` and ``smoother`` are not taken with it. The result has ``track_ids``
            and ``detected``.
        fps: frame rate for ``smoothing`` (cutoffs are in Hz).
        weights_dir: extra folder(s) for the FAN weights when ``detector`` is None.
        warp: one of :data:`WARPS`: ``"cv2"`` (bit-exact with the official crop) or
            ``"torch"`` (``grid_sample``, batched, on the input's device).
        require_face: raise :class:`NoFaceError` when no frame has a face (``align``
            mode). Pass False for the chunks of a stream, where a chunk after a cut may
            legitimately have none; decide over the whole clip instead.

    Returns:
        :class:`FaceAlignment`, tensors on the input's device.

    Raises:
        NoFaceError: ``mode="align"``, ``require_face`` and no frame has a face.
        ValueError / TypeError: bad images or options (an empty batch included).
        MissingWeightError / BackendUnavailableError: the backend cannot run here.
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"mode must be one of {ALIGN_MODES}, got {mode!r}")
    if warp not in WARPS:
        raise ValueError(f"warp must be one of {WARPS}, got {warp!r}")
    if detector is None and backend not in BACKENDS + ("none",):
        raise ValueError(f"backend must be one of {BACKENDS + ('none',)}, got {backend!r}")
    if detector is None and backend == "none" and mode == "align":
        raise ValueError("mode='align' needs landmarks: choose a backend other than 'none', or use mode='resize'")
    if isinstance(select, str) and select not in SELECT_RULES + (SELECT_ALL,):
        raise ValueError(f"select must be one of {SELECT_RULES + (SELECT_ALL,)} or an int, got {select!r}")
    if tracker is not None and (detector is not None or smoother is not None or smoothing > 0 or lock_scale is not False):
        raise ValueError("with a tracker, leave out detector, smoother, smoothing and lock_scale: the FaceTracker has its "
                         "own detector and smooths each face")
    if select == SELECT_ALL and (smoother is not None or smoothing > 0 or lock_scale is not False):
        raise ValueError("select='all' smooths each face only through a FaceTracker (tracker=...); leave out smoothing, "
                         "lock_scale and smoother")
    frames = to_frames(images)
    count = len(frames)

    if tracker is None and detector is None and backend != "none":
        detector = make_detector(backend, weights_dir)
    detected = None
    images = [to_uint8_hwc(frame) for frame in frames] if (tracker is not None or detector is not None or warp == "cv2") else None
    if tracker is not None or detector is not None:
        found, detected = _faces_per_frame(images, detector, tracker)
        backend_name = (tracker.detector if tracker is not None else detector).name
        counts_per_frame = [len(faces) for faces in found]
    else:
        found, backend_name, counts_per_frame = [[] for _ in frames], "", [-1] * count
    rows, chosen = _choose(found, select, frames)
    index = torch.tensor(rows, dtype=torch.int64)
    row_frames = [frames[i] for i in rows]
    sizes = frame_sizes(row_frames)
    nan = torch.full((NUM_LANDMARKS, 2), float("nan"))
    landmarks = torch.stack([nan if c is None else c.landmarks.float() for c in chosen])
    scores = torch.tensor([float("nan") if c is None else c.face.score for c in chosen], dtype=torch.float32)
    counts = torch.tensor(counts_per_frame, dtype=torch.int64)[index]
    has_face = torch.tensor([c is not None for c in chosen], dtype=torch.bool)
    track_ids = None if tracker is None else torch.tensor([-1 if c is None else c.track_id for c in chosen], dtype=torch.int64)
    if detected is not None:
        detected = detected[index]

    crop_from_frame = torch.stack([
        letterbox_transform(int(h), int(w)) if mode == "align" else resize_transform(int(h), int(w), ALIGNED_SIZE)
        for h, w in sizes.tolist()
    ])
    if mode == "align":
        if require_face and not bool(has_face.any()):
            raise NoFaceError(
                f"no face was found in any of the {count} frame{'s' if count > 1 else ''} "
                f"(backend {backend_name!r}, select={select!r}). Check that the image shows a human face not "
                "much smaller than ~40 px; the 'dlib' (CNN) backend finds more large-pose faces than 'dlib-hog'; "
                "for inputs that are already face crops use mode='resize'."
            )
        if smoother is None and (smoothing > 0 or lock_scale is not False):
            smoother = TemporalSmoother(strength=smoothing, fps=fps, lock_scale=lock_scale)
        if smoother is not None:
            landmarks, smoothed = smoother(landmarks, has_face)  # also advances its clock over faceless chunks
            crop_from_frame[has_face] = smoothed[has_face].to(crop_from_frame.dtype)
        elif tracker is not None and tracker.smooths:
            smoothed = [c.crop_from_frame for c in chosen if c is not None]
            if smoothed:
                crop_from_frame[has_face] = torch.stack(smoothed).to(crop_from_frame.dtype)
        else:
            crop_from_frame[has_face] = alignment_transform(landmarks[has_face]).to(crop_from_frame.dtype)

    crops = crop_frames(row_frames, crop_from_frame, warp, mode, None if images is None else [images[i] for i in rows])
    device = frames[0].device
    result = FaceAlignment(
        crops=crops,
        crop_from_frame=_to_device(crop_from_frame, device),
        frame_from_crop=_to_device(invert_affine(crop_from_frame), device),
        landmarks=landmarks.to(device),
        landmarks_crop=transform_points(crop_from_frame, landmarks).to(device),
        scores=scores.to(device),
        face_counts=counts.to(device),
        has_face=has_face.to(device),
        frame_sizes=sizes.to(device),
        mode=mode,
        backend=backend_name,
        track_ids=None if track_ids is None else track_ids.to(device),
        detected=None if detected is None else detected.to(device),
        frame_index=index.to(device) if select == SELECT_ALL else None,
    )
    if result.faceless_frames:
        log.warning("%s", result.summary())
    else:
        log.info("%s", result.summary())
    return result
