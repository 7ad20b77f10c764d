"""Soft face masks in crop space, for pasting a generated face back into its frame.

A mask is a polygon (the convex hull of the 68 landmarks raised over the lower forehead,
or the crop square), eroded, Gaussian-feathered in proportion to the face size, and always
faded to zero at the crop border so that a pasted crop never leaves a seam. Everything is
batched torch on the landmarks' device. Convention: crop pixels, as :mod:`pasl.geometry`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .geometry import ALIGNED_SIZE, NUM_LANDMARKS, sampling_dtype

__all__ = ["MASK_KINDS", "FOREHEAD", "face_mask", "check_landmarks", "check_mask_fractions"]

MASK_KINDS = ("landmarks", "crop")

# iBUG-68 index ranges (0-based; Sagonas et al., 300-W annotation scheme).
JAW = range(0, 17)
BROWS = range(17, 27)
CHIN = 8
"""The jaw's lowest point (menton)."""

FOREHEAD = 0.25
"""Default forehead lift: the brows are copied upward by this fraction of the chin-to-brow
distance. Brow-to-chin is about 2/3 of a face's height, so 0.25 covers roughly the lower
half of the forehead, where the generated and the original skin agree best."""
FEATHER_SIGMAS = 2.0 * 1.2815515655446004
"""The 10%-90% rise of a Gaussian-blurred step is ``2 * Phi^-1(0.9) = 2.563`` sigmas; ``blur``
sets that rise, so ``sigma = blur * size / FEATHER_SIGMAS``."""
GAUSS_TRUNCATE = 3.0
"""Gaussian kernels are cut at 3 sigma (the mass beyond is 0.27%, renormalised away)."""
BORDER_FADE = 0.02
"""Every mask ramps (smoothstep) from 0 on the outermost crop pixels to 1 over this
fraction of the crop side (about 5 px of 256), so the warped mask is continuous at the
crop's edge even when the face hull reaches past it."""
COLLINEAR_TOL_PX = 1e-3
"""A point this close (in pixels) to a candidate hull edge's line counts as on it."""
HULL_CHUNK = 16
"""Landmark masks are built this many at a time: the hull search holds (B, 78, 78, 78) distances."""


def check_landmarks(landmarks: object, batch: int | None = None, name: str = "landmarks_crop") -> None:
    """Raise a one-line error unless ``landmarks`` is a floating ``(B, 68, 2)`` tensor (of ``batch`` rows when given)."""
    if not torch.is_tensor(landmarks):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(landmarks).__name__}")
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"{name} must have shape (B, {NUM_LANDMARKS}, 2) crop pixels (x, y), got {tuple(landmarks.shape)}")
    if batch is not None and landmarks.shape[0] != batch:
        raise ValueError(f"{name} must have batch {batch}, got {tuple(landmarks.shape)}")
    if not landmarks.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {landmarks.dtype}")


def check_mask_fractions(erode: float, blur: float, forehead: float) -> None:
    """Raise a one-line error unless the mask's size fractions are in range (see :func:`face_mask`)."""
    if not math.isfinite(erode) or abs(erode) >= 1:
        raise ValueError(f"erode must be a fraction of the face size in (-1, 1), got {erode}")
    if not math.isfinite(blur) or not 0 <= blur <= 2:
        raise ValueError(f"blur must be a fraction of the face size in [0, 2], got {blur}")
    if not math.isfinite(forehead) or not 0 <= forehead <= 1:
        raise ValueError(f"forehead must be a fraction of the chin-to-brow distance in [0, 1], got {forehead}")


def _forehead_points(landmarks: torch.Tensor, forehead: float) -> torch.Tensor:
    """The 10 brow points moved up by ``forehead`` x the chin-to-brow vector, ``(B, 10, 2)``.

    "Up" is the face's own chin->brow direction, so the lift follows head roll and stays
    meaningful at large yaw, where the eye line (and the inter-ocular distance) collapses.
    """
    brows = landmarks[:, BROWS.start : BROWS.stop]
    lift = brows.mean(1, keepdim=True) - landmarks[:, CHIN : CHIN + 1]
    return brows + forehead * lift


def _face_sizes(landmarks: torch.Tensor) -> torch.Tensor:
    """Face size in crop pixels, ``(B,)``: the mean side of the 68-point box (DECA's kpt68 size).

    Used instead of the inter-ocular distance, which shrinks to nothing in profile.
    """
    span = landmarks.amax(1) - landmarks.amin(1)
    return span.mean(-1)


