"""The shape stage in two calls: aligned crops -> FLAME codes (:func:`shape_codes`), codes ->
the AEG's two maps (:func:`render_conditioning`).

Everything in between (DECA's landmark pass and crop, ``E_flame``, FLAME, projection back
into the 256 crop, depth and landmark rendering) is the official recipe of
``docs/official-code.md`` §1.4-1.5; this module only wires the pieces together so that the pipeline,
every node and the identity score read a face the same way. In particular a face's yaw is
always :func:`face_yaw` of its :func:`shape_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .csg.codes import FlameCodes, recompose
from .csg.crop import deca_crop, deca_crop_transform
from .csg.cycle import CycleReport, cycle_check, refine_codes
from .edit import MotionStrengths, transfer_motion
from .geometry import ALIGNED_SIZE, NUM_LANDMARKS
from .imageops import to_uint8
from .pae import head_yaw_degrees
from .render import conditioning_maps, crop_to_image, orthographic_project


@dataclass(frozen=True)
class ShapeCodes:
    """FLAME codes of faces plus the DECA crop each was read from (the ``PASL_SHAPE`` payload).

    Attributes:
        codes: :class:`FlameCodes` of batch B.
        tform: ``(B, 3, 3)`` DECA ``crop_from_image`` (256-crop pixels -> 224-crop pixels);
            the rendering is mapped back through it, so the maps line up with the 256 crop.
        has_face: ``(B,)`` bool, or ``None`` for all True. Frames without a face keep codes
            (DECA's whole-crop fallback) so batches stay aligned, but render as empty maps.
    """

    codes: FlameCodes
    tform: torch.Tensor
    has_face: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.codes.batch_size

    @property
    def face_mask(self) -> torch.Tensor:
        """``(B,)`` bool on the CPU: which entries hold a real face."""
        return torch.ones(self.batch_size, dtype=torch.bool) if self.has_face is None else self.has_face.cpu().bool()

    def with_faces(self, has_face: torch.Tensor | None) -> "ShapeCodes":
        """The same codes, flagged per entry as holding a face or not (for :func:`render_conditioning`)."""
        return ShapeCodes(self.codes, self.tform, None if has_face is None else torch.as_tensor(has_face).cpu().bool())

    def with_codes(self, codes: FlameCodes) -> "ShapeCodes":
        return ShapeCodes(codes, self.tform, self.has_face)

    def __getitem__(self, index: slice) -> "ShapeCodes":
        return ShapeCodes(self.codes[index], self.tform[index], None if self.has_face is None else self.has_face[index])

    @classmethod
    def cat(cls, parts: "list[ShapeCodes]") -> "ShapeCodes":
        has_face = None if all(p.has_face is None for p in parts) else torch.cat([p.face_mask for p in parts])
        return cls(FlameCodes.cat([p.codes for p in parts]), torch.cat([p.tform for p in parts]), has_face)


CROP_LANDMARKS = ("redetect", "mapped", "refit")
"""Where DECA's crop box comes from: a full detection on each crop (:func:`detect_crop_landmarks`,
the official code), the aligner's points mapped into the crop, or the landmark stage alone on the
crop in the box of the mapped points (:func:`refit_crop_landmarks`)."""


def detect_crop_landmarks(detector, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DECA's own landmark pass on aligned crops, as the official ``TestData`` does.

    The official code runs a second detector on each 256 crop (FAN without flip input)
    and boxes the first face's 68 points; without a face it crops the whole image. The
    aligner's landmarks mapped into the crop (``FaceAlignment.landmarks_crop``) are nearly
    the same points, one detection cheaper, but not the same numbers.

    Args:
        detector: a :class:`pasl.align.Detector`; its :meth:`for_crop_landmarks` runs.
        crops: ``(B, 3, H, W)`` RGB in [0, 1] (quantised to 8 bit, like the official uint8 crop).

    Returns:
        ``(landmarks, found)``: ``(B, 68, 2)`` float32 crop pixels (zeros where no face) and
        ``(B,)`` bool, ready for :func:`encode_shapes`.
    """
    second = detector.for_crop_landmarks()
    images = to_uint8(crops.detach().float().cpu()).permute(0, 2, 3, 1).numpy()
    landmarks = torch.zeros(crops.shape[0], NUM_LANDMARKS, 2)
    found = torch.zeros(crops.shape[0], dtype=torch.bool)
    for i, image in enumerate(images):
        faces = second.detect(image)
        if faces:  # the official code takes the first face: the detector's highest score
            landmarks[i], found[i] = faces[0].landmarks.float(), True
    return landmarks, found


