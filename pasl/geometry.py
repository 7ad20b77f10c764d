"""2-D geometry of the whole pipeline: the shared sizes, affines, and the one image warp.

Every crop in PASL is an affine image of a frame: the aligned 256 crop (a similarity of the
frame), DECA's 224 crop (a similarity of the aligned crop), the paste-back (the inverse of
the first). They all go through this module, so there is one convention, one inverse and
one sampler.

Convention: OpenCV/scikit-image pixel coordinates ``(x, y)``, x right, y down, the centre of
the top-left pixel at ``(0, 0)``, so pixel ``[row i, column j]`` sits at ``(j, i)``. An affine
is a ``(..., 3, 3)`` homogeneous matrix acting on column vectors ``[x, y, 1]`` and named
``dst_from_src`` (``crop_from_frame``, ``frame_from_crop``); ``crop_from_frame[:2]`` is the
``M`` of ``cv2.warpAffine``, and DECA's ``tform.params`` is a ``crop_from_image``. The 3x3
algebra runs in float64 (float32 on MPS, which has none): see :func:`precise_dtype`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ALIGNED_SIZE",
    "DECA_CROP_SIZE",
    "NUM_LANDMARKS",
    "precise_dtype",
    "sampling_dtype",
    "check_affine",
    "estimate_similarity",
    "invert_affine",
    "transform_points",
    "resize_transform",
    "sampling_grid",
    "sample_bilinear",
    "warp_affine",
    "warp_affine_cv2",
]

ALIGNED_SIZE = 256
"""Side of PASL's aligned face crop, which is also the AEG's input and output and the side
of its conditioning maps (the official ``cv2.warpAffine(..., (256, 256))``)."""
DECA_CROP_SIZE = 224
"""Side of DECA's encoder input and of the shape renders (``TestData(crop_size=224)``)."""
NUM_LANDMARKS = 68
"""The iBUG-68 annotation scheme (300-W) of every landmark set here: FAN, dlib, FLAME."""


