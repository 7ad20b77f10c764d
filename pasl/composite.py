"""Paste generated faces back into the original frames.

Three steps, all batched torch on the frames' device:

* :func:`warp_to_frame` - the inverse warp of crop-space images into the frame
  (:func:`pasl.geometry.warp_affine` over the frame box the crop can reach);
* :func:`match_colors` - optional colour transfer of the generated face to the original's
  mean/std inside the mask (YCbCr, Reinhard-style);
* :func:`paste_back` - per frame: a :func:`pasl.masks.face_mask`, optional colour matching,
  then ``mask * warped + (1 - mask) * frame``. Frames without a face pass through
  bit-identical with a zero mask; only the frame region the crop covers is touched, so an
  8K frame costs little more than a 512 one.

Convention: :mod:`pasl.geometry`'s pixel coordinates; ``frame_from_crop`` is the
``(B, 3, 3)`` inverse of the alignment's ``crop_from_frame`` (only its top two rows are
read, so ``(B, 2, 3)`` is accepted too). Images are ``(B, C, H, W)`` float in [0, 1]; masks
``(B, 1, H, W)`` float in [0, 1].
"""

from __future__ import annotations

import logging
import math

import torch

from .geometry import (
    check_affine,
    resize_transform,
    sample_bilinear,
    sampling_dtype,
    sampling_grid,
    warp_affine,
)
from .masks import FOREHEAD, MASK_KINDS, check_landmarks, check_mask_fractions, face_mask

log = logging.getLogger(__name__)

__all__ = [
    "MASK_SPACES",
    "warp_to_frame",
    "match_colors",
    "paste_back",
    "resize_crop_frame",
]

MASK_SPACES = ("frame", "crop")

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


def _footprints(
    frame_from_crop: torch.Tensor, crop_hw: tuple[int, int], frame_hw: tuple[int, int]
) -> list[tuple[int, int, int, int] | None]:
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
    borderMode=BORDER_CONSTANT, borderValue=0)`` (the tests find them within 1e-4): it is
    :func:`pasl.geometry.warp_affine` over the one frame box the batch's crops can reach,
    so nothing scales with the frame size but the zero-filled output.

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
    check_affine("frame_from_crop", frame_from_crop, crops.shape[0], allow_2x3=True)
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
    eye = torch.eye(3, dtype=frame_from_crop.dtype, device=crops.device)[: frame_from_crop.shape[1]].expand_as(frame_from_crop)
    affine = torch.where(keep[:, None, None], frame_from_crop, eye)  # frames left out sample nothing
    region = warp_affine(crops, affine, (y1 - y0, x1 - x0), origin=(x0, y0))
    out[:, :, y0:y1, x0:x1] = torch.where(keep.view(-1, 1, 1, 1), region, 0)  # singular or off-frame: zero
    return out


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
            f"generated, target and mask must share batch and size: got {tuple(generated.shape)}, {tuple(target.shape)}, "
            f"{tuple(mask.shape)}"
        )
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 0:
        return generated.clone()
    dtype = sampling_dtype(generated)
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

    Per frame: the crop-space :func:`pasl.masks.face_mask` (``mask_kind``, ``erode``, ``blur``,
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
        mask_kind: one of :data:`pasl.masks.MASK_KINDS`.
        erode, blur, forehead: see :func:`pasl.masks.face_mask`.
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
    check_affine("frame_from_crop", frame_from_crop, batch, allow_2x3=True)
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    if mask_space not in MASK_SPACES:
        raise ValueError(f"mask_space must be one of {MASK_SPACES}, got {mask_space!r}")
    if landmarks_crop is not None:
        check_landmarks(landmarks_crop, batch)
    elif mask_kind == "landmarks":
        raise ValueError('mask_kind="landmarks" needs landmarks_crop (B, 68, 2); pass them or use mask_kind="crop"')
    if has_face is not None:
        _check_tensor("has_face", has_face)
        if has_face.shape != (batch,):
            raise ValueError(f"has_face must have shape ({batch},), got {tuple(has_face.shape)}")
    if mask is not None:
        _check_user_mask(mask, batch, (height, width), crop_size, mask_space)
    check_mask_fractions(erode, blur, forehead)
    if not 0 <= color_match <= 1:
        raise ValueError(f"color_match must be in [0, 1], got {color_match}")

    device = frames.device
    dtype = sampling_dtype(frames)
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
            "paste_back: frames %s are flagged as faces but their affine/landmarks are unusable or the crop misses the "
            "frame; passed through",
            dropped,
        )

    affine = frame_from_crop.to(device)
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
            grid = sampling_grid((height, width), affine.index_select(0, idx), (crop_size, crop_size), dtype)
            # per frame, so no (chunk, 3, H, W) copy of the frames is made
            target = torch.cat([sample_bilinear(frames[n : n + 1], grid[pos : pos + 1]) for pos, n in enumerate(chunk)])
            half_pixel = 1 - 1 / torch.tensor([width, height], device=device, dtype=dtype)
            in_frame = (grid.abs() <= half_pixel).all(-1)[:, None].to(dtype)  # crop pixels that see the frame
            crop_faces = match_colors(crop_faces, target, crop_masks * in_frame, color_match)
        if user is not None and mask_space == "crop":
            chosen = user.index_select(0, idx) if user.shape[0] == batch else user
            crop_masks = crop_masks * chosen.to(dtype).clamp(0, 1)
        layers = torch.cat([crop_faces, crop_masks], 1)  # (n, 4, S, S): face and mask share one warp

        for pos, n in enumerate(chunk):
            x0, y0, x1, y1 = boxes[n]
            warped = warp_affine(layers[pos : pos + 1], affine[n : n + 1], (y1 - y0, x1 - x0), origin=(x0, y0))
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
    old_from_new = resize_transform(new_size, new_size, crop_size, device=frame_from_crop.device, dtype=frame_from_crop.dtype)
    landmarks = None if landmarks_crop is None else (landmarks_crop + 0.5) / ratio - 0.5
    return frame_from_crop @ old_from_new, landmarks
