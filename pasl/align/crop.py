"""PASL's aligned face crop: a 5-point similarity to the ArcFace template, warped to 256x256.

The official demos (``Instant.get_arcface``, see ``docs/official-code.md`` §1.3) take five
points from the 68 landmarks (the two eye centres as the mean of the eye corners, the nose
tip, the two mouth corners), fit the least-squares similarity that maps them onto a fixed
template (scikit-image ``SimilarityTransform.estimate``, i.e. Umeyama without reflection)
and call ``cv2.warpAffine(frame, M, (256, 256), borderValue=0)``: bilinear, black outside.

Here: :func:`alignment_transform` (landmarks -> ``crop_from_frame``), the affine of the
"letterbox" fallback, and the similarity parameters the video smoother filters. The warps
themselves (:func:`pasl.geometry.warp_affine`, and :func:`pasl.geometry.warp_affine_cv2`,
bit-exact with the official call) and the conventions are in :mod:`pasl.geometry`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry import ALIGNED_SIZE, NUM_LANDMARKS, check_affine, estimate_similarity, invert_affine, precise_dtype

ARCFACE_TEMPLATE_96x112 = (
    (30.2946, 51.6963),
    (65.5318, 51.5014),
    (48.0252, 71.7366),
    (33.5493, 92.3655),
    (62.7299, 92.2041),
)
"""The ArcFace/insightface 5-point template for 96x112 crops (left eye, right eye, nose tip,
left and right mouth corner, in image-left to image-right order), as written in
``Instant.get_arcface``."""
PASL_TEMPLATE_SCALE = 2.0
PASL_TEMPLATE_SHIFT_X = 31.9721
"""``get_arcface`` scales the 96x112 template by 2 and shifts x by this (float32 arithmetic),
which centres it in 256x256: ``(256 - 2 * 96) / 2 = 32`` up to the constant's rounding."""
PASL_TEMPLATE_256 = (
    np.asarray(ARCFACE_TEMPLATE_96x112, dtype=np.float32) * np.float32(PASL_TEMPLATE_SCALE)
    + np.asarray([PASL_TEMPLATE_SHIFT_X, 0.0], dtype=np.float32)
)
"""``(5, 2)`` float32 destination points of the official similarity:
``[[92.561295, 103.3926], [163.0357, 103.0028], [128.02249, 143.4732], [99.0707, 184.731],
[157.4319, 184.4082]]``."""
PASL_TEMPLATE_256.setflags(write=False)

FIVE_POINT_GROUPS = ((36, 39), (42, 45), (30,), (48,), (54,))
"""68-point indices averaged into each of the 5 template points (``get_arcface``): the outer
and inner corner of the image-left eye, of the image-right eye, the nose tip, the two mouth
corners. (The eye centre is the mean of the two corners, not of all six eye points.)"""

ALIGN_MODES = ("align", "resize")


def _check_landmarks(landmarks68: torch.Tensor) -> None:
    if not torch.is_tensor(landmarks68):
        raise TypeError(f"landmarks68 must be a torch.Tensor, got {type(landmarks68).__name__}")
    if landmarks68.ndim != 3 or tuple(landmarks68.shape[1:]) != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks68 must have shape (B, {NUM_LANDMARKS}, 2) in pixels (x, y), got {tuple(landmarks68.shape)}")


def five_points(landmarks68: torch.Tensor) -> torch.Tensor:
    """The 5 alignment points of ``get_arcface`` from 68 landmarks.

    Args:
        landmarks68: ``(B, 68, 2)`` pixels ``(x, y)``.

    Returns:
        ``(B, 5, 2)`` in float32 (the official ``landmark5`` is a float32 array):
        image-left eye centre, image-right eye centre, nose tip, image-left and
        image-right mouth corner.

    Example:
        >>> lm = torch.zeros(1, 68, 2); lm[0, 36] = 10.0; lm[0, 39] = 20.0
        >>> five_points(lm)[0, 0].tolist()
        [15.0, 15.0]
    """
    _check_landmarks(landmarks68)
    points = landmarks68.float()
    return torch.stack([points[:, list(group)].mean(dim=1) for group in FIVE_POINT_GROUPS], dim=1)


