"""Small image conversions shared by the library, the CLI, the nodes and the tests.

The one float -> uint8 quantiser (:func:`to_uint8`, with :func:`to_uint8_hwc` for callers
that need channels-last numpy), the one image-file reader (:func:`read_image`, on
:func:`pil_to_rgb`) and the one PNG writer (:func:`write_png`). Imports nothing from ``pasl`` but
the standard-library-only :mod:`pasl.atomic`, so every module can use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""PIL modes of 16-bit grey data (PNG opens as ``I;16``, or ``I`` in older Pillow); ``I``
is read as 0-65535 too."""


def pil_to_rgb(image: Any) -> np.ndarray:
    """A PIL image -> ``(H, W, 3)`` uint8 RGB numpy array (a writable copy).

    Grey and palette images become RGB; alpha is dropped (colour kept as it is, not
    composited over a background); 16-bit grey (``I;16``, ``I``) is scaled to 8 bits
    (``round(v / 257)``) instead of being clipped to white by PIL's ``convert``. EXIF
    orientation is not applied.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64).clip(0, 65535)
        grey = ((values + 128) // 257).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(image.convert("RGB"))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (PIL, converted by :func:`pil_to_rgb`).

    Raises what PIL raises: ``FileNotFoundError``, ``PIL.UnidentifiedImageError`` (an
    ``OSError``) for files that are not images.
    """
    from PIL import Image

    with Image.open(path) as image:
        return pil_to_rgb(image)


def write_png(image: torch.Tensor, path: str | Path, mode: str = "round") -> Path:
    """Write a ``(C, H, W)`` image in [0, 1] as a PNG that appears complete or not at all
    (:func:`pasl.atomic.atomic_output`), quantised by :func:`to_uint8`; returns the path."""
    from PIL import Image

    from .atomic import atomic_output

    path = Path(path)
    with atomic_output(path) as temporary:
        Image.fromarray(to_uint8_hwc(image, mode)).save(temporary, format="PNG")
    return path


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
