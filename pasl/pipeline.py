"""PASL end to end: align -> encode -> recompose (+ cycle check) -> render maps -> generate -> paste back.

One readable path shared by the CLI and the one-node ComfyUI shortcut. The source is
encoded once (:meth:`Reenactor.encode_source`); driving frames go through
:meth:`Reenactor.reenact` one chunk at a time, and :meth:`Reenactor.reenact_stream` keeps
the temporal smoother across chunks, so memory stays flat however long the clip is.
Frames without a face come back unchanged and are listed in each chunk's result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch

from .align import (
    ALIGN_MODES,
    DEFAULT_DETECT_EVERY,
    SELECT_ALL,
    SELECT_RULES,
    WARPS,
    FaceAlignment,
    FaceTracker,
    TemporalSmoother,
    align_faces,
    to_frames,
)
from .composite import paste_back
from .csg.codes import RECOMPOSE_MODES, FlameCodes
from .csg.cycle import CycleReport
from .edit import MotionStrengths
from .errors import NoFaceError, NonFiniteError, PASLError
from .generate import generate_faces
from .geometry import ALIGNED_SIZE
from .identity import IdentityScores, encode_identity, score_identity
from .imageops import QUANTIZE_MODES
from .masks import FOREHEAD, MASK_KINDS, check_mask_fractions
from .models import PASLModels
from .oom import Backoff
from .pae import IdentityReference
from .shape import CROP_LANDMARKS, ShapeCodes, recompose_shapes, render_conditioning, shape_codes

log = logging.getLogger(__name__)

MAX_SMOOTHING = 10.0
"""Largest temporal smoothing strength offered (1 is the default; 10 already lags visibly)."""


@dataclass(frozen=True)
class ReenactOptions:
    """Everything a user can choose; the defaults are the paper's method with a clean composite.

    Attributes:
        mode: ``"recompose"`` (the paper: source shape + driver expression/pose/camera),
            ``"reference"`` (the official demo: the driver's own shape) or ``"shape_only"``.
        source_alignment: ``"align"`` (detect and align the source like the driver) or
            ``"resize"`` (the source is already an aligned crop, as in the official demos).
        driver_alignment: the same for the driving frames (``"resize"``: already aligned
            256 crops, as in the official test lists).
        select: which face when several: ``"largest"``, ``"central"``, ``"score"`` (the
            detector's first, as the official code) or an index; ``"all"``: every face of the
            driving frames is reenacted and pasted back (needs ``paste_back``; the source uses
            its largest face).
        smoothing: temporal smoothing of the driver's crops (0 = off; video only).
        tracking: follow the driver's faces through a video with the landmark stage and run the
            face detector only when needed (:class:`pasl.align.FaceTracker`); off = detect every frame,
            as the official demo. A photo is always one detection.
        detect_every: with ``tracking``, run the detector at least every this many frames (0 = only
            on the first frame, cuts, lost or implausible faces).
        lock_scale: keep the driver crop's scale fixed over a clip (no "breathing").
        motion: ``"absolute"`` (the driver's pose and expression, the paper) or ``"relative"`` (the
            driver's motion since the clip's first driving face, on top of the source's own pose and
            expression; :func:`pasl.edit.transfer_motion`); ``mode="recompose"`` only.
        strengths: :class:`pasl.edit.MotionStrengths`, how much of the driver's head rotation, jaw,
            expression and camera each frame takes (all 1 and ``"absolute"``: the paper's code swap, bit for bit).
        paste_back: blend the generated face into the driving frame; else return crops.
        mask_kind, erode, blur, forehead, color_match: paste-back mask and colour options
            (see :func:`pasl.composite.paste_back`).
        cycle_check: report the cycle-consistency error of every frame.
        refine_steps: cycle refinement steps of the recomposed codes (0 = off).
        identity_score: score every generated face against the source with the PAE
            networks (PAE-CSIM; the models need ``identity=...``, see :mod:`pasl.identity`).
        flatten: the official test protocol's "flattened" conditioning maps.
        batch_size: frames per generator call.
        crop_landmarks: DECA's crop box from the detector's landmark stage alone on each aligned
            crop, in the box of the aligner's points (``"refit"``, the default: closest to the official
            second detection for a fraction of its cost, README "Crop landmarks"; see
            :func:`pasl.shape.refit_crop_landmarks`), from a second detection on the crop
            (``"redetect"``, the official code and presets; :func:`pasl.shape.detect_crop_landmarks`)
            or from the aligner's points mapped into the crop (``"mapped"``, no second pass).
        warp: the aligned crop by ``"cv2"`` (``cv2.warpAffine`` on 8 bit, bit-exact with the
            official crop) or ``"torch"`` (``grid_sample``; no 8-bit step).
        output_rounding: how files are quantised to 8 bit: ``"round"`` or ``"truncate"``
            (the official demos' ``mul(255).byte()``).

    :meth:`preset` gives the official demo's and test protocol's settings.
    """

    mode: str = "recompose"
    source_alignment: str = "align"
    select: str | int = "largest"
    smoothing: float = 1.0
    lock_scale: bool = False
    paste_back: bool = True
    mask_kind: str = "landmarks"
    erode: float = 0.05
    blur: float = 0.1
    forehead: float = FOREHEAD
    color_match: float = 0.0
    cycle_check: bool = False
    refine_steps: int = 0
    identity_score: bool = False
    flatten: bool = False
    batch_size: int = 8
    driver_alignment: str = "align"
    crop_landmarks: str = "refit"
    warp: str = "cv2"
    output_rounding: str = "round"
    tracking: bool = True
    detect_every: int = DEFAULT_DETECT_EVERY
    motion: str = "absolute"
    strengths: MotionStrengths = MotionStrengths()

    def __post_init__(self) -> None:
        """Every field checked at construction: a bad value is one sentence naming the field."""
        choices = {
            "mode": tuple(RECOMPOSE_MODES), "source_alignment": ALIGN_MODES, "driver_alignment": ALIGN_MODES,
            "crop_landmarks": CROP_LANDMARKS, "warp": WARPS, "output_rounding": QUANTIZE_MODES, "mask_kind": MASK_KINDS,
            "motion": MOTIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ReenactOptions.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if isinstance(self.select, bool) or not (isinstance(self.select, int) or self.select in SELECT_RULES + (SELECT_ALL,)):
            raise ValueError(f"ReenactOptions.select must be one of {', '.join(SELECT_RULES + (SELECT_ALL,))} or a face index, "
                             f"got {self.select!r}")
        for name in ("lock_scale", "paste_back", "cycle_check", "identity_score", "flatten", "tracking"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ReenactOptions.{name} must be True or False, got {getattr(self, name)!r}")
        for name, low, high in (("smoothing", 0.0, MAX_SMOOTHING), ("color_match", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"ReenactOptions.{name} must be a number in [{low:g}, {high:g}], got {value!r}")
        for name, low in (("refine_steps", 0), ("batch_size", 1), ("detect_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"ReenactOptions.{name} must be a whole number >= {low}, got {value!r}")
        if not isinstance(self.strengths, MotionStrengths):
            raise ValueError(f"ReenactOptions.strengths must be a pasl.edit.MotionStrengths, got {self.strengths!r}")
        if self.moves_by_channel and self.mode != "recompose":
            raise ValueError("relative motion (ReenactOptions.motion) and strengths (ReenactOptions.strengths) need "
                             "ReenactOptions.mode='recompose' (the source's own shape)")
        if self.motion == "relative" and self.select == SELECT_ALL:
            raise ValueError("ReenactOptions.motion='relative' follows one driving face; with select='all' use 'absolute'")
        if self.select == SELECT_ALL and not (self.paste_back and self.driver_alignment == "align"):
            raise ValueError("ReenactOptions.select='all' pastes every face back into its frame: it needs paste_back and "
                             "driver_alignment='align'")
        if self.select == SELECT_ALL and not self.tracking and (self.smoothing > 0 or self.lock_scale):
            raise ValueError("ReenactOptions.select='all' smooths each face through the face tracker: keep tracking on, "
                             "or set smoothing 0 and lock_scale off")
        try:
            check_mask_fractions(self.erode, self.blur, self.forehead)
        except (TypeError, ValueError) as err:
            raise ValueError(f"ReenactOptions: {err}") from None

    @property
    def moves_by_channel(self) -> bool:
        """Whether motion is transferred channel by channel (relative, or strengths other than 1) instead of the
        paper's plain code swap."""
        return self.motion == "relative" or self.strengths != MotionStrengths()

    @classmethod
    def preset(cls, name: str, **changes: Any) -> "ReenactOptions":
        """Options of a named preset (:data:`PRESETS`), with ``changes`` on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        return dataclasses.replace(cls(**PRESETS[name]), **changes)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # demo_video.py / demo_cam.py: source crops resized, driver aligned from FAN's first face, the driver's own
    # shape, DECA's box from a second FAN pass (no flip), aligned 256 output truncated to 8 bit
    "official-demo": dict(mode="reference", source_alignment="resize", select="score", smoothing=0.0, paste_back=False,
                          crop_landmarks="redetect", warp="cv2", output_rounding="truncate", tracking=False),
    # test_sample_mpie.py: pre-cropped 256 sources and drivers, recomposed shape, flattened maps, rounded PNGs
    "official-test": dict(mode="recompose", source_alignment="resize", driver_alignment="resize", select="score",
                          smoothing=0.0, paste_back=False, crop_landmarks="redetect", warp="cv2", flatten=True,
                          output_rounding="round", tracking=False),
}
"""Named option sets: ``paper`` (the defaults) and the two official inference paths (``docs/official-code.md`` §1).
For the official numbers use the ``fan`` alignment backend, and fp16 on CUDA for the demo, fp32 for the test."""


MOTIONS = ("absolute", "relative")
"""``ReenactOptions.motion``: the driver's pose and expression (the paper), or its motion since its first face."""


@dataclass
class MotionReference:
    """The driving clip's first face codes (batch 1), the "no motion" of ``motion="relative"``; set by the
    first chunk that has a face and kept for the rest of the clip."""

    codes: FlameCodes | None = None


@dataclass(frozen=True)
class SourceFace:
    """The encoded source: what every driving frame reuses.

    Usually batch 1 (one person for a whole clip); batch B pairs source ``i`` with driving frame ``i``
    (the benchmark runner's batches of pairs).
    """

    crop: torch.Tensor
    """``(1, 3, 256, 256)`` the aligned source face."""
    style: torch.Tensor
    """``(1, 128)`` AEG style code (on the models' device, in their dtype)."""
    shape: ShapeCodes
    """FLAME codes of the source (batch 1)."""
    alignment: FaceAlignment
    identity: IdentityReference | None = None
    """PAE embeddings and yaw of the source (with ``identity_score``)."""

    def rows(self, index: torch.Tensor) -> "SourceFace":
        """The sources of the driving frames at ``index`` (itself when it is one source for all)."""
        if self.style.shape[0] == 1:
            return self
        shape = self.shape
        picked = ShapeCodes(shape.codes.select(index), shape.tform[index.to(shape.tform.device)],
                            None if shape.has_face is None else shape.has_face[index.cpu()])
        return SourceFace(self.crop[index.to(self.crop.device)], self.style[index.to(self.style.device)], picked, self.alignment)


@dataclass(frozen=True)
class ReenactedChunk:
    """Results for a chunk of driving frames (``B`` frames, all tensors on the CPU, float32).

    Attributes:
        faces: ``(B, 3, 256, 256)`` generated aligned faces; frames without a face keep
            their (letterboxed) driver crop.
        frames: ``(B, 3, H, W)`` composites (the driving frames unchanged where there is no
            face), or ``None`` without paste-back.
        masks: ``(B, 1, H, W)`` blend masks, or ``None`` without paste-back.
        depth, landmarks: ``(B, 3, 256, 256)`` conditioning maps (zeros without a face).
        has_face: ``(B,)`` bool.
        first_frame: index of the chunk's first frame in the whole clip.
        cycle: per-frame cycle errors of the frames with a face (``cycle_check``), else None.
        identity: per-frame PAE-CSIM to the source (NaN without a face), with ``identity_score``.
        face_counts: ``(B,)`` int64 faces the detector found in each frame (-1: detection was
            skipped), so a summary can say where one of several faces was chosen.
        detected: ``(B,)`` bool, the face detector ran on the frame; None without tracking (it ran on all).
        track_ids: ``(B,)`` int64 track of the reenacted face (-1: none); None without tracking.
        frame_index: with ``select="all"``, ``(N,)`` int64: the chunk frame of each row of ``faces``,
            ``depth``, ``landmarks``, ``has_face``, ``face_counts``, ``detected``, ``track_ids`` and the
            identity scores, which are then faces (a frame without any keeps one faceless row); ``frames``
            and ``masks`` stay one per frame, every face pasted in. None: row ``i`` is frame ``i``.
        driver_crops: ``(B, 3, 256, 256)`` the aligned driver crops the faces were made for (the benchmark
            runner saves them beside the fakes).
    """

    faces: torch.Tensor
    frames: torch.Tensor | None
    masks: torch.Tensor | None
    depth: torch.Tensor
    landmarks: torch.Tensor
    has_face: torch.Tensor
    first_frame: int = 0
    cycle: CycleReport | None = None
    identity: IdentityScores | None = None
    face_counts: torch.Tensor | None = None
    detected: torch.Tensor | None = None
    track_ids: torch.Tensor | None = None
    frame_index: torch.Tensor | None = None
    driver_crops: torch.Tensor | None = None

    @property
    def frame_count(self) -> int:
        return int(self.has_face.numel()) if self.frame_index is None else int(self.frame_index.max()) + 1

    def frame_of(self, row: int) -> int:
        """Index in the clip of the frame of ``row``."""
        return self.first_frame + (row if self.frame_index is None else int(self.frame_index[row]))

    @property
    def faceless_frames(self) -> list[int]:
        return [self.frame_of(i) for i in (~self.has_face).nonzero().flatten().tolist()]


SELECT_WORDS = {"largest": "the largest", "central": "the most central", "score": "the detector's most confident", "all": "all"}
"""How a summary names each ``select`` rule ("used the largest")."""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _selected(select: str | int) -> str:
    if isinstance(select, int):
        return f"face {select} counted from the image's {'left' if select >= 0 else 'right'}"
    return SELECT_WORDS.get(select, repr(select))


def _listed(indices: list[int], limit: int = 20) -> str:
    return ", ".join(map(str, indices[:limit])) + (" ..." if len(indices) > limit else "")


@dataclass
class RunSummary:
    """Accumulated over a stream: what a user wants to read at the end.

    :meth:`text` is one line; :meth:`headline` and :meth:`notes` are its parts, for a
    command line that adds its timing to the headline and prints the notes on their own lines.
    """

    frames: int = 0
    faceless: list[int] = field(default_factory=list)
    csim: list[float] = field(default_factory=list)
    """PAE-CSIM of every scored face (``identity_score``)."""
    select: str | int = "largest"
    """The ``select`` rule that chose one face where the detector found several."""
    source_faces: int | None = None
    """Faces the detector found on the source (None: not recorded; -1: detection skipped)."""
    several: dict[int, int] = field(default_factory=dict)
    """Driving frame -> face count, for the frames in which the detector found more than one face."""
    tracked_frames: int = 0
    """Driving frames that went through the face tracker."""
    detections: int = 0
    """Of those, the frames on which the face detector ran (the others only ran the landmark stage)."""
    tracks: set[int] = field(default_factory=set)
    """Ids of the tracks whose faces were reenacted."""
    all_faces: int | None = None
    """With ``select="all"``: faces reenacted (several per frame); None otherwise."""

    def note_source(self, source: SourceFace, select: str | int) -> None:
        """Record how many faces the source showed and which rule chose among them."""
        self.select = select
        self.source_faces = int(source.alignment.face_counts.reshape(-1)[0])

    def add(self, chunk: ReenactedChunk) -> None:
        self.frames += chunk.frame_count
        self.faceless += chunk.faceless_frames
        if chunk.frame_index is not None:
            self.all_faces = (self.all_faces or 0) + int(chunk.has_face.sum())
        if chunk.face_counts is not None:
            counts = chunk.face_counts.cpu().tolist()
            self.several.update({chunk.frame_of(i): n for i, n in enumerate(counts) if n > 1})
        if chunk.detected is not None:
            ran = {chunk.frame_of(i): bool(d) for i, d in enumerate(chunk.detected.tolist())}
            self.tracked_frames += len(ran)
            self.detections += sum(ran.values())
        if chunk.track_ids is not None:
            self.tracks.update(i for i in chunk.track_ids.tolist() if i >= 0)
        if chunk.identity is not None:
            self.csim += [v for v in chunk.identity.csim.tolist() if v == v]  # NaN (no face) left out

    def headline(self) -> str:
        """``"12 frames reenacted"``, ``"1 frame reenacted"`` or ``"10 of 12 frames reenacted"``."""
        if not self.faceless:
            return f"{_plural(self.frames, 'frame')} reenacted"
        return f"{self.frames - len(self.faceless)} of {_plural(self.frames, 'frame')} reenacted"

    def notes(self) -> list[str]:
        """What else a user should know: faceless frames, several faces and which was used, identity scores."""
        notes = []
        if self.faceless:
            where = "frame" if len(self.faceless) == 1 else "frames"
            notes.append(f"no face in {where} {_listed(self.faceless)} (passed through unchanged)")
        used = _selected(self.select)
        if self.source_faces is not None and self.source_faces > 1:
            notes.append(f"source: {self.source_faces} faces, used {_selected('largest') if self.select == SELECT_ALL else used}")
        if self.several and self.select != SELECT_ALL:  # with "all" the all-faces note says it
            frames = sorted(self.several)
            if len(frames) == 1:
                notes.append(f"driver: {self.several[frames[0]]} faces in frame {frames[0]}, used {used}")
            else:
                most = max(self.several.values())
                notes.append(f"driver: several faces (up to {most}) in frames {_listed(frames)}, used {used}")
        if self.all_faces is not None:
            notes.append(f"all faces: {_plural(self.all_faces, 'face')} reenacted"
                         + (f" ({_plural(len(self.tracks), 'track')})" if self.tracks else ""))
        if self.detections < self.tracked_frames:  # silent when tracking saved nothing (e.g. a photo)
            notes.append(f"face tracking: the detector ran on {self.detections} of {_plural(self.tracked_frames, 'frame')} "
                         f"({_plural(len(self.tracks), 'track')})")
        if self.csim:
            notes.append(f"identity (PAE-CSIM to the source) mean {sum(self.csim) / len(self.csim):.4f}, min {min(self.csim):.4f}")
        return notes

    def text(self) -> str:
        return "; ".join([self.headline(), *self.notes()])


class Reenactor:
    """Runs PASL with one set of models and options.

    Args:
        models: from :func:`pasl.models.load_models` (shape stage required).
        detector: from :func:`pasl.align.make_detector` (loaded once, reused).
        options: :class:`ReenactOptions`.
        empty_cache: frees cached GPU memory when the generator's batch is halved after an
            out-of-memory error (ComfyUI's ``soft_empty_cache``); default
            :func:`pasl.oom.free_cached_memory`. A halved batch stays halved for the later chunks.
        timer: optional stage timer (:class:`pasl.timing.StageTimer`): each stage runs inside
            ``timer(name)``, for ``python -m pasl.bench``; ``None`` (default) measures nothing.
    """

    def __init__(self, models: PASLModels, detector, options: ReenactOptions | None = None,
                 empty_cache: Callable[[], None] | None = None, timer: Callable[[str], Any] | None = None):
        models.require_shape_stage()
        if options is not None and options.identity_score:
            models.require_identity()
        self.models = models
        self.detector = detector
        self.options = options or ReenactOptions()
        self.generator_batch = Backoff(self.options.batch_size, empty_cache)
        self.timer = timer

    def _stage(self, name: str):
        """``timer(name)``, or a no-op context without a timer."""
        return contextlib.nullcontext() if self.timer is None else self.timer(name)

    def encode_source(self, image: Any) -> SourceFace:
        """Align (or resize) the source image, then its style code and FLAME codes."""
        select = "largest" if self.options.select == SELECT_ALL else self.options.select
        with self._stage("align"):
            alignment = align_faces(image, select=select, mode=self.options.source_alignment, detector=self.detector,
                                    warp=self.options.warp)
        if len(alignment) != 1:
            raise ValueError(f"give one source image, got {len(alignment)}")
        if not bool(alignment.has_face[0]) and self.options.source_alignment == "resize":
            log.warning("no face landmarks on the source crop: its shape comes from DECA's whole-image fallback")
        models = self.models
        crop = alignment.crops.to(models.device)
        with torch.inference_mode():
            with self._stage("style"):
                style = models.aeg.style_encoder(crop.to(models.dtype))
            shape = self._shape_codes(alignment.crops, alignment.landmarks_crop, alignment.has_face)
            with self._stage("identity"):
                identity = encode_identity(models, crop, shape) if self.options.identity_score else None
        return SourceFace(crop=crop, style=style, shape=shape, alignment=alignment, identity=identity)

    def _shape_codes(self, crops: torch.Tensor, landmarks_crop: torch.Tensor, has_face: torch.Tensor) -> ShapeCodes:
        with self._stage("shape"):
            return shape_codes(
                self.models.shape_encoder, crops, landmarks_crop, has_face, crop_landmarks=self.options.crop_landmarks,
                detector=self.detector,
            )

    def _align(self, frames: list[torch.Tensor], smoother: TemporalSmoother | None, tracker: FaceTracker | None = None) -> FaceAlignment:
        o = self.options
        with self._stage("align"):
            if tracker is not None:
                return align_faces(frames, select=o.select, mode=o.driver_alignment, tracker=tracker, require_face=False, warp=o.warp)
            return align_faces(
                frames, select=o.select, mode=o.driver_alignment, detector=self.detector, smoother=smoother, require_face=False, warp=o.warp
            )

    def tracker(self, fps: float = 25.0) -> FaceTracker | None:
        """A :class:`FaceTracker` for one driving clip with these options (it smooths each face), or None
        when the options detect every frame (``tracking`` off, or drivers that are already crops)."""
        o = self.options
        if not o.tracking or o.driver_alignment != "align":
            return None
        return FaceTracker(self.detector, o.detect_every, smoothing=o.smoothing, fps=fps, lock_scale=o.lock_scale)

    def _generate(self, source: SourceFace, driver: ShapeCodes, reference: MotionReference | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, CycleReport | None]:
        models, options = self.models, self.options
        moved: dict[str, Any] = {}
        if options.moves_by_channel:
            relative = options.motion == "relative" and reference is not None
            if relative and reference.codes is None:
                reference.codes = driver.codes.index(0)  # the clip's first driving face is "no motion"
            moved = dict(strengths=options.strengths, reference=reference.codes if relative else None)
        with self._stage("recompose"):
            shapes, report = recompose_shapes(models, source.shape, driver, options.mode, options.refine_steps, options.cycle_check,
                                              **moved)
        with self._stage("render"):
            depth, landmarks = render_conditioning(models.flame, models.faces, shapes, flatten=options.flatten)
        with self._stage("generate"):
            faces = generate_faces(models.aeg.generator, source.style, depth, landmarks, shapes.face_mask, batch_size=self.generator_batch)
        return faces, depth, landmarks, report

    def reenact(self, source: SourceFace, frames: Any, smoother: TemporalSmoother | None = None, first_frame: int = 0,
                tracker: FaceTracker | None = None, reference: MotionReference | None = None) -> ReenactedChunk:
        """Reenact one chunk of driving frames (all of one size when pasting back); the consecutive chunks
        of a clip share one ``tracker`` (from :meth:`tracker`) or ``smoother``, and with ``motion="relative"``
        one :class:`MotionReference` (without one, e.g. a single photo, relative motion is measured from
        the source itself: the driver's pose and expression weighed by the strengths)."""
        frame_list = to_frames(frames)
        alignment = self._align(frame_list, smoother, tracker)
        count = len(alignment)  # rows: frames, or faces with select="all"
        has_face = alignment.has_face.cpu()
        driver_crops = alignment.crops.cpu()
        faces = driver_crops.clone()
        depth, landmarks = torch.zeros(count, 3, ALIGNED_SIZE, ALIGNED_SIZE), torch.zeros(count, 3, ALIGNED_SIZE, ALIGNED_SIZE)
        report = None
        index = has_face.nonzero().flatten()
        if index.numel():
            with torch.inference_mode():  # refine_codes switches gradients back on for itself
                driver = self._shape_codes(alignment.crops[index], alignment.landmarks_crop[index], has_face[index])
                generated, maps_depth, maps_landmarks, report = self._generate(source.rows(index), driver, reference)
            generated = generated.cpu()
            self._check_finite(generated, index, first_frame, alignment.frame_index)
            faces[index], depth[index], landmarks[index] = generated, maps_depth.cpu(), maps_landmarks.cpu()
        identity = None
        if self.options.identity_score and source.identity is not None:
            with torch.inference_mode(), self._stage("identity"):
                identity = score_identity(self.models, source.identity, faces, skip=~has_face)

        composite = masks = None
        if self.options.paste_back:
            with self._stage("paste"):
                composite, masks = self._paste(frame_list, faces, alignment, has_face)
        counts = alignment.face_counts.cpu()
        detected = None if alignment.detected is None else alignment.detected.cpu()
        track_ids = None if alignment.track_ids is None else alignment.track_ids.cpu()
        frame_index = None if alignment.frame_index is None else alignment.frame_index.cpu()
        return ReenactedChunk(faces, composite, masks, depth, landmarks, has_face, first_frame, report, identity, counts,
                              detected=detected, track_ids=track_ids, frame_index=frame_index, driver_crops=driver_crops)

    def _check_finite(self, generated: torch.Tensor, index: torch.Tensor, first_frame: int,
                      frame_index: torch.Tensor | None = None) -> None:
        """Refuse NaN/inf faces: pasted back they would be written as black or garbage pixels without a word.

        One ``isfinite`` pass per chunk on the CPU copy the chunk needs anyway. fp16/bf16 overflow in the
        generator is the usual cause, hence the hint.
        """
        finite = torch.isfinite(generated).flatten(1).all(1)
        if bool(finite.all()):
            return
        rows = index[~finite]
        bad = sorted(set(((rows if frame_index is None else frame_index.cpu()[rows]) + first_frame).tolist()))
        raise NonFiniteError(
            f"the generator produced non-finite pixels (NaN or inf) in frame{'s' if len(bad) > 1 else ''} {_listed(bad)} "
            f"running in {str(self.models.dtype).replace('torch.', '')}; load the models in float32 (--precision fp32 "
            "on the command line) and check the AEG checkpoint"
        )

    def _paste(self, frames: list[torch.Tensor], faces: torch.Tensor, alignment: FaceAlignment, has_face: torch.Tensor):
        if len({tuple(f.shape) for f in frames}) != 1:
            raise ValueError("paste-back needs driving frames of one size per chunk; reenact images of other sizes separately")
        batch = torch.stack(frames).float()
        if not bool(has_face.any()):
            return batch, torch.zeros(batch.shape[0], 1, *batch.shape[-2:])
        o = self.options
        options = dict(mask_kind=o.mask_kind, erode=o.erode, blur=o.blur, color_match=o.color_match, forehead=o.forehead)
        frame_from_crop, landmarks_crop = alignment.frame_from_crop.cpu(), alignment.landmarks_crop.cpu()
        with torch.inference_mode():
            if alignment.frame_index is None:
                return paste_back(batch, faces, frame_from_crop, landmarks_crop, has_face, **options)
            # select="all": the faces of a frame are pasted one after the other into the same frame
            masks = torch.zeros(batch.shape[0], 1, *batch.shape[-2:])
            for row in has_face.nonzero().flatten().tolist():
                f = int(alignment.frame_index[row])
                one = slice(row, row + 1)
                batch[f : f + 1], mask = paste_back(batch[f : f + 1], faces[one], frame_from_crop[one], landmarks_crop[one],
                                                    has_face[one], **options)
                masks[f] = torch.maximum(masks[f], mask[0])
            return batch, masks

    def reenact_stream(
        self,
        source: SourceFace,
        chunks: Iterable[Any],
        fps: float = 25.0,
        progress: Callable[[int], None] | None = None,
        summary: RunSummary | None = None,
    ) -> Iterator[ReenactedChunk]:
        """Reenact consecutive chunks of one clip; ``progress(frames_done)`` runs after each chunk
        and may raise to cancel. With ``tracking`` (the default) one :class:`FaceTracker` follows the
        faces through the clip; else one smoother spans the chunks. Raises :class:`NoFaceError` at the end if no frame had a face, and
        :class:`NonFiniteError` as soon as the generator returns NaN or inf for a frame."""
        o = self.options
        tracker = self.tracker(fps)
        reference = MotionReference()
        smoother = None
        if tracker is None and (o.smoothing > 0 or o.lock_scale):
            smoother = TemporalSmoother(strength=o.smoothing, fps=fps, lock_scale=o.lock_scale)
        summary = summary if summary is not None else RunSummary()
        if summary.source_faces is None:
            summary.note_source(source, o.select)
        for chunk in chunks:
            result = self.reenact(source, chunk, smoother, first_frame=summary.frames, tracker=tracker, reference=reference)
            summary.add(result)
            yield result
            if progress is not None:
                progress(summary.frames)
        if summary.frames and len(summary.faceless) == summary.frames:
            raise NoFaceError(f"no face in any of the {summary.frames} driving frames: nothing was reenacted")
        log.info("%s", summary.text())


def frames_to_chunks(frames: torch.Tensor, chunk_size: int) -> Iterator[torch.Tensor]:
    """Split a ``(B, ...)`` batch into views of at most ``chunk_size`` frames."""
    if chunk_size < 1:
        raise PASLError(f"chunk_size must be positive, got {chunk_size}")
    yield from frames.split(chunk_size)
