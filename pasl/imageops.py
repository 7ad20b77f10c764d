"""Small image conversions shared by the library, the CLI, the nodes and the tests.

The one float -> uint8 quantiser (:func:`to_uint8`, with :func:`to_uint8_hwc` for callers
that need channels-last numpy). Imports nothing from ``pasl``, so every module can use it.
"""

from __future__ import annotations

import numpy as np
import torch

QUANTIZE_MODES = ("round", "truncate")


def to_uint8(image: torch.Tensor, mode: str = "round") -> torch.Tensor:
    """Quantise an image in [0, 1] to uint8.

    Args:
        image: any shape, floating point, nominally in [0, 1] (clamped first).
        mode: ``"round"`` (nearest level, what ``torchvision.utils.save_image`` and the
            official test protocol do) or ``"truncate"`` (the official demos'
            ``x.mul(255).byte()``, kept for bit parity; biased half a level dark).

    Returns:
        uint8 tensor of the same shape and device.

    Example:
        >>> to_uint8(torch.tensor([0.0, 0.499 / 255, 0.6 / 255, 1.0])).tolist()
        [0, 0, 1, 255]
        >>> to_uint8(torch.tensor([0.6 / 255, 254.9 / 255]), mode="truncate").tolist()
        [0, 254]
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"mode must be one of {QUANTIZE_MODES}, got {mode!r}")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point in [0, 1], got dtype {image.dtype}")
    if mode == "truncate":
        # The official demo path: mul(255) in the image's own dtype (the model's, in the demo),
        # then a truncating cast. Pass ``image.float()`` for float32 arithmetic (DECA's
        # ``tensor2image``, which ``pasl.render`` reproduces).
        return image.mul(255).clamp(0, 255).to(torch.uint8)
    return image.float().mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


def to_uint8_hwc(image: torch.Tensor, mode: str = "round") -> np.ndarray:
    """:func:`to_uint8`, then channels last as a contiguous numpy array on the CPU.

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)`` floating point in [0, 1], C in 1, 3, 4;
            any device (quantised there, then copied), gradients are ignored.
        mode: as in :func:`to_uint8`.

    Returns:
        ``(H, W, C)`` or ``(B, H, W, C)`` uint8 numpy (what OpenCV, PIL and the detectors read).

    Example:
        >>> to_uint8_hwc(torch.full((3, 1, 2), 0.6 / 255)).shape
        (1, 2, 3)
    """
    if image.ndim not in (3, 4) or image.shape[-3] not in (1, 3, 4):
        raise ValueError(f"image must have shape (C, H, W) or (B, C, H, W) with C in 1, 3, 4, got {tuple(image.shape)}")
    return to_uint8(image.detach(), mode).movedim(-3, -1).contiguous().cpu().numpy()


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``(B, C, size, size)``; a no-op when already that size.

    Bilinear, with antialiasing when shrinking so a large photo does not alias. Inputs
    that are not square are stretched: crop them first (the alignment stage does).
    """
    if image.ndim != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    if image.shape[-2:] == (size, size):
        return image
    shrinking = min(image.shape[-2:]) > size
    out = torch.nn.functional.interpolate(image.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    return out.to(image.dtype)