def _hull_half_planes(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-planes of the convex hull of ``(B, N, 2)`` points.

    A directed pair ``i -> j`` is a hull edge when no point lies to its right. Returns
    ``lines (B, K, 3)`` with ``lines @ [x, y, 1]`` = signed distance to the edge's line,
    positive inside (padded rows are ``(0, 0, inf)``), and ``ok (B,)`` = the hull has
    area (not all points on one line or one spot).
    """
    b, n, _ = points.shape
    start = points[:, :, None, :]  # i
    edge = points[:, None, :, :] - start  # (B, N, N, 2): p_j - p_i
    length = edge.norm(dim=-1)
    safe = length.clamp_min(1e-12)
    normal = torch.stack([-edge[..., 1], edge[..., 0]], -1) / safe[..., None]  # left normal
    offset = -(normal * start).sum(-1)  # (B, N, N)
    # signed distance of every point k from every line (i, j): (B, N * N, N)
    dist = torch.bmm(normal.reshape(b, n * n, 2), points.transpose(1, 2)) + offset.reshape(b, n * n, 1)
    valid = (dist.amin(-1) >= -COLLINEAR_TOL_PX) & (length.reshape(b, n * n) > 1e-6)
    count = valid.sum(1)
    k = max(int(count.max()), 1)
    order = torch.argsort(valid.to(torch.int8), dim=1, descending=True, stable=True)[:, :k]
    lines = torch.cat([normal.view(b, n * n, 2), offset.view(b, n * n, 1)], -1)
    lines = lines.gather(1, order[..., None].expand(b, k, 3))
    taken = valid.gather(1, order)
    pad = torch.tensor([0.0, 0.0, math.inf], dtype=lines.dtype, device=lines.device)
    lines = torch.where(taken[..., None], lines, pad)
    # an area-less hull has both directions of one line: the min distance is <= 0 everywhere;
    # the empty hull (all points equal) has no edges at all
    return lines, count >= 3


def _rasterise_eroded(lines: torch.Tensor, inset: torch.Tensor, size: int) -> torch.Tensor:
    """Crop pixels at least ``inset`` (``(B,)`` px) inside every half-plane, ``(B, size, size)`` bool.

    For a convex polygon the distance of an inside point to the boundary is the smallest
    distance to its edges' lines, so this is exactly the polygon eroded by a disc of
    radius ``inset`` (a negative inset grows it, with mitred corners). Each row is one
    interval of x, found from the K lines in O(B K S); no (B, K, S, S) tensor is made.
    """
    coords = torch.arange(size, device=lines.device, dtype=lines.dtype)
    a, b, c = lines[..., 0, None], lines[..., 1, None], lines[..., 2, None]  # (B, K, 1)
    need = inset.view(-1, 1, 1) - b * coords - c  # a x >= need, per row y: (B, K, S)
    ratio = need / torch.where(a == 0, 1, a)
    lower = torch.where(a > 0, ratio, -math.inf).amax(1)  # (B, S) over rows y
    upper = torch.where(a < 0, ratio, math.inf).amin(1)
    row_ok = torch.where(a == 0, need <= 0, True).all(1)
    x = coords.view(1, 1, -1)
    return (x >= lower[..., None]) & (x <= upper[..., None]) & row_ok[..., None]


def _gaussian_blur(mask: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, 1, S, S)`` with one sigma (pixels) per image, zero padding.

    One grouped convolution per axis; the kernels share the largest radius (sigma 0 is
    a delta).
    """
    b, _, size, _ = mask.shape
    radius = min(int(math.ceil(GAUSS_TRUNCATE * float(sigma.max()))), 2 * size)
    if radius == 0:
        return mask
    taps = torch.arange(-radius, radius + 1, device=mask.device, dtype=mask.dtype)
    s = sigma.to(mask.dtype).clamp_min(1e-6)[:, None]
    kernel = torch.exp(-0.5 * (taps[None, :] / s) ** 2)
    kernel = torch.where((taps.abs()[None, :] <= GAUSS_TRUNCATE * s) | (taps[None, :] == 0), kernel, 0)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, 2r + 1)
    x = mask.view(1, b, size, size)
    x = F.conv2d(x, kernel.view(b, 1, 1, -1), padding=(0, radius), groups=b)
    x = F.conv2d(x, kernel.view(b, 1, -1, 1), padding=(radius, 0), groups=b)
    return x.view(b, 1, size, size)


