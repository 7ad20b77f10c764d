"""The generation stage: conditioning maps + a style code -> faces, in batches.

One loop for the pipeline and the Generate node: batches of ``batch_size`` frames go
through the AEG generator on the models' device and dtype; entries without a face get a
black face and never reach the generator. A batch that runs out of GPU memory is retried
with half as many frames (:class:`pasl.oom.Backoff`).
"""

from __future__ import annotations

from typing import Callable

import torch

from .geometry import ALIGNED_SIZE
from .imageops import resize_square
from .oom import Backoff


def drawn_maps(depth: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: entries whose depth or landmark map has anything drawn (the rest had no face)."""
    return (depth.flatten(1).amax(1) > 0) | (landmarks.flatten(1).amax(1) > 0)


def generate_faces(
    generator: torch.nn.Module,
    style: torch.Tensor,
    depth: torch.Tensor,
    landmarks: torch.Tensor,
    has_face: torch.Tensor | None = None,
    *,
    batch_size: int | Backoff = 8,
    progress: Callable[[int], None] | None = None,
    out_device: torch.device | str | None = None,
    empty_cache: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Faces drawn by the AEG generator from conditioning maps, ``batch_size`` frames per call.

    Args:
        generator: the AEG :class:`pasl.aeg.Generator`; its parameters give device and dtype.
        style: ``(1, 128)`` shared by every frame, or ``(B, 128)`` one per frame.
        depth, landmarks: ``(B, 3, S, S)`` maps in [0, 1], any device and dtype; each batch
            is moved to the generator (and resized to 256 when S differs) only when its turn
            comes, so CPU maps of a long clip are never copied whole.
        has_face: ``(B,)`` bool, or None for "where a map is drawn" (:func:`drawn_maps`).
            Entries without a face are black and skip the generator.
        batch_size: frames per generator call (>= 1), halved on out-of-memory errors; or a
            :class:`pasl.oom.Backoff` that keeps a halved size across calls (a clip's chunks).
        progress: called with the number of frames done after each batch (may raise to cancel).
        out_device: where the faces are collected (default: the generator's device).
        empty_cache: frees cached GPU memory before a halved retry (ComfyUI's
            ``soft_empty_cache``); default :func:`pasl.oom.free_cached_memory`. Ignored when
            ``batch_size`` is a ``Backoff``.

    Raises:
        pasl.errors.OutOfMemoryError: one frame at a time still ran out of memory.

    Returns:
        ``(B, 3, 256, 256)`` float32 on ``out_device``.
    """
    backoff = batch_size if isinstance(batch_size, Backoff) else Backoff(batch_size, empty_cache)
    count = depth.shape[0]
    if landmarks.shape[0] != count or style.shape[0] not in (1, count):
        raise ValueError(f"depth, landmarks and style must have one entry per frame (style may have 1): got "
                         f"{depth.shape[0]}, {landmarks.shape[0]} and {style.shape[0]}")
    parameter = next(generator.parameters())
    device, dtype = parameter.device, parameter.dtype
    out_device = device if out_device is None else torch.device(out_device)
    faces = torch.zeros(count, 3, ALIGNED_SIZE, ALIGNED_SIZE, device=out_device)
    found = drawn_maps(depth, landmarks) if has_face is None else torch.as_tensor(has_face).bool()
    found = found.cpu()

    def step(part: slice) -> None:
        rows = torch.arange(part.start, part.stop)[found[part]]
        if rows.numel():
            codes = style if style.shape[0] == 1 else style[rows.to(style.device)]
            maps = [resize_square(m[rows.to(m.device)].to(device=device, dtype=dtype), ALIGNED_SIZE) for m in (depth, landmarks)]
            faces[rows.to(out_device)] = generator(*maps, codes.to(device=device, dtype=dtype)).float().to(out_device)

    backoff.run(count, step, progress)
    return faces