def precise_dtype(device: torch.device | str) -> torch.dtype:
    """float64 where the device supports it (OpenCV and scikit-image estimate in float64), else float32 (MPS)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def sampling_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype images are resampled in: float32, or float64 for float64 inputs (gradcheck, skimage parity)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def check_affine(name: str, matrix: object, batch: int | None = None, *, allow_2x3: bool = False) -> None:
    """Raise a one-line error unless ``matrix`` is a floating ``(..., 3, 3)`` (or ``(..., 2, 3)``) tensor.

    Args:
        name: the argument's name, for the message.
        matrix: the object to check.
        batch: when given, ``matrix`` must be ``(batch, 3, 3)``.
        allow_2x3: accept the top two rows alone (OpenCV's ``M``).
    """
    if not torch.is_tensor(matrix):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(matrix).__name__}")
    shapes = ((3, 3), (2, 3)) if allow_2x3 else ((3, 3),)
    want = "(..., 3, 3) (or (..., 2, 3))" if allow_2x3 else "(..., 3, 3)"
    if matrix.ndim < 2 or tuple(matrix.shape[-2:]) not in shapes:
        raise ValueError(f"{name} must have shape {want}, got {tuple(matrix.shape)}")
    if batch is not None and (matrix.ndim != 3 or matrix.shape[0] != batch):
        raise ValueError(f"{name} must have one matrix per image (batch {batch}), shape ({batch}, 3, 3), got {tuple(matrix.shape)}")
    if not matrix.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {matrix.dtype}")


def estimate_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Minimises ``sum_k |dst_k - (s R(theta) src_k + t)|^2`` over ``s >= 0``, ``theta``, ``t``
    (Umeyama 1991 with scaling, the estimator behind scikit-image's
    ``SimilarityTransform.estimate``). In 2-D the optimum has a closed form: with centred
    points written as complex numbers ``p = src - mean``, ``q = dst - mean``,
    ``s e^{i theta} = sum(conj(p) q) / sum(|p|^2)``.

    Args:
        src: ``(B, N, 2)`` points, N >= 2, not all equal within a batch item.
        dst: ``(B, N, 2)`` or ``(N, 2)`` (broadcast over the batch).

    Returns:
        ``(B, 3, 3)`` ``dst_from_src`` in float64 (float32 on MPS), on ``src``'s device.

    Raises:
        ValueError: bad shapes, non-finite points, or all source points coincide.

    Example:
        >>> src = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]])
        >>> (estimate_similarity(src, 3 * src + 1)[0].round(decimals=9) + 0.0).tolist()
        [[3.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]]
    """
    if not torch.is_tensor(src) or not torch.is_tensor(dst):
        raise TypeError(f"src and dst must be torch tensors, got {type(src).__name__} and {type(dst).__name__}")
    if dst.ndim == 2:
        dst = dst.expand(src.shape[0], *dst.shape) if src.ndim == 3 else dst
    if src.ndim != 3 or src.shape[-1] != 2 or src.shape[1] < 2 or tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"src and dst must both have shape (B, N >= 2, 2), got {tuple(src.shape)} and {tuple(dst.shape)}")
    dtype = precise_dtype(src.device)
    src, dst = src.to(dtype), dst.to(device=src.device, dtype=dtype)
    if not bool(torch.isfinite(src).all() and torch.isfinite(dst).all()):
        raise ValueError("estimate_similarity: points contain NaN or infinity")
    src_mean, dst_mean = src.mean(dim=1, keepdim=True), dst.mean(dim=1, keepdim=True)
    p, q = src - src_mean, dst - dst_mean
    norm = (p * p).sum(dim=(1, 2))  # (B,)
    if bool((norm <= 0).any()):
        raise ValueError("estimate_similarity: all source points coincide, the similarity is undefined")
    # conj(p) q = (px - i py)(qx + i qy) = (px qx + py qy) + i (px qy - py qx)
    a = (p[..., 0] * q[..., 0] + p[..., 1] * q[..., 1]).sum(dim=1) / norm  # s cos(theta)
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(dim=1) / norm  # s sin(theta)
    linear = torch.stack([torch.stack([a, -b], dim=-1), torch.stack([b, a], dim=-1)], dim=-2)  # (B, 2, 2)
    shift = dst_mean[:, 0] - (linear @ src_mean[:, 0, :, None])[..., 0]  # (B, 2)
    out = torch.zeros(src.shape[0], 3, 3, dtype=dtype, device=src.device)
    out[:, :2, :2] = linear
    out[:, :2, 2] = shift
    out[:, 2, 2] = 1.0
    return out


