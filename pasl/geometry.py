"""2-D geometry shared by the alignment and DECA crops: least-squares similarity estimation."""

from __future__ import annotations

import torch


def precise_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device supports it (skimage/OpenCV estimate in float64), else float32 (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


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