def refit_crop_landmarks(detector, crops: torch.Tensor, mapped: torch.Tensor, found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DECA's landmark pass without its face detector: the detector's landmark stage on each crop,
    in the box its own detector would give the aligner's points mapped into the crop.

    The aligned crop is built from those very points, so the face is where they say; only the
    landmark network has to run (dlib: the shape predictor, ~2 ms a face, instead of a detection;
    FAN: no S3FD).

    Args:
        detector: a :class:`pasl.align.Detector`; its :meth:`for_crop_landmarks` runs
            :meth:`~pasl.align.Detector.landmarks_from_points` on ``mapped`` (by default
            :meth:`~pasl.align.Detector.landmarks_in_boxes` in their
            :meth:`~pasl.align.Detector.box_from_landmarks`; dlib: the predictor in the points' HOG box).
        crops: ``(B, 3, H, W)`` RGB in [0, 1] (quantised to 8 bit, as for :func:`detect_crop_landmarks`).
        mapped: ``(B, 68, 2)`` the aligner's points in crop pixels.
        found: ``(B,)`` bool: entries with a face (the others, and any with non-finite points,
            stay zeros and not found: DECA's whole-crop fallback).

    Returns:
        ``(landmarks, found)`` like :func:`detect_crop_landmarks`.
    """
    second = detector.for_crop_landmarks()
    mapped = torch.as_tensor(mapped).detach().float().cpu()
    found = torch.as_tensor(found).cpu().bool() & torch.isfinite(mapped).flatten(1).all(1)
    landmarks = torch.zeros(crops.shape[0], NUM_LANDMARKS, 2)
    rows = found.nonzero().flatten()
    if rows.numel():
        images = to_uint8(crops.detach()[rows.to(crops.device)].float().cpu()).permute(0, 2, 3, 1).numpy()
        for j, i in enumerate(rows.tolist()):
            landmarks[i] = second.landmarks_from_points(images[j], mapped[i : i + 1])[0].float()
        found = found & torch.isfinite(landmarks).flatten(1).all(1)
        landmarks = torch.where(found[:, None, None], landmarks, torch.zeros_like(landmarks))
    return landmarks, found


def _deca_landmarks(
    rule: str, detector, crops: torch.Tensor, mapped: torch.Tensor | None, has_face: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks (and found flags) DECA's crop is boxed from, per :data:`CROP_LANDMARKS`.

    ``"redetect"`` with a detector runs :func:`detect_crop_landmarks`, ``"refit"`` with a
    detector and mapped points :func:`refit_crop_landmarks`; otherwise the aligner's points
    ``mapped`` are used where ``has_face``, and without them DECA's whole-crop fallback.
    """
    if rule not in CROP_LANDMARKS:
        raise ValueError(f"crop_landmarks must be one of {CROP_LANDMARKS}, got {rule!r}")
    count = crops.shape[0]
    if rule == "redetect" and detector is not None:
        return detect_crop_landmarks(detector, crops)
    if mapped is None:
        return torch.zeros(count, NUM_LANDMARKS, 2), torch.zeros(count, dtype=torch.bool)
    found = torch.ones(count, dtype=torch.bool) if has_face is None else torch.as_tensor(has_face).cpu().bool()
    if rule == "refit" and detector is not None:
        return refit_crop_landmarks(detector, crops, mapped, found)
    return mapped.detach().cpu(), found


def shape_codes(
    encoder,
    crops: torch.Tensor,
    landmarks_crop: torch.Tensor | None = None,
    has_face: torch.Tensor | None = None,
    *,
    crop_landmarks: str = "redetect",
    detector=None,
) -> ShapeCodes:
    """FLAME codes of aligned face crops: DECA's landmark pass, its 224 crop, ``E_flame``.

    The one way the package reads a face's shape (pipeline, nodes, identity score).

    Args:
        encoder: a :class:`pasl.csg.encoder.FlameEncoder` (any device/dtype).
        crops: ``(B, 3, 256, 256)`` RGB in [0, 1], any device.
        landmarks_crop: ``(B, 68, 2)`` the aligner's points in crop pixels (NaN where no
            face), or None (e.g. generated faces).
        has_face: ``(B,)`` bool from the aligner, or None for all True. Entries without a
            face keep DECA's whole-crop codes, so batches stay aligned, and are flagged in
            the result (they render as empty maps).
        crop_landmarks: where DECA's crop box comes from (:data:`CROP_LANDMARKS`):
            ``"redetect"``, the official second landmark pass on each crop (needs
            ``detector``; without one it falls back to ``"mapped"``), ``"mapped"``, the
            aligner's points (one detection cheaper; without them DECA crops the whole crop),
            or ``"refit"``, the detector's landmark stage alone in the box of the aligner's
            points (:func:`refit_crop_landmarks`; needs both, else it acts as ``"mapped"``).
        detector: a :class:`pasl.align.Detector` for ``"redetect"`` and ``"refit"``.

    Returns:
        :class:`ShapeCodes` on the encoder's device in float32.
    """
    if crops.ndim != 4 or crops.shape[1:] != (3, ALIGNED_SIZE, ALIGNED_SIZE):
        raise ValueError(f"crops must have shape (B, 3, {ALIGNED_SIZE}, {ALIGNED_SIZE}), got {tuple(crops.shape)}")
    count = crops.shape[0]
    if landmarks_crop is not None and tuple(landmarks_crop.shape) != (count, NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks_crop must have shape ({count}, {NUM_LANDMARKS}, 2), got {tuple(landmarks_crop.shape)}")
    if has_face is not None and tuple(has_face.shape) != (count,):
        raise ValueError(f"has_face must have shape ({count},), got {tuple(has_face.shape)}")
    device = next(encoder.parameters()).device
    images, tform = deca_images(crops, landmarks_crop, has_face, crop_landmarks=crop_landmarks, detector=detector, device=device)
    codes = encoder(images).to(torch.float32)
    return ShapeCodes(codes, tform.to(torch.float32), None if has_face is None else torch.as_tensor(has_face).cpu().bool())


def deca_images(
    crops: torch.Tensor,
    landmarks_crop: torch.Tensor | None = None,
    has_face: torch.Tensor | None = None,
    *,
    crop_landmarks: str = "redetect",
    detector=None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`shape_codes` feeds the encoder: ``(B, 3, 224, 224)`` DECA crops of the 256 crops and their
    ``(B, 3, 3)`` float64 ``crop_from_image``, on ``device`` (default: the crops'). Same arguments as
    :func:`shape_codes`; for callers that run the encoder themselves (its training)."""
    device = crops.device if device is None else torch.device(device)
    landmarks, found = _deca_landmarks(crop_landmarks, detector, crops, landmarks_crop, has_face)
    landmarks = torch.where(found[:, None, None], landmarks, torch.zeros_like(landmarks)).to(device)
    tform = deca_crop_transform(landmarks, face_found=found.to(device), image_size=(ALIGNED_SIZE, ALIGNED_SIZE))
    return deca_crop(crops.to(device=device, dtype=torch.float32), tform), tform


def face_yaw(shapes: ShapeCodes) -> torch.Tensor:
    """Head yaw in degrees, ``(B,)`` on the CPU: the one definition, from a face's :func:`shape_codes`.

    It picks the PAE network of an identity score (pose bins at 30 and 60 degrees), so
    every path must read it from the same codes.
    """
    return head_yaw_degrees(shapes.codes.pose).cpu()


def render_conditioning(flame, faces: torch.Tensor, shapes: ShapeCodes, flatten: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth and landmark maps of ``shapes`` in the 256 crop, ready for the generator.

    Args:
        flame: a :class:`pasl.flame.FLAME` layer.
        faces: ``(F, 3)`` long rendering topology (``head_template.obj``).
        shapes: codes and DECA crops (e.g. recomposed codes with the driver's crops).
        flatten: the test-protocol "flattening" (``docs/official-code.md`` §1.7); off for the demos.

    Returns:
        ``(depth, landmarks)``, each ``(B, 3, 256, 256)`` float32 in [0, 1]; all zero for
        entries without a face (``shapes.has_face``), which are not rendered.
    """
    found = shapes.face_mask
    device = flame.v_template.device
    if not bool(found.all()):  # render the faces only; the others stay empty
        depth = torch.zeros(shapes.batch_size, 3, ALIGNED_SIZE, ALIGNED_SIZE, device=device)
        landmark_maps = torch.zeros_like(depth)
        index = found.nonzero().flatten()
        if index.numel():
            with_face = ShapeCodes(shapes.codes.select(index), shapes.tform[index.to(shapes.tform.device)])
            rows = index.to(device)
            depth[rows], landmark_maps[rows] = render_conditioning(flame, faces, with_face, flatten)
        return depth, landmark_maps
    vertices, landmarks = _project(flame, shapes, with_vertices=True)
    return conditioning_maps(vertices, landmarks, faces.to(device), flatten=flatten)


def _project(flame, shapes: ShapeCodes, with_vertices: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """FLAME posed by ``shapes`` and projected into the 256 crop: vertices (or None) and the 68 landmarks."""
    device = flame.v_template.device
    codes = shapes.codes.to(device=device, dtype=flame.v_template.dtype)
    output = flame(codes.shape, codes.exp, codes.pose)
    tform = shapes.tform.to(device)
    vertices = crop_to_image(orthographic_project(output.vertices, codes.cam), tform) if with_vertices else None
    return vertices, crop_to_image(orthographic_project(output.landmarks2d, codes.cam)[..., :2], tform)


def face_points(flame, shapes: ShapeCodes) -> torch.Tensor:
    """``(B, 68, 2)`` the 68 landmarks of the FLAME face ``shapes`` describes, in 256-crop pixels:
    the points the landmark map draws (``x * 128 + 128`` of their NDC, as the official drawing
    de-normalises them), e.g. for a paste-back mask around a face that was turned."""
    ndc = _project(flame, shapes, with_vertices=False)[1]
    return ndc * (ALIGNED_SIZE / 2) + ALIGNED_SIZE / 2


def recompose_shapes(
    models, source: ShapeCodes, driver: ShapeCodes, mode: str = "recompose", refine_steps: int = 0, check: bool = False,
    *, strengths: MotionStrengths | None = None, reference: FlameCodes | None = None,
) -> tuple[ShapeCodes, CycleReport | None]:
    """The CSG's recomposed shape, on the driver's crops; optionally refined and checked.

    Args:
        models: a :class:`pasl.models.PASLModels` with the shape stage.
        source: codes of the source (batch 1, or one per driver frame).
        driver: codes of the driving frames.
        mode: see :func:`pasl.csg.codes.recompose`.
        refine_steps: cycle-consistency refinement steps (0 = off).
        check: also return the per-frame cycle errors.
        strengths, reference: motion transfer channel by channel (:func:`pasl.edit.transfer_motion`,
            ``mode="recompose"`` only): per-channel strengths, and a driver frame's codes (batch 1) for
            relative motion. Both None: the paper's code swap, bit for bit.
    """
    if strengths is None and reference is None:
        codes = recompose(source.codes, driver.codes, mode)
    elif mode != "recompose":
        raise ValueError(f"motion strengths and relative motion need mode='recompose' (the source's own shape), got mode={mode!r}")
    else:
        codes = transfer_motion(source.codes, driver.codes, reference, strengths)
    shapes = driver.with_codes(codes)
    if refine_steps > 0:
        shapes = shapes.with_codes(refine_codes(shapes.codes, models.shape_encoder, models.flame, models.faces, refine_steps))
    report = cycle_check(shapes.codes, models.shape_encoder, models.flame, models.faces) if check else None
    if report is not None and driver.has_face is not None:
        report = report.without(~driver.face_mask)  # frames without a face have nothing to measure
    return shapes, report
