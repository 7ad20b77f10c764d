"""A portrait posed by FLAME codes: the source alone, turned, animated or re-expressed, no driver needed.

:func:`pose_source` renders the source's encoded face (its style code and DECA crop) in any
FLAME codes, e.g. from :func:`pasl.edit.edit_codes` or :func:`pasl.keyframes.animate_codes`;
:func:`paste_posed` blends the results back into the source photo. The paste-back mask is the
union of the source's own face outline and the posed face's, so a face turned to profile
also covers where the frontal face was (the generator repaints that part of the crop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .composite import paste_back
from .csg.codes import FlameCodes
from .generate import generate_faces
from .geometry import ALIGNED_SIZE
from .masks import face_mask
from .shape import ShapeCodes, face_points, render_conditioning


@dataclass(frozen=True)
class PosedFaces:
    """Faces of one source in a batch of codes (CPU, float32).

    Attributes:
        faces: ``(B, 3, 256, 256)`` generated aligned faces.
        depth, landmarks: ``(B, 3, 256, 256)`` the conditioning maps they were drawn from.
        points: ``(B, 68, 2)`` the posed faces' landmarks in crop pixels.
    """

    faces: torch.Tensor
    depth: torch.Tensor
    landmarks: torch.Tensor
    points: torch.Tensor


def posed_shapes(source_shape: ShapeCodes, codes: FlameCodes) -> ShapeCodes:
    """``codes`` placed in the source's DECA crop, so their maps line up with the source's 256 crop."""
    tform = source_shape.tform[:1].expand(codes.batch_size, 3, 3)
    return ShapeCodes(codes.to(source_shape.codes.device), tform)


def pose_source(
    models, style: torch.Tensor, source_shape: ShapeCodes, codes: FlameCodes, *, batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> PosedFaces:
    """The source (its ``style`` code and :class:`ShapeCodes`) drawn in each of ``codes``.

    Args:
        models: :class:`pasl.models.PASLModels` with the shape stage.
        style: ``(1, 128)`` the source's AEG style code.
        source_shape: the source's codes (batch 1): its DECA crop places the maps.
        codes: ``(B)`` FLAME codes to draw the source in (their ``shape`` is used as given).
        batch_size, progress: as :func:`pasl.generate.generate_faces`.
    """
    models.require_shape_stage()
    shapes = posed_shapes(source_shape, codes)
    with torch.inference_mode():
        depth, landmark_maps = render_conditioning(models.flame, models.faces, shapes)
        points = face_points(models.flame, shapes).float().cpu()
        faces = generate_faces(models.aeg.generator, style, depth, landmark_maps, batch_size=batch_size, progress=progress,
                               out_device="cpu")
    return PosedFaces(faces, depth.float().cpu(), landmark_maps.float().cpu(), points)


def paste_posed(
    image: torch.Tensor,
    frame_from_crop: torch.Tensor,
    source_points: torch.Tensor | None,
    posed: PosedFaces,
    *,
    erode: float = 0.05,
    blur: float = 0.1,
    forehead: float = 0.25,
    color_match: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every posed face blended into the source photo.

    Args:
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` the source photo, float in [0, 1].
        frame_from_crop: ``(3, 3)`` or ``(1, 3, 3)`` the source's crop -> photo affine.
        source_points: ``(68, 2)`` or ``(1, 68, 2)`` the source's landmarks in crop pixels (None or
            NaN: only the posed outlines count).
        posed: from :func:`pose_source`.
        erode, blur, forehead, color_match: as :func:`pasl.composite.paste_back`.

    Returns:
        ``(frames (B, 3, H, W), masks (B, 1, H, W))``.
    """
    count = posed.faces.shape[0]
    frames = image.reshape(1, *image.shape[-3:]).float().cpu().expand(count, -1, -1, -1)
    affine = frame_from_crop.reshape(1, 3, 3).cpu().expand(count, 3, 3)
    with torch.inference_mode():
        mask = face_mask(posed.points, ALIGNED_SIZE, "landmarks", erode, blur, forehead)
        if source_points is not None and bool(torch.isfinite(source_points).all()):
            own = face_mask(source_points.reshape(1, -1, 2).float().cpu(), ALIGNED_SIZE, "landmarks", erode, blur, forehead)
            mask = torch.maximum(mask, own)
        return paste_back(frames, posed.faces, affine, mask=mask, mask_space="crop", mask_kind="crop", erode=0.0, blur=0.0,
                          color_match=color_match)