def _border_fade(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(size, size)`` smoothstep ramp: 0 on the outermost pixels, 1 from BORDER_FADE x size in."""
    ramp = max(BORDER_FADE * size, 1.0)
    coords = torch.arange(size, device=device, dtype=dtype)
    t = (torch.minimum(coords, size - 1 - coords) / ramp).clamp(0, 1)
    edge = t * t * (3 - 2 * t)
    return edge[:, None] * edge[None, :]


def face_mask(
    landmarks_crop: torch.Tensor | None,
    crop_size: int = ALIGNED_SIZE,
    kind: str = "landmarks",
    erode: float = 0.05,
    blur: float = 0.1,
    forehead: float = FOREHEAD,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Soft face mask in crop space: polygon -> erode -> Gaussian feather -> border fade.

    * ``kind="landmarks"``: the convex hull of the 68 points plus the 10 brow points lifted
      by ``forehead`` x the chin-to-brow vector (the detector stops at the brows; this
      covers the lower forehead, and the chin->brow direction stays usable at large
      yaw and any roll). Face size = the mean side of the 68-point box.
    * ``kind="crop"``: the crop square (pixel edges ``-0.5 .. size - 0.5``); face size =
      ``crop_size``, so ``erode`` is the margin as a fraction of the crop.

    The polygon is eroded by ``erode x size`` pixels (exact for a convex polygon: the
    half-planes move inward), rasterised on pixel centres, blurred by a Gaussian whose
    10%-90% rise is ``blur x size`` pixels (``sigma = blur x size / 2.563``), and multiplied
    by a smoothstep that is 0 on the outermost crop pixels (:data:`BORDER_FADE`). Both
    widths therefore scale with the face: the same face at half size gets half the
    feather in pixels. Frames whose landmarks are not all finite, or span no area, get
    an all-zero mask.

    Convention: crop pixels, OpenCV coordinates (x right, y down, centres at integers).

    Args:
        landmarks_crop: ``(B, 68, 2)`` iBUG-68 points in crop pixels, or None with
            ``kind="crop"`` (then B = 1).
        crop_size: side of the square crop in pixels.
        kind: one of :data:`MASK_KINDS`.
        erode: inward shift of the edge as a fraction of the face size (negative grows).
        blur: feather width (10%-90%) as a fraction of the face size; 0 = hard edge.
        forehead: forehead lift as a fraction of the chin-to-brow distance.
        device, dtype: of the result; by default the landmarks' device (CPU without
            landmarks) and float32 (float64 for float64 landmarks).

    Returns:
        ``(B, 1, crop_size, crop_size)`` in [0, 1].

    Example:
        >>> m = face_mask(None, crop_size=64, kind="crop", erode=0.1, blur=0.1)
        >>> m.shape, float(m[0, 0, 32, 32]), float(m[0, 0, 0, 32])
        (torch.Size([1, 1, 64, 64]), 1.0, 0.0)
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    if int(crop_size) != crop_size or crop_size < 2:
        raise ValueError(f"crop_size must be an integer >= 2, got {crop_size}")
    crop_size = int(crop_size)
    check_mask_fractions(erode, blur, forehead)
    if landmarks_crop is None:
        if kind == "landmarks":
            raise ValueError('kind="landmarks" needs landmarks_crop (B, 68, 2); use kind="crop" without landmarks')
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = dtype or torch.float32
        batch = 1
    else:
        check_landmarks(landmarks_crop)
        device = torch.device(device) if device is not None else landmarks_crop.device
        dtype = dtype or sampling_dtype(landmarks_crop)
        batch = landmarks_crop.shape[0]
        landmarks_crop = landmarks_crop.detach().to(device=device, dtype=dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be floating point, got {dtype}")
    if batch == 0:
        return torch.zeros(0, 1, crop_size, crop_size, device=device, dtype=dtype)
    if kind == "landmarks" and batch > HULL_CHUNK:
        parts = [face_mask(part, crop_size, kind, erode, blur, forehead) for part in landmarks_crop.split(HULL_CHUNK)]
        return torch.cat(parts, 0)

    if kind == "crop":
        lo, hi = -0.5, crop_size - 0.5
        polygon = torch.tensor([[lo, lo], [hi, lo], [hi, hi], [lo, hi]], device=device, dtype=dtype).expand(batch, 4, 2)
        size = torch.full((batch,), float(crop_size), device=device, dtype=dtype)
        finite = torch.ones(batch, dtype=torch.bool, device=device)
    else:
        landmarks = landmarks_crop
        finite = torch.isfinite(landmarks).all(-1).all(-1)
        landmarks = torch.where(finite[:, None, None], landmarks, 0)
        polygon = torch.cat([landmarks, _forehead_points(landmarks, forehead)], 1)
        size = _face_sizes(landmarks)

    lines, has_area = _hull_half_planes(polygon)
    inside = _rasterise_eroded(lines, erode * size, crop_size)
    mask = inside.to(dtype)[:, None]
    mask = _gaussian_blur(mask, blur * size / FEATHER_SIGMAS)
    mask = (mask * _border_fade(crop_size, device, dtype)).clamp(0, 1)
    usable = (finite & has_area & (size > 0)).view(-1, 1, 1, 1)
    return torch.where(usable, mask, 0)
