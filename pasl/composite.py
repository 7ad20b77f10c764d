"""Paste generated 256x256 faces back into the original frames.

Four steps, each its own function, all batched torch on the input device:

* :func:`warp_to_frame` - inverse warp of crop-space images into the frame (bilinear,
  zeros outside), the torch twin of ``cv2.warpAffine(crop, frame_from_crop[:2], (W, H))``;
* :func:`face_mask` - a soft crop-space mask: the convex hull of the 68 landmarks raised
  over part of the forehead, or the crop square; eroded, then Gaussian-feathered in
  proportion to the face size, and always faded to zero at the crop border so that the
  pasted crop never leaves a seam;
* :func:`match_colors` - optional colour transfer of the generated face to the original's
  mean/std inside the mask (YCbCr, Reinhard-style);
* :func:`paste_back` - all of the above per frame: ``mask * warped + (1 - mask) * frame``.
  Frames without a face pass through bit-identical with a zero mask; only the frame
  region the crop covers is touched, so a 8K frame costs little more than a 512 one.

Convention: pixel coordinates are OpenCV's: ``(x, y)``, x right, y down, pixel centres at
integers, so pixel ``[row i, column j]`` sits at ``(j, i)``. ``crop_from_frame`` is the
``(B, 3, 3)`` homogeneous affine ``M`` of ``cv2.warpAffine(frame, M[:2], (256, 256))``
(acting on column vectors ``[x, y, 1]``); ``frame_from_crop`` is its inverse. Only the top
two rows are read, so ``(B, 2, 3)`` is accepted too. Images are ``(B, C, H, W)`` float in
[0, 1]; masks ``(B, 1, H, W)`` float in [0, 1]. Sampling uses ``grid_sample`` with
``align_corners=False``: crop pixel ``j`` of ``S`` maps to the normalised coordinate
``(2 j + 1) / S - 1``.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

__all__ = [
    "CROP_SIZE",
    "MASK_KINDS",
    "MASK_SPACES",
    "warp_to_frame",
    "face_mask",
    "match_colors",
    "paste_back",
]

CROP_SIZE = 256
"""Side of the generated face (the AEG output)."""
MASK_KINDS = ("landmarks", "crop")
MASK_SPACES = ("frame", "crop")
NUM_LANDMARKS = 68

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

# ITU-R BT.601 luma weights, full range (JPEG/JFIF) YCbCr; the offsets cancel in a mean/std
# transfer and are left out.
RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)
STD_RATIO_LIMIT = 2.0
"""Colour transfer scales each channel's contrast by at most this factor (or 1 / it), so a
flat generated region (std near 0) is not blown up into noise."""
MIN_MASK_PIXELS = 16.0
"""Below this many mask-weighted pixels the statistics are meaningless: no transfer."""
CHUNK = 16
"""paste_back builds crop-space masks and colour statistics this many frames at a time."""


# ----------------------------------------------------------------------------- checks


def _hint_channels_last(x: torch.Tensor, channels: int) -> str:
    if x.ndim == 4 and x.shape[-1] == channels and x.shape[1] != channels:
        return " (this looks channels-last, like a ComfyUI IMAGE/MASK; use x.movedim(-1, 1))"
    return ""


def _check_tensor(name: str, x) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def _check_images(name: str, x, channels: int | None = 3) -> None:
    _check_tensor(name, x)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}{_hint_channels_last(x, channels or 3)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got dtype {x.dtype}")


def _check_affine(name: str, m, batch: int | None) -> None:
    _check_tensor(name, m)
    if m.ndim != 3 or m.shape[1:] not in ((3, 3), (2, 3)):
        raise ValueError(f"{name} must have shape (B, 3, 3) (or (B, 2, 3)), got {tuple(m.shape)}")
    if batch is not None and m.shape[0] != batch:
        raise ValueError(f"{name} must have one matrix per image: batch {batch}, got {tuple(m.shape)}")
    if not m.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {m.dtype}")


def _check_landmarks(landmarks, batch: int | None) -> None:
    _check_tensor("landmarks_crop", landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks_crop must have shape (B, {NUM_LANDMARKS}, 2) crop pixels (x, y), got {tuple(landmarks.shape)}")
    if batch is not None and landmarks.shape[0] != batch:
        raise ValueError(f"landmarks_crop must have batch {batch}, got {tuple(landmarks.shape)}")
    if not landmarks.is_floating_point():
        raise TypeError(f"landmarks_crop must be floating point, got dtype {landmarks.dtype}")


def _check_fractions(erode: float, blur: float, forehead: float) -> None:
    if not math.isfinite(erode) or abs(erode) >= 1:
        raise ValueError(f"erode must be a fraction of the face size in (-1, 1), got {erode}")
    if not math.isfinite(blur) or not 0 <= blur <= 2:
        raise ValueError(f"blur must be a fraction of the face size in [0, 2], got {blur}")
    if not math.isfinite(forehead) or not 0 <= forehead <= 1:
        raise ValueError(f"forehead must be a fraction of the chin-to-brow distance in [0, 1], got {forehead}")


def _precise_dtype(device: torch.device) -> torch.dtype:
    """float64 for the 3x3 algebra where the device has it (not MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Sample in float32, or float64 when given float64 (gradcheck)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------- warping


def _affine_grid(
    src_hw: tuple[int, int], src_from_dst: torch.Tensor, origin_xy: tuple[int, int], size_hw: tuple[int, int], dtype: torch.dtype
) -> torch.Tensor:
    """``grid_sample`` grid ``(B, h, w, 2)`` sampling a ``src_hw`` image at ``src_from_dst @ [x, y, 1]``.

    The destination pixels are ``x = x0 + j``, ``y = y0 + i`` for ``j < w``, ``i < h``. The
    pixel-to-normalised map (align_corners=False: ``u = (2 x + 1) / W - 1``) is folded into
    the affine in float64, and the grid is built from the region's own origin, so its
    float32 values stay near [-1, 1] and carry at most ~1e-4 px of rounding even in an 8K frame.
    """
    hs, ws = src_hw
    x0, y0 = origin_xy
    h, w = size_hw
    device = src_from_dst.device
    precise = _precise_dtype(device)
    affine = src_from_dst[:, :2, :].to(precise)  # (B, 2, 3)
    to_norm = torch.tensor([[2.0 / ws, 0.0, 1.0 / ws - 1.0], [0.0, 2.0 / hs, 1.0 / hs - 1.0]], dtype=precise, device=device)
    norm = to_norm[:, :2] @ affine  # (B, 2, 3): normalised source of dst pixel (x, y)
    norm[:, :, 2] += to_norm[:, 2]
    step_x, step_y = norm[:, :, 0], norm[:, :, 1]  # (B, 2) per dst pixel along x / along y
    start = norm[:, :, 2] + step_x * x0 + step_y * y0  # normalised source of dst pixel (x0, y0)
    cols = torch.arange(w, device=device, dtype=dtype)
    rows = torch.arange(h, device=device, dtype=dtype)
    return (
        start.to(dtype)[:, None, None, :]
        + step_x.to(dtype)[:, None, None, :] * cols[None, None, :, None]
        + step_y.to(dtype)[:, None, None, :] * rows[None, :, None, None]
    )


def _sample(src: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear ``grid_sample`` with zeros outside, in ``grid``'s dtype."""
    return F.grid_sample(src.to(grid.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(B, 2|3, 3)`` affines as ``(B, 3, 3)`` in float64 (float32 on MPS); inf/NaN where singular."""
    m = m.to(_precise_dtype(m.device))
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * e - b * d
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    inv = torch.stack(
        [
            torch.stack([e / det, -b / det, (b * f - c * e) / det], -1),
            torch.stack([-d / det, a / det, (c * d - a * f) / det], -1),
            torch.stack([zero, zero, one], -1),
        ],
        1,
    )
    return inv


def _footprints(frame_from_crop: torch.Tensor, crop_hw: tuple[int, int], frame_hw: tuple[int, int]) -> list[tuple[int, int, int, int] | None]:
    """Per image, the frame box ``(x0, y0, x1, y1)`` (exclusive ends) outside which the
    warped crop is exactly zero, or None when it misses the frame or the affine is unusable.

    Bilinear taps of crop pixels need source coordinates in ``(-1, S)``; the box holds the
    image of that square. One host sync for the whole batch.
    """
    hc, wc = crop_hw
    hf, wf = frame_hw
    m = frame_from_crop.detach().to("cpu", torch.float64)
    corners = torch.tensor([[-1.0, -1.0, 1.0], [wc, -1.0, 1.0], [-1.0, hc, 1.0], [wc, hc, 1.0]], dtype=torch.float64)
    pts = torch.einsum("bij,kj->bki", m[:, :2, :], corners)  # (B, 4, 2)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    boxes: list[tuple[int, int, int, int] | None] = []
    for n in range(m.shape[0]):
        if not (torch.isfinite(m[n, :2]).all() and torch.isfinite(det[n]) and abs(float(det[n])) > 1e-12):
            boxes.append(None)
            continue
        lo, hi = pts[n].amin(0), pts[n].amax(0)
        x0, y0 = max(0, math.floor(lo[0])), max(0, math.floor(lo[1]))
        x1, y1 = min(wf, math.ceil(hi[0]) + 1), min(hf, math.ceil(hi[1]) + 1)
        boxes.append((x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None)
    return boxes


def warp_to_frame(crops: torch.Tensor, frame_from_crop: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
    """Warp crop-space images into the frame: bilinear, zeros outside the crop.

    ``out[b, :, y, x] = crops[b]`` sampled at ``crop_from_frame[b] @ [x, y, 1]``, i.e.
    ``cv2.warpAffine(crop, frame_from_crop[:2], (W, H), flags=INTER_LINEAR,
    borderMode=BORDER_CONSTANT, borderValue=0)`` (the tests find them within 1e-4). The
    affine is inverted in float64; only the frame box the crops can reach is sampled (one
    ``grid_sample`` over the batch's union box), so nothing scales with the frame size but
    the zero-filled output.

    Convention: OpenCV pixel coordinates (x right, y down, pixel centres at integers);
    ``frame_from_crop`` maps crop pixels to frame pixels; ``align_corners=False``.

    Args:
        crops: ``(B, C, h, w)`` float, any C and crop size.
        frame_from_crop: ``(B, 3, 3)`` (or ``(B, 2, 3)``) affine, crop pixels -> frame pixels.
        frame_size: ``(H, W)`` of the output.

    Returns:
        ``(B, C, H, W)`` in the crops' dtype and device.

    Example:
        >>> shift = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]])
        >>> warp_to_frame(torch.ones(1, 1, 2, 2), shift, (4, 5))[0, 0]
        tensor([[0., 0., 0., 0., 0.],
                [0., 0., 1., 1., 0.],
                [0., 0., 1., 1., 0.],
                [0., 0., 0., 0., 0.]])
    """
    _check_images("crops", crops, channels=None)
    if crops.shape[-1] in (1, 3, 4) and crops.shape[1] > 4:
        raise ValueError(f"crops must have shape (B, C, h, w), got {tuple(crops.shape)}{_hint_channels_last(crops, crops.shape[-1])}")
    _check_affine("frame_from_crop", frame_from_crop, crops.shape[0])
    height, width = (int(s) for s in frame_size)
    if height < 1 or width < 1:
        raise ValueError(f"frame_size must be (H, W) with positive sides, got {tuple(frame_size)}")
    frame_from_crop = frame_from_crop.to(crops.device)
    boxes = _footprints(frame_from_crop, crops.shape[-2:], (height, width))
    bad = [n for n, m in enumerate(frame_from_crop.detach().cpu()) if not torch.isfinite(m[:2]).all()]
    if bad:
        raise ValueError(f"frame_from_crop has non-finite entries for images {bad}")
    out = crops.new_zeros(crops.shape[:2] + (height, width))
    used = [box for box in boxes if box is not None]
    if not used:
        return out
    x0, y0 = min(b[0] for b in used), min(b[1] for b in used)
    x1, y1 = max(b[2] for b in used), max(b[3] for b in used)
    keep = torch.tensor([box is not None for box in boxes], device=crops.device)
    inverse = _invert_affine(frame_from_crop)
    eye = torch.eye(3, dtype=inverse.dtype, device=inverse.device).expand_as(inverse)
    inverse = torch.where(keep[:, None, None], inverse, eye)  # no NaN coordinates reach grid_sample
    grid = _affine_grid(crops.shape[-2:], inverse, (x0, y0), (y1 - y0, x1 - x0), _compute_dtype(crops))
    region = _sample(crops, grid)
    out[:, :, y0:y1, x0:x1] = torch.where(keep.view(-1, 1, 1, 1), region, 0).to(crops.dtype)  # singular: zero
    return out


# ----------------------------------------------------------------------------- masks


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
    crop_size: int = CROP_SIZE,
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
    _check_fractions(erode, blur, forehead)
    if landmarks_crop is None:
        if kind == "landmarks":
            raise ValueError('kind="landmarks" needs landmarks_crop (B, 68, 2); use kind="crop" without landmarks')
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = dtype or torch.float32
        batch = 1
    else:
        _check_landmarks(landmarks_crop, None)
        device = torch.device(device) if device is not None else landmarks_crop.device
        dtype = dtype or _compute_dtype(landmarks_crop)
        batch = landmarks_crop.shape[0]
        landmarks_crop = landmarks_crop.detach().to(device=device, dtype=dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be floating point, got {dtype}")
    if batch == 0:
        return torch.zeros(0, 1, crop_size, crop_size, device=device, dtype=dtype)
    if kind == "landmarks" and batch > CHUNK:  # the hull search holds (B, 78, 78, 78) distances
        parts = [face_mask(part, crop_size, kind, erode, blur, forehead) for part in landmarks_crop.split(CHUNK)]
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


# ----------------------------------------------------------------------------- colour


def _rgb_to_ycbcr_matrix(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(RGB_TO_YCBCR, device=device, dtype=dtype)


def match_colors(generated: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Move the generated face's colour statistics inside ``mask`` onto the target's.

    Reinhard-style transfer in full-range BT.601 YCbCr: per channel, inside the mask
    (pixels weighted by it), ``y = mean_t + (x - mean_g) * std_t / std_g``, applied to the
    whole image, then back to RGB, clamped to [0, 1], and blended by ``strength``.
    YCbCr rather than RGB: the luma contrast and the two chroma channels are scaled
    separately, so a brightness or white-balance difference does not shift the hue;
    rather than LAB: it is linear and exactly invertible (no sRGB gamma, cube roots or
    NaNs in half precision). The contrast ratio is clamped to
    ``[1/STD_RATIO_LIMIT, STD_RATIO_LIMIT]``; an image whose mask weighs less than
    :data:`MIN_MASK_PIXELS` pixels is returned unchanged.

    Args:
        generated: ``(B, 3, h, w)`` RGB in [0, 1], the image to recolour.
        target: ``(B, 3, h, w)`` RGB in [0, 1], same geometry (e.g. the frame in crop space).
        mask: ``(B, 1, h, w)`` weights in [0, 1] where the statistics are taken.
        strength: 0 returns ``generated`` unchanged (a copy), 1 the full transfer.

    Returns:
        ``(B, 3, h, w)`` in ``generated``'s dtype.

    Example:
        >>> g, t = torch.full((1, 3, 8, 8), 0.2), torch.full((1, 3, 8, 8), 0.6)
        >>> round(float(match_colors(g, t, torch.ones(1, 1, 8, 8))[0, 0, 0, 0]), 4)
        0.6
    """
    _check_images("generated", generated)
    _check_images("target", target)
    _check_images("mask", mask, channels=1)
    if target.shape != generated.shape or mask.shape != generated.shape[:1] + (1,) + generated.shape[2:]:
        raise ValueError(
            f"generated, target and mask must share batch and size: got {tuple(generated.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}"
        )
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 0:
        return generated.clone()
    dtype = _compute_dtype(generated)
    to_ycc = _rgb_to_ycbcr_matrix(generated.device, dtype)
    gen = torch.einsum("ij,bjhw->bihw", to_ycc, generated.to(dtype))
    tgt = torch.einsum("ij,bjhw->bihw", to_ycc, target.to(device=generated.device, dtype=dtype))
    weight = mask.to(device=generated.device, dtype=dtype).clamp(0, 1)
    total = weight.sum((2, 3), keepdim=True)
    norm = total.clamp_min(1e-12)

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (x * weight).sum((2, 3), keepdim=True) / norm
        var = ((x - mean) ** 2 * weight).sum((2, 3), keepdim=True) / norm
        return mean, var.clamp_min(0).sqrt()

    mean_g, std_g = stats(gen)
    mean_t, std_t = stats(tgt)
    ratio = (std_t / std_g.clamp_min(1e-6)).clamp(1 / STD_RATIO_LIMIT, STD_RATIO_LIMIT)
    ratio = torch.where(std_g > 1e-6, ratio, 1)
    moved = mean_t + (gen - mean_g) * ratio
    out = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_ycc), moved).clamp(0, 1)
    out = torch.where(total >= MIN_MASK_PIXELS, out, generated.to(dtype))
    return torch.lerp(generated.to(dtype), out, float(strength)).to(generated.dtype)