def invert_affine(matrix: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of ``(..., 3, 3)`` (or ``(..., 2, 3)``) affines, as ``(..., 3, 3)``.

    Computed in the input's dtype (pass float64 for the precise algebra). A singular matrix
    gives non-finite entries rather than an error, so one bad frame does not stop a batch:
    test the result with ``torch.isfinite`` where it matters (:func:`warp_affine` leaves
    such images black).

    Example:
        >>> (invert_affine(torch.tensor([[2.0, 0.0, 4.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])) + 0.0).tolist()
        [[0.5, 0.0, -2.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]]
        >>> bool(torch.isfinite(invert_affine(torch.zeros(3, 3))).all())
        False
    """
    check_affine("matrix", matrix, allow_2x3=True)
    a, b, c = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    d, e, f = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    det = a * e - b * d
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [
        torch.stack([e / det, -b / det, (b * f - c * e) / det], -1),
        torch.stack([-d / det, a / det, (c * d - a * f) / det], -1),
        torch.stack([zero, zero, one], -1),
    ]
    return torch.stack(rows, -2)


def transform_points(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 3, 3)`` affines to ``(B, N, 2)`` points (in the precise dtype); NaN points stay NaN.

    Returns:
        ``(B, N, 2)`` in ``points``' dtype and device.

    Example:
        >>> m = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 2.0, -1.0], [0.0, 0.0, 1.0]]])
        >>> transform_points(m, torch.tensor([[[1.0, 1.0]]])).tolist()
        [[[3.0, 1.0]]]
    """
    check_affine("matrix", matrix, allow_2x3=True)
    if points.ndim != 3 or points.shape[-1] != 2 or matrix.ndim != 3 or matrix.shape[0] != points.shape[0]:
        raise ValueError(f"need matrix (B, 3, 3) and points (B, N, 2), got {tuple(matrix.shape)} and {tuple(points.shape)}")
    m = matrix.to(device=points.device, dtype=precise_dtype(points.device))
    p = points.to(m.dtype)
    out = p @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    return out.to(points.dtype)


def resize_transform(
    height: int, width: int, size: int | tuple[int, int], device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``dst_from_src`` of resizing an ``H x W`` image to ``size`` (a side, or ``(h, w)``): pixel centres aligned.

    ``x_dst = (x + 0.5) * w / W - 0.5`` and the same for y: what ``cv2.resize`` and
    ``interpolate(align_corners=False)`` do.

    Returns:
        ``(3, 3)`` in ``dtype`` (default float64, float32 on MPS).

    Example:
        >>> resize_transform(2, 4, 8).tolist()
        [[2.0, 0.0, 0.5], [0.0, 4.0, 1.5], [0.0, 0.0, 1.0]]
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if min(height, width, out_h, out_w) < 1:
        raise ValueError(f"sizes must be positive, got height={height}, width={width}, size={size}")
    sx, sy = out_w / width, out_h / height
    return torch.tensor(
        [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]],
        dtype=dtype or precise_dtype(device), device=device,
    )


def sampling_grid(
    src_hw: tuple[int, int],
    src_from_dst: torch.Tensor,
    dsize: tuple[int, int],
    dtype: torch.dtype,
    origin: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """``grid_sample`` grid ``(B, h, w, 2)`` sampling an ``src_hw`` image at ``src_from_dst @ [x, y, 1]``.

    The destination pixels are ``x = x0 + j``, ``y = y0 + i`` for ``j < w``, ``i < h``
    (``origin = (x0, y0)``, ``dsize = (h, w)``). The pixel-to-normalised map of
    ``align_corners=False`` (``u = (2 x + 1) / W - 1``) is folded into the affine in the
    precise dtype, and the grid grows from the region's own origin, so its values stay near
    [-1, 1] and carry at most ~1e-4 px of float32 rounding even inside an 8K frame.

    Args:
        src_hw: ``(H, W)`` of the image to sample.
        src_from_dst: ``(B, 3, 3)`` or ``(B, 2, 3)``, finite.
        dsize: ``(h, w)`` of the region to fill.
        dtype: of the grid (see :func:`sampling_dtype`).
        origin: ``(x0, y0)`` of the region in destination pixels.
    """
    hs, ws = src_hw
    x0, y0 = origin
    h, w = dsize
    device = src_from_dst.device
    precise = precise_dtype(device)
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


def sample_bilinear(src: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear ``grid_sample`` (``align_corners=False``) with zeros outside, in ``grid``'s dtype.

    Every tap outside the image counts as 0, so a warp fades to black over one pixel at the
    image's border: what ``cv2.warpAffine(borderValue=0)`` and ``skimage.transform.warp``
    (``order=1, cval=0``) do.
    """
    return F.grid_sample(src.to(grid.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def warp_affine(
    src: torch.Tensor, dst_from_src: torch.Tensor, dsize: int | tuple[int, int], origin: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Warp images by affines: bilinear, zero (black) outside the source.

    Output pixel ``(x, y)`` samples ``src`` at ``invert(dst_from_src) @ [x, y, 1]``, as
    ``cv2.warpAffine(src, dst_from_src[:2], (w, h), flags=INTER_LINEAR, borderValue=0)``
    does (OpenCV quantises positions to 1/32 pixel and weights to 1/1024, so the two agree
    within one uint8 level, not bit for bit: :func:`warp_affine_cv2` is the official call).
    The inverse is taken in float64; sampling runs in :func:`sampling_dtype`. No
    antialiasing. Images whose affine is singular come out black.

    Args:
        src: ``(B, C, H, W)`` floating point.
        dst_from_src: ``(B, 3, 3)``, ``(B, 2, 3)``, or ``(3, 3)`` shared by the batch; finite.
        dsize: side, or ``(h, w)``, of the output region.
        origin: ``(x0, y0)``, destination pixel of the output's top-left pixel (to fill a
            window of a larger destination).

    Returns:
        ``(B, C, h, w)`` in ``src``'s dtype and device.

    Example:
        >>> frame = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> shift = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> warp_affine(frame, shift, 3)[0, 0].tolist()
        [[1.0, 2.0, 3.0], [5.0, 6.0, 7.0], [9.0, 10.0, 11.0]]
    """
    if not torch.is_tensor(src) or not src.is_floating_point() or src.ndim != 4:
        got = f"{tuple(src.shape)} {src.dtype}" if torch.is_tensor(src) else type(src).__name__
        channels_last = torch.is_tensor(src) and src.ndim == 4 and src.shape[-1] in (1, 3, 4) and src.shape[1] > 4
        hint = " (this looks channels-last; use x.movedim(-1, 1))" if channels_last else ""
        raise ValueError(f"src must be a floating-point (B, C, H, W) tensor, got {got}{hint}")
    check_affine("dst_from_src", dst_from_src, allow_2x3=True)
    batch = src.shape[0]
    if dst_from_src.ndim == 2:
        dst_from_src = dst_from_src.expand(batch, *dst_from_src.shape)
    if dst_from_src.ndim != 3 or dst_from_src.shape[0] != batch:
        raise ValueError(f"dst_from_src must have shape ({batch}, 3, 3), got {tuple(dst_from_src.shape)}")
    if not bool(torch.isfinite(dst_from_src[:, :2]).all()):
        raise ValueError("dst_from_src has non-finite entries")
    out_h, out_w = (dsize, dsize) if isinstance(dsize, int) else dsize
    if batch == 0:
        return src.new_zeros(0, src.shape[1], out_h, out_w)
    inverse = invert_affine(dst_from_src.to(device=src.device, dtype=precise_dtype(src.device)))
    usable = torch.isfinite(inverse).flatten(1).all(1)
    eye = torch.eye(3, dtype=inverse.dtype, device=inverse.device).expand_as(inverse)
    inverse = torch.where(usable[:, None, None], inverse, eye)  # no NaN coordinates reach grid_sample
    grid = sampling_grid(src.shape[-2:], inverse, (out_h, out_w), sampling_dtype(src), origin)
    out = sample_bilinear(src, grid)
    return torch.where(usable.view(-1, 1, 1, 1), out, 0).to(src.dtype)


def warp_affine_cv2(frame: np.ndarray, dst_from_src: torch.Tensor | np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """``cv2.warpAffine(frame, dst_from_src[:2], (size, size), borderValue=0)``: the official crop, bit for bit.

    Args:
        frame: ``(H, W, C)`` numpy (uint8 for official parity).
        dst_from_src: ``(3, 3)`` or ``(2, 3)``.
        size: output side.

    Returns:
        ``(size, size, C)`` numpy in ``frame``'s dtype.
    """
    import cv2

    matrix = dst_from_src.detach().cpu().numpy() if torch.is_tensor(dst_from_src) else np.asarray(dst_from_src)
    if matrix.shape not in ((3, 3), (2, 3)):
        raise ValueError(f"dst_from_src must have shape (3, 3) or (2, 3), got {matrix.shape}")
    if frame.ndim != 3:
        raise ValueError(f"frame must have shape (H, W, C), got {frame.shape}")
    return cv2.warpAffine(frame, matrix[:2].astype(np.float64), (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