def alignment_transform(landmarks68: torch.Tensor, template: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """``crop_from_frame`` of the official aligned crop, from 68 landmarks.

    Args:
        landmarks68: ``(B, 68, 2)`` frame pixels, all finite.
        template: ``(5, 2)`` destination points in crop pixels; default
            :data:`PASL_TEMPLATE_256`.

    Returns:
        ``(B, 3, 3)`` float64 ``crop_from_frame``; ``[:, :2]`` is the official ``M``.
    """
    _check_landmarks(landmarks68)
    template = PASL_TEMPLATE_256 if template is None else template
    dst = torch.tensor(np.asarray(template, dtype=np.float32), device=landmarks68.device)
    if tuple(dst.shape) != (5, 2):
        raise ValueError(f"template must have shape (5, 2), got {tuple(dst.shape)}")
    return estimate_similarity(five_points(landmarks68), dst)


def letterbox_transform(height: int, width: int, size: int = ALIGNED_SIZE, device: torch.device | str = "cpu") -> torch.Tensor:
    """``crop_from_frame`` fitting the whole frame into ``size x size``, aspect kept, centred.

    The frame's longer side spans the crop (edge to edge); the shorter one is centred
    between black bars. Used for frames without a face.

    Returns:
        ``(3, 3)`` float64 (float32 on MPS).

    Example:
        >>> letterbox_transform(2, 4, size=8).tolist()
        [[2.0, 0.0, 0.5], [0.0, 2.0, 2.5], [0.0, 0.0, 1.0]]
    """
    if height < 1 or width < 1 or size < 1:
        raise ValueError(f"sizes must be positive, got height={height}, width={width}, size={size}")
    s = size / max(height, width)
    # frame edges [-0.5, W - 0.5] map to [ox - 0.5, ox - 0.5 + s W], centred in [-0.5, size - 0.5]
    ox = 0.5 * s - 0.5 + (size - s * width) / 2
    oy = 0.5 * s - 0.5 + (size - s * height) / 2
    return torch.tensor([[s, 0.0, ox], [0.0, s, oy], [0.0, 0.0, 1.0]], dtype=precise_dtype(torch.device(device)), device=device)


def similarity_parameters(crop_from_frame: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` similarity -> ``(B, 4)`` ``[log s, theta, cx, cy]``.

    ``s`` is the crop-pixels-per-frame-pixel scale, ``theta`` the rotation in radians
    (positive turns the x axis towards +y, i.e. clockwise on screen), and
    ``(cx, cy)`` the frame pixel that lands on the crop centre ``((size-1)/2, (size-1)/2)``
    for ``size = 256``. :func:`similarity_from_parameters` is the inverse. The parameters
    are what temporal smoothing filters: they vary smoothly when the face moves.
    """
    check_affine("crop_from_frame", crop_from_frame)
    a, b = crop_from_frame[..., 0, 0], crop_from_frame[..., 1, 0]
    log_s = 0.5 * torch.log(a * a + b * b)
    theta = torch.atan2(b, a)
    centre = torch.full(
        (*crop_from_frame.shape[:-2], 2), (ALIGNED_SIZE - 1) / 2.0, dtype=crop_from_frame.dtype, device=crop_from_frame.device
    )
    frame_from_crop = invert_affine(crop_from_frame)
    c = (frame_from_crop[..., :2, :2] @ centre[..., None])[..., 0] + frame_from_crop[..., :2, 2]
    return torch.stack([log_s, theta, c[..., 0], c[..., 1]], dim=-1)


def similarity_from_parameters(params: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`similarity_parameters`: ``(B, 4)`` -> ``(B, 3, 3)`` ``crop_from_frame``."""
    if params.shape[-1] != 4:
        raise ValueError(f"params must have shape (..., 4) as [log s, theta, cx, cy], got {tuple(params.shape)}")
    s = torch.exp(params[..., 0])
    a, b = s * torch.cos(params[..., 1]), s * torch.sin(params[..., 1])
    half = (ALIGNED_SIZE - 1) / 2.0
    cx, cy = params[..., 2], params[..., 3]
    tx = half - (a * cx - b * cy)
    ty = half - (b * cx + a * cy)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [torch.stack([a, -b, tx], -1), torch.stack([b, a, ty], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, dim=-2)


def crop_scale(crop_from_frame: torch.Tensor) -> torch.Tensor:
    """Crop pixels per frame pixel of ``(..., 3, 3)`` similarities: ``sqrt(|det|)``."""
    check_affine("crop_from_frame", crop_from_frame)
    linear = crop_from_frame[..., :2, :2]
    det = linear[..., 0, 0] * linear[..., 1, 1] - linear[..., 0, 1] * linear[..., 1, 0]
    return det.abs().sqrt()