# ----------------------------------------------------------------------------- paste back


def _check_user_mask(mask, batch: int, frame_hw: tuple[int, int], crop_size: int, mask_space: str) -> None:
    _check_tensor("mask", mask)
    want = frame_hw if mask_space == "frame" else (crop_size, crop_size)
    hint = _hint_channels_last(mask, 1)
    if mask.ndim == 3:
        hint = " (a ComfyUI MASK is (B, H, W); use mask.unsqueeze(1))"
    if mask.ndim != 4 or mask.shape[1] != 1 or tuple(mask.shape[-2:]) != tuple(want) or mask.shape[0] not in (1, batch):
        raise ValueError(
            f'mask with mask_space="{mask_space}" must have shape ({batch} or 1, 1, {want[0]}, {want[1]}), got {tuple(mask.shape)}{hint}'
        )
    if not mask.is_floating_point():
        raise TypeError(f"mask must be floating point in [0, 1], got dtype {mask.dtype}")


def paste_back(
    frames: torch.Tensor,
    faces: torch.Tensor,
    frame_from_crop: torch.Tensor,
    landmarks_crop: torch.Tensor | None = None,
    has_face: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    mask_kind: str = "landmarks",
    erode: float = 0.05,
    blur: float = 0.1,
    color_match: float = 0.0,
    *,
    mask_space: str = "frame",
    forehead: float = FOREHEAD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend generated crops into their frames: ``mask * warped + (1 - mask) * frame``.

    Per frame: the crop-space :func:`face_mask` (``mask_kind``, ``erode``, ``blur``,
    ``forehead``), optional :func:`match_colors` of the face to the frame (sampled into
    crop space, statistics inside that mask), then the face and the mask are warped into
    the frame box the crop covers (:func:`warp_to_frame`'s sampling) and blended with
    ``torch.lerp``, so mask 0 gives the frame's exact values and mask 1 the warped face.

    The user ``mask`` restricts the automatic one (the two multiply). It lives in the
    frame (``mask_space="frame"``, the default: ``(B or 1, 1, H, W)``, e.g. a segmentation
    that excludes a hand over the mouth) or in the crop (``mask_space="crop"``:
    ``(B or 1, 1, S, S)``, e.g. a custom face-shape template, warped like the face).
    To use a user mask alone, take ``mask_kind="crop"`` with small ``erode``/``blur``:
    outside the crop there is nothing to paste, so the crop always bounds the mask.

    Frames with ``has_face`` False pass through bit-identical with a zero mask; so do
    frames whose affine is non-finite or singular, whose landmarks are non-finite
    (``mask_kind="landmarks"``), or whose crop misses the frame (logged as a warning for
    frames flagged as faces). Nothing outside the crop's frame box is computed, so big
    frames cost little more than small ones; the only full-size tensors are the two
    outputs. Inputs are never modified; everything runs on ``frames.device``.

    Convention: as :func:`warp_to_frame`; ``landmarks_crop`` in crop pixels.

    Args:
        frames: ``(B, 3, H, W)`` float RGB in [0, 1], any size and aspect ratio.
        faces: ``(B, 3, S, S)`` generated crops (S = 256 for PASL).
        frame_from_crop: ``(B, 3, 3)`` affine, crop pixels -> frame pixels.
        landmarks_crop: ``(B, 68, 2)`` crop pixels; required for ``mask_kind="landmarks"``.
        has_face: ``(B,)`` bool, or None for all True.
        mask: optional user mask, see above; values are clamped to [0, 1].
        mask_kind: one of :data:`MASK_KINDS`.
        erode, blur, forehead: see :func:`face_mask`.
        color_match: :func:`match_colors` strength in [0, 1]; 0 skips it.
        mask_space: one of :data:`MASK_SPACES`, where the user mask lives.

    Returns:
        ``(composite (B, 3, H, W), mask (B, 1, H, W))``: composite in ``frames``' dtype,
        the mask actually used (frame space) in float32 (float64 for float64 frames).

    Example:
        >>> frames, faces = torch.zeros(2, 3, 40, 60), torch.ones(2, 3, 16, 16)
        >>> frame_from_crop = torch.tensor([[1.0, 0.0, 20.0], [0.0, 1.0, 10.0], [0.0, 0.0, 1.0]]).repeat(2, 1, 1)
        >>> out, m = paste_back(frames, faces, frame_from_crop, has_face=torch.tensor([True, False]),
        ...                     mask_kind="crop", erode=0.0, blur=0.0)
        >>> float(out[0, 0, 18, 28]), float(out[1].abs().max()), float(m[1].max())
        (1.0, 0.0, 0.0)
    """
    _check_images("frames", frames)
    batch, _, height, width = frames.shape
    _check_images("faces", faces)
    if faces.shape[0] != batch:
        raise ValueError(f"faces must have one crop per frame: frames {tuple(frames.shape)}, got faces {tuple(faces.shape)}")
    if faces.shape[-1] != faces.shape[-2]:
        raise ValueError(f"faces must be square crops (B, 3, S, S), got {tuple(faces.shape)}")
    crop_size = faces.shape[-1]
    _check_affine("frame_from_crop", frame_from_crop, batch)
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    if mask_space not in MASK_SPACES:
        raise ValueError(f"mask_space must be one of {MASK_SPACES}, got {mask_space!r}")
    if landmarks_crop is not None:
        _check_landmarks(landmarks_crop, batch)
    elif mask_kind == "landmarks":
        raise ValueError('mask_kind="landmarks" needs landmarks_crop (B, 68, 2); pass them or use mask_kind="crop"')
    if has_face is not None:
        _check_tensor("has_face", has_face)
        if has_face.shape != (batch,):
            raise ValueError(f"has_face must have shape ({batch},), got {tuple(has_face.shape)}")
    if mask is not None:
        _check_user_mask(mask, batch, (height, width), crop_size, mask_space)
    _check_fractions(erode, blur, forehead)
    if not 0 <= color_match <= 1:
        raise ValueError(f"color_match must be in [0, 1], got {color_match}")

    device = frames.device
    dtype = _compute_dtype(frames)
    composite = frames.clone()
    out_mask = torch.zeros(batch, 1, height, width, device=device, dtype=dtype)

    boxes = _footprints(frame_from_crop, (crop_size, crop_size), (height, width))
    active = [box is not None for box in boxes]
    flags = has_face.detach().to("cpu", torch.bool).tolist() if has_face is not None else [True] * batch
    active = [a and f for a, f in zip(active, flags)]
    if landmarks_crop is not None and mask_kind == "landmarks":
        finite = torch.isfinite(landmarks_crop.detach()).all(-1).all(-1).cpu().tolist()
        active = [a and f for a, f in zip(active, finite)]
    dropped = [n for n in range(batch) if flags[n] and not active[n]]
    if dropped:
        log.warning(
            "paste_back: frames %s are flagged as faces but their affine/landmarks are unusable or the crop misses the frame; passed through",
            dropped,
        )

    affine = frame_from_crop.to(device)
    crop_from_frame = _invert_affine(affine)
    faces = faces.to(device)
    if landmarks_crop is not None:
        landmarks_crop = landmarks_crop.to(device)
    user = mask.to(device) if mask is not None else None
    indices = [n for n in range(batch) if active[n]]
    for first in range(0, len(indices), CHUNK):
        chunk = indices[first : first + CHUNK]
        idx = torch.tensor(chunk, device=device)
        lms = landmarks_crop.index_select(0, idx) if mask_kind == "landmarks" else None
        crop_masks = face_mask(lms, crop_size, mask_kind, erode, blur, forehead, device=device, dtype=dtype)
        crop_masks = crop_masks.expand(len(chunk), 1, crop_size, crop_size)
        crop_faces = faces.index_select(0, idx).to(dtype)
        if color_match > 0:
            grid = _affine_grid((height, width), affine.index_select(0, idx), (0, 0), (crop_size, crop_size), dtype)
            # per frame, so no (chunk, 3, H, W) copy of the frames is made
            target = torch.cat([_sample(frames[n : n + 1], grid[pos : pos + 1]) for pos, n in enumerate(chunk)])
            half_pixel = 1 - 1 / torch.tensor([width, height], device=device, dtype=dtype)
            in_frame = (grid.abs() <= half_pixel).all(-1)[:, None].to(dtype)  # crop pixels that see the frame
            crop_faces = match_colors(crop_faces, target, crop_masks * in_frame, color_match)
        if user is not None and mask_space == "crop":
            chosen = user.index_select(0, idx) if user.shape[0] == batch else user
            crop_masks = crop_masks * chosen.to(dtype).clamp(0, 1)
        layers = torch.cat([crop_faces, crop_masks], 1)  # (n, 4, S, S): face and mask share one warp

        for pos, n in enumerate(chunk):
            x0, y0, x1, y1 = boxes[n]
            grid = _affine_grid((crop_size, crop_size), crop_from_frame[n : n + 1], (x0, y0), (y1 - y0, x1 - x0), dtype)
            warped = _sample(layers[pos : pos + 1], grid)
            face, alpha = warped[:, :3], warped[:, 3:].clamp(0, 1)
            if user is not None and mask_space == "frame":
                alpha = alpha * user[n if user.shape[0] == batch else 0, None, :, y0:y1, x0:x1].to(dtype).clamp(0, 1)
            original = frames[n : n + 1, :, y0:y1, x0:x1].to(dtype)
            composite[n : n + 1, :, y0:y1, x0:x1] = torch.lerp(original, face, alpha).to(frames.dtype)
            out_mask[n : n + 1, :, y0:y1, x0:x1] = alpha
    return composite, out_mask


def resize_crop_frame(
    frame_from_crop: torch.Tensor, landmarks_crop: torch.Tensor | None, crop_size: int, new_size: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Re-express a crop's affine and landmarks for the same crop resampled to ``new_size``.

    For faces that went through an upscaler or restorer (e.g. 256 -> 512) before paste-back.
    Pixel centres map as ``p_new = (p + 0.5) * new_size / crop_size - 0.5``.

    Returns:
        ``(frame_from_crop (B, 3, 3), landmarks_crop (B, 68, 2) or None)`` for the new size.

    Example:
        >>> affine, _ = resize_crop_frame(torch.eye(3)[None], None, 256, 512)
        >>> (affine[0] @ torch.tensor([1.5, 1.5, 1.0])).tolist()  # new pixel 1.5 is old pixel 0.5
        [0.5, 0.5, 1.0]
    """
    ratio = crop_size / new_size
    old_from_new = frame_from_crop.new_tensor([[ratio, 0.0, 0.5 * ratio - 0.5], [0.0, ratio, 0.5 * ratio - 0.5], [0.0, 0.0, 1.0]])
    landmarks = None if landmarks_crop is None else (landmarks_crop + 0.5) / ratio - 0.5
    return frame_from_crop @ old_from_new, landmarks
