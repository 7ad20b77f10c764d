"""Turn whatever image the user has into RGB frames the alignment stage can use.

Accepted: a numpy array or torch tensor of one image ``(H, W)``, ``(H, W, C)`` or a batch
``(B, H, W, C)`` (ComfyUI's IMAGE layout), or channels-first ``(C, H, W)`` / ``(B, C, H, W)``
when the last axis cannot be channels; a PIL image; or a list/tuple of any of these (the
frames may then differ in size). ``C`` is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA);
alpha is dropped. Values: uint8 (0-255), uint16 (0-65535), bool, or floating point in
[0, 1] (clamped; values above 2 are refused as "probably 0-255").

Convention: channels are RGB; "channels-last" is assumed whenever the last axis has 1-4
entries, else channels-first; pass ``layout`` to decide explicitly.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..imageops import pil_to_rgb

LAYOUTS = ("auto", "HWC", "BHWC", "CHW", "BCHW")
_CHANNELS = (1, 2, 3, 4)
FLOAT_LIMIT = 2.0
"""Floating-point inputs are expected in [0, 1]; a maximum above this means 0-255 data."""


def _as_tensor(image: Any) -> torch.Tensor:
    if torch.is_tensor(image):
        return image.detach()
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint16:
            image = image.astype(np.int32)  # torch has no uint16 arithmetic on every version
            return torch.from_numpy(image).div(65535.0)
        return torch.from_numpy(np.ascontiguousarray(image))
    if hasattr(image, "mode") and hasattr(image, "size"):  # a PIL image, without importing PIL
        return torch.from_numpy(pil_to_rgb(image))
    raise TypeError(f"an image must be a numpy array, a torch tensor or a PIL image, got {type(image).__name__}")


def _to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Any supported dtype -> float32 in [0, 1]; in-range float32 input is returned as is (never written to)."""
    if x.dtype == torch.uint8:
        return x.float().div(255.0)
    if x.dtype == torch.bool:
        return x.float()
    if x.is_floating_point():
        x = x.float()
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError("the image contains NaN or infinity")
        if not x.numel():
            return x
        low, high = float(x.min()), float(x.max())
        if high > FLOAT_LIMIT:
            raise ValueError(
                f"a floating-point image must be in [0, 1], got values up to {high:.4g}; "
                "divide 0-255 data by 255 (or pass it as uint8)"
            )
        return x if 0.0 <= low and high <= 1.0 else x.clamp(0.0, 1.0)  # no copy of in-range float32
    raise TypeError(f"unsupported image dtype {x.dtype}; use uint8, uint16, bool or floating point in [0, 1]")


def _channels_to_rgb(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``(B, C, H, W)`` with C in 1..4 -> ``(B, 3, H, W)``."""
    c = x.shape[1]
    if c in (1, 2):
        return x[:, :1].expand(-1, 3, -1, -1)
    if c in (3, 4):
        return x[:, :3]
    raise ValueError(f"an image must have 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels, got shape {shape}")


def _one_to_bchw(image: Any, layout: str) -> torch.Tensor:
    x = _as_tensor(image)
    shape = tuple(x.shape)
    if layout == "auto":
        if x.ndim == 2:
            layout = "HW"
        elif x.ndim == 3:
            layout = "HWC" if shape[-1] in _CHANNELS else "CHW" if shape[0] in _CHANNELS else "?"
        elif x.ndim == 4:
            layout = "BHWC" if shape[-1] in _CHANNELS else "BCHW" if shape[1] in _CHANNELS else "?"
        else:
            layout = "?"
        if layout == "?":
            raise ValueError(
                f"cannot read an image of shape {shape}: expected (H, W), (H, W, C), (B, H, W, C), "
                f"(C, H, W) or (B, C, H, W) with C in {_CHANNELS}"
            )
    expected_ndim = {"HW": 2, "HWC": 3, "CHW": 3, "BHWC": 4, "BCHW": 4}[layout]
    if x.ndim != expected_ndim:
        raise ValueError(f"layout {layout!r} needs a {expected_ndim}-d image, got shape {shape}")
    x = {"HW": lambda t: t[None, None], "HWC": lambda t: t.permute(2, 0, 1)[None], "CHW": lambda t: t[None],
         "BHWC": lambda t: t.permute(0, 3, 1, 2), "BCHW": lambda t: t}[layout](x)
    return _channels_to_rgb(_to_unit_float(x), shape)


def to_frames(images: Any, layout: str = "auto") -> list[torch.Tensor]:
    """Normalise any supported input to a list of RGB frames ``(3, H_i, W_i)`` float32 in [0, 1].

    Args:
        images: one image, one batch, or a list/tuple of images or batches (see the module).
        layout: ``"auto"`` or one of ``"HWC"``, ``"BHWC"``, ``"CHW"``, ``"BCHW"``.

    Returns:
        One tensor per frame, on the input's device (CPU for numpy/PIL). In-range float32
        input is not copied (the frames are views of it; nothing in ``pasl.align`` writes
        to them), so a ComfyUI IMAGE batch costs no extra memory here.

    Raises:
        ValueError: empty batch, zero-sized frame, bad shape or channel count, float data
            outside [0, 1] (beyond ``FLOAT_LIMIT``), NaN.
        TypeError: unsupported container or dtype.

    Example:
        >>> [tuple(f.shape) for f in to_frames(np.zeros((5, 7), dtype=np.uint8))]  # grey
        [(3, 5, 7)]
        >>> [tuple(f.shape) for f in to_frames(torch.rand(4, 8, 6, 3))]
        [(3, 8, 6), (3, 8, 6), (3, 8, 6), (3, 8, 6)]
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    frames: list[torch.Tensor] = []
    for item in items:
        if item is None:
            raise TypeError("an image in the list is None")
        frames.extend(_one_to_bchw(item, layout).unbind(0))
    if not frames:
        raise ValueError("no images were given (empty batch)")
    for i, frame in enumerate(frames):
        if frame.shape[-1] == 0 or frame.shape[-2] == 0:
            raise ValueError(f"frame {i} is empty: shape (3, {frame.shape[-2]}, {frame.shape[-1]})")
    return frames


def to_batch(images: Any, layout: str = "auto") -> torch.Tensor:
    """Like :func:`to_frames`, stacked to ``(B, 3, H, W)``; all frames must have one size."""
    frames = to_frames(images, layout)
    sizes = {tuple(f.shape[-2:]) for f in frames}
    if len(sizes) > 1:
        raise ValueError(f"frames of different sizes cannot be stacked: {sorted(sizes)}; use to_frames")
    return torch.stack(frames)


def frame_sizes(frames: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(B, 2)`` int64 ``(H, W)`` of a list of ``(3, H, W)`` frames."""
    return torch.tensor([[int(f.shape[-2]), int(f.shape[-1])] for f in frames], dtype=torch.int64).reshape(-1, 2)
