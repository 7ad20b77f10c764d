"""DECA's face crop: from 68 landmarks to the 224x224 encoder input.

This is ``decalib/datasets/datasets_demo.TestData`` with ``iscrop=True, crop_size=224,
scale=1.25`` and a ``kpt68`` box, without scikit-image:

1. box = min/max of the 68 landmarks; ``old_size = ((right - left) + (bottom - top)) / 2 * 1.1``,
   centre = box centre (no vertical shift);
2. ``size = int(old_size * scale)`` (truncated to whole pixels);
3. the similarity taking the square's corners ``(cx - size/2, cy - size/2)``,
   ``(cx - size/2, cy + size/2)``, ``(cx + size/2, cy - size/2)`` to ``(0, 0)``, ``(0, 223)``,
   ``(223, 0)`` (skimage ``estimate_transform('similarity')``, a least-squares fit);
4. ``skimage.transform.warp(image, tform.inverse, output_shape=(224, 224))``: bilinear,
   zero outside the image, then skimage's range clip.

Convention: :mod:`pasl.geometry`'s (skimage's and DECA's pixel coordinates); a
``crop_from_image`` transform is DECA's ``tform.params``. Transforms are computed in
float64, as skimage does.
"""

from __future__ import annotations

import torch

from ..geometry import DECA_CROP_SIZE, NUM_LANDMARKS, estimate_similarity, precise_dtype, warp_affine

DECA_CROP_SCALE = 1.25
"""Crop side over landmark-box size (``TestData(scale=1.25)``)."""
KPT68_BOX_SCALE = 1.1
"""``bbox2point(type='kpt68')`` enlarges the landmark box by this factor."""


def landmarks_box(landmarks68: torch.Tensor) -> torch.Tensor:
    """Bounding box of 68 landmarks, ``(B, 68, 2)`` pixels -> ``(B, 4)`` ``[left, top, right, bottom]``.

    Example:
        >>> landmarks_box(torch.tensor([[[10.0, 20.0], [30.0, 5.0]] * 34]))
        tensor([[10.,  5., 30., 20.]])
    """
    if not torch.is_tensor(landmarks68):
        raise TypeError(f"landmarks68 must be a torch.Tensor, got {type(landmarks68).__name__}")
    if landmarks68.ndim != 3 or landmarks68.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks68 must have shape (B, {NUM_LANDMARKS}, 2) in pixels (x, y), got {tuple(landmarks68.shape)}")
    low, high = landmarks68.amin(dim=1), landmarks68.amax(dim=1)
    return torch.cat([low, high], dim=1)


def full_image_box(height: int, width: int, batch: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """The no-face fallback box ``[0, 0, W - 1, H - 1]``, ``(batch, 4)`` float64.

    The official code writes ``right = h - 1, bottom = w - 1`` (axes swapped), which is
    the same box for the square 256 crops PASL feeds it; here the axes are the right ones.
    """
    device = torch.device(device)
    box = torch.tensor([0.0, 0.0, width - 1.0, height - 1.0], dtype=precise_dtype(device), device=device)
    return box.expand(batch, 4).clone()


def box_crop_transform(
    boxes: torch.Tensor, scale: float = DECA_CROP_SCALE, crop_size: int = DECA_CROP_SIZE
) -> torch.Tensor:
    """``crop_from_image`` for landmark boxes, with DECA's ``kpt68`` rule.

    Args:
        boxes: ``(B, 4)`` ``[left, top, right, bottom]`` in pixels (see :func:`landmarks_box`).
        scale: crop side over the enlarged box side.
        crop_size: output side in pixels.

    Returns:
        ``(B, 3, 3)`` float64 (float32 on MPS) ``crop_from_image``: image pixel -> crop pixel.
    """
    if not torch.is_tensor(boxes):
        raise TypeError(f"boxes must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4) as [left, top, right, bottom], got {tuple(boxes.shape)}")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("boxes contain NaN or infinity; use face_found=False for frames without a face")
    boxes = boxes.to(precise_dtype(boxes.device))
    left, top, right, bottom = boxes.unbind(dim=1)
    # same operation order as bbox2point, so that int() truncates at the same values
    old_size = (right - left + bottom - top) / 2 * KPT68_BOX_SCALE
    center_x, center_y = right - (right - left) / 2.0, bottom - (bottom - top) / 2.0
    size = torch.trunc(old_size * scale)
    if bool((size < 1).any()):
        raise ValueError(f"a face box is smaller than one pixel after scaling (boxes {boxes.tolist()})")
    half = size / 2
    src = torch.stack(
        [
            torch.stack([center_x - half, center_y - half], dim=-1),
            torch.stack([center_x - half, center_y + half], dim=-1),
            torch.stack([center_x + half, center_y - half], dim=-1),
        ],
        dim=1,
    )
    last = crop_size - 1.0
    dst = src.new_tensor([[0.0, 0.0], [0.0, last], [last, 0.0]]).expand_as(src)
    return estimate_similarity(src, dst)


def deca_crop_transform(
    landmarks68: torch.Tensor,
    scale: float = DECA_CROP_SCALE,
    crop_size: int = DECA_CROP_SIZE,
    *,
    face_found: torch.Tensor | None = None,
    image_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """DECA's ``tform`` (``crop_from_image``) from 68 landmarks per image.

    Args:
        landmarks68: ``(B, 68, 2)`` landmark pixels ``(x, y)`` (e.g. FAN's iBUG-68).
        scale: crop side over the enlarged landmark box (DECA: 1.25).
        crop_size: crop side in pixels (DECA: 224).
        face_found: optional ``(B,)`` bool; where False, the landmarks are ignored (they
            may be NaN) and the whole image is the box, as DECA does without a face.
        image_size: ``(H, W)`` of the images, required with ``face_found``.

    Returns:
        ``(B, 3, 3)`` float64 (float32 on MPS) ``crop_from_image`` on the landmarks' device:
        ``[x_crop, y_crop, 1] = tform @ [x, y, 1]``. DECA's own ``tform`` is this cast to
        float32; use ``torch.linalg.inv`` for ``image_from_crop``.

    Example:
        >>> square = torch.tensor([[0.0, 0.0], [100.0, 100.0]]).repeat(34, 1)[None]
        >>> tform = deca_crop_transform(square)  # box 100 -> 110 -> int(137.5) = 137 pixels
        >>> round(tform[0, 0, 0].item() * 137, 9)
        223.0
    """
    boxes = landmarks_box(landmarks68)
    if face_found is not None:
        if image_size is None:
            raise ValueError("image_size=(H, W) is needed with face_found (the fallback box is the whole image)")
        face_found = torch.as_tensor(face_found, device=boxes.device, dtype=torch.bool)
        if face_found.shape != (boxes.shape[0],):
            raise ValueError(f"face_found must have shape ({boxes.shape[0]},), got {tuple(face_found.shape)}")
        fallback = full_image_box(*image_size, batch=boxes.shape[0], device=boxes.device)
        boxes = torch.where(face_found[:, None], boxes.to(fallback.dtype), fallback)
    return box_crop_transform(boxes, scale, crop_size)


def full_image_crop_transform(
    height: int, width: int, batch: int = 1, crop_size: int = DECA_CROP_SIZE, scale: float = DECA_CROP_SCALE,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """DECA's ``tform`` when no face is detected: the whole image as the landmark box."""
    return box_crop_transform(full_image_box(height, width, batch, device), scale, crop_size)


def deca_crop(images: torch.Tensor, tform: torch.Tensor, crop_size: int = DECA_CROP_SIZE) -> torch.Tensor:
    """Warp images into DECA crops: ``skimage.transform.warp(image, tform.inverse, (224, 224))``.

    Bilinear (order 1); every neighbour outside the image counts as 0, so the crop fades
    to black over one pixel at the image border; then skimage's clip to the input's value
    range (widened to 0 only when the crop has pixels entirely outside the image). The
    sampling runs in float64 (float32 on MPS) like skimage's; the result is cast back.

    Convention: output pixel ``(x, y)`` takes the input at ``inverse(tform) @ [x, y, 1]``
    (:func:`pasl.geometry.warp_affine`, whose zero-padded bilinear taps are skimage's
    ``order=1, cval=0``).

    Args:
        images: ``(B, C, H, W)`` float, RGB in [0, 1] for DECA, H and W >= 2.
        tform: ``(B, 3, 3)`` or ``(1, 3, 3)`` ``crop_from_image`` (from :func:`deca_crop_transform`).
        crop_size: output side.

    Returns:
        ``(B, C, crop_size, crop_size)`` in ``images``' dtype.
    """
    if not torch.is_tensor(images) or not torch.is_tensor(tform):
        raise TypeError(f"images and tform must be torch.Tensors, got {type(images).__name__} and {type(tform).__name__}")
    channels_last = images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4)
    if images.ndim != 4 or min(images.shape[-2:]) < 2 or channels_last:
        hint = " (this looks channels-last; use images.movedim(-1, 1))" if channels_last else ""
        raise ValueError(f"images must have shape (B, C, H, W) with H, W >= 2, got {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point in [0, 1], got {images.dtype}")
    batch = images.shape[0]
    if tform.shape not in ((batch, 3, 3), (1, 3, 3)):
        raise ValueError(f"tform must have shape ({batch}, 3, 3) or (1, 3, 3), got {tuple(tform.shape)}")
    if batch == 0:
        return images.new_zeros(0, images.shape[1], crop_size, crop_size)
    source = images.to(precise_dtype(images.device))
    out = warp_affine(source, tform.to(device=images.device, dtype=source.dtype).expand(batch, 3, 3), crop_size)
    return _clip_like_skimage(source, out).to(images.dtype)


def _clip_like_skimage(source: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """skimage ``warp(clip=True)``: clamp each output to its input's [min, max], widened to
    include the fill value 0 only if 0 is outside that range but inside the output's."""
    flat_in, flat_out = source.flatten(1), out.flatten(1)
    low, high = flat_in.amin(dim=1), flat_in.amax(dim=1)
    zero_outside = (low > 0) | (high < 0)
    zero_inside_out = (flat_out.amin(dim=1) <= 0) & (flat_out.amax(dim=1) >= 0)
    widen = zero_outside & zero_inside_out
    low = torch.where(widen, low.clamp(max=0), low)
    high = torch.where(widen, high.clamp(min=0), high)
    return out.clamp(low[:, None, None, None], high[:, None, None, None])
