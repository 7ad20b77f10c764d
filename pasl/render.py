"""Projection and the two conditioning maps of the AEG: a depth map and a landmark drawing.

This is the tail of DECA's ``decode`` as the PASL demos and test scripts use it
(``docs/official-code.md`` §1.4d-f, §1.5, §1.7):

1. ``orthographic_project``: FLAME vertices/landmarks -> DECA NDC of the 224 crop
   (``util.batch_orth_proj`` followed by negating y and z).
2. ``crop_to_image``: crop NDC -> NDC of the original (256) image (``transform_points``).
3. ``render_depth``: min/max-normalised depth, rasterised at 224 (``SRenderY.render_depth``).
4. ``draw_landmarks``: 60 white ``cv2.line`` segments of width 2 (``util.plot_kpts``).
5. ``conditioning_maps``: the demo recipe end to end (uint8 round trip, PIL resize), or
   the test protocol's "flattening" chain.

Convention: "DECA NDC" is x, y in [-1, 1] with -1 at the left / top image edge and +1 at
the right / bottom edge (pixel ``u = (x + 1) / 2 * W``), and z the orthographic depth
with smaller values nearer the camera. Pixel ``(i, j)`` of a rendered map samples its
centre, ``x = (2j + 1) / W - 1``, ``y = (2i + 1) / H - 1``. The rasteriser itself uses
pytorch3d's NDC (x and y negated), see ``pasl.raster``.

Nothing here mutates its inputs (the official ``render_depth`` shifts ``trans_verts``' z
in place), and the depth normalisation is per sample unless asked otherwise.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from .geometry import ALIGNED_SIZE, DECA_CROP_SIZE, NUM_LANDMARKS
from .imageops import to_uint8_hwc
from .raster import RasterSettings, image_hw, rasterize

log = logging.getLogger(__name__)

__all__ = [
    "DEPTH_NORMALIZE_MODES",
    "DEPTH_RENDER_SIZE",
    "LANDMARK_SEGMENTS",
    "conditioning_maps",
    "crop_to_image",
    "draw_landmarks",
    "landmark_thickness",
    "orthographic_project",
    "render_depth",
]

DEPTH_RENDER_SIZE = DECA_CROP_SIZE
"""Side at which the official depth map is rasterised: ``SRenderY``'s ``image_size``
(= ``cfg.dataset.image_size``, DECA's crop, whose NDC ``orthographic_project`` produces),
because ``render_depth`` passes no ``h``/``w``. Both conditioning maps end up at
:data:`pasl.geometry.ALIGNED_SIZE`, the side of the aligned reference crop (the "original
image" of ``decode(render_orig=True)``)."""
DEPTH_Z_OFFSET = 10.0
"""``SRenderY.render_depth`` adds 10 to the (min-shifted) z before rasterising, keeping
every point in front of pytorch3d's image plane (z >= 0)."""
DEPTH_NORMALIZE_MODES = ("per_sample", "batch")
"""``"per_sample"``: min/max of each mesh (the demos' batch-of-1 behaviour);
``"batch"``: min/max over the whole batch, the official code's quirk
(``docs/official-code.md`` §8 item 8), for parity only."""

LANDMARK_SEGMENT_ENDS = (16, 21, 26, 30, 35, 41, 47, 67)
"""Indices ``i`` with no ``i -> i+1`` segment: ``decalib/utils/util.py`` ``end_list =
[17, 22, 27, 42, 48, 31, 36, 68] - 1`` (jaw, brows, nose bridge, nose base, eyes, last
point). 59 is *not* an end, so the outer and inner lip are joined by a 59 -> 60 link."""
LANDMARK_SEGMENTS = tuple((i, i + 1) for i in range(NUM_LANDMARKS - 1) if i not in LANDMARK_SEGMENT_ENDS)
"""The 60 ``(start, end)`` landmark pairs drawn by ``plot_kpts`` (``docs/official-code.md`` §1.4e)."""
LANDMARK_COLOR = 255
"""White on a black canvas; the 3 channels are identical."""
LANDMARK_THICKNESS_DIVISOR = 200
LANDMARK_MIN_THICKNESS = 2
"""PASL's ``plot_kpts``: ``thickness = max(int(min(H, W) / 200), 2)`` (upstream DECA uses 1)."""

FLATTEN_MARGIN_TOP = 10
"""Test protocol (``data_loader_lm_perceptual*.py``): both maps are pasted at (0, 10) ..."""
FLATTEN_WIDTH_CUT = 20
"""... onto a black canvas 20 px narrower than the map (256 -> 236 wide, same height)."""
FLATTEN_DEPTH_SIZE = 224
"""... then the depth canvas is LANCZOS-resized to 224 (and bilinearly to 256 by the
loader's ``Resize``), the landmark canvas straight to 256."""

_MAX_PIXEL_COORD = 2**30  # beyond this cv2.line's int32 arithmetic is not meaningful


def _check_points(name: str, points: torch.Tensor, last: tuple[int, ...], n: int | None = None) -> None:
    if not torch.is_tensor(points):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim != 3 or points.shape[-1] not in last or (n is not None and points.shape[1] != n):
        dims = "|".join(str(d) for d in last)
        raise ValueError(f"{name} must have shape (B, {n if n is not None else 'N'}, {dims}), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {points.dtype}")


def orthographic_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """DECA's weak-perspective camera: FLAME space -> DECA NDC of the 224 crop.

    ``[s * (x + tx), -s * (y + ty), -s * z]``: ``util.batch_orth_proj`` followed by the
    y and z negation of ``decode`` (its ``trans_verts``). For ``landmarks2d`` keep
    ``[..., :2]``.

    Args:
        points: ``(B, N, 3)`` FLAME-space points (metres, +y up, +z towards the camera).
        cam: ``(B, 3)`` ``[s, tx, ty]`` as regressed by DECA's ``E_flame``.

    Returns:
        ``(B, N, 3)``: x right and y down in DECA NDC, z = -s * z_world (smaller is nearer).

    Example:
        >>> orthographic_project(torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([[2.0, 0.5, -1.0]])).tolist()
        [[[3.0, -2.0, -6.0]]]
    """
    _check_points("points", points, (3,))
    if not torch.is_tensor(cam) or cam.shape != (points.shape[0], 3):
        raise ValueError(f"cam must have shape ({points.shape[0]}, 3), got {tuple(getattr(cam, 'shape', ()))}")
    cam = cam.to(points.dtype).unsqueeze(1)  # (B, 1, 3)
    scale = cam[..., :1]
    xy = points[..., :2] + cam[..., 1:]
    projected = scale * torch.cat([xy, points[..., 2:]], dim=-1)
    return projected * projected.new_tensor([1.0, -1.0, -1.0])


def crop_to_image(points: torch.Tensor, tform: torch.Tensor, crop_size: int = DECA_CROP_SIZE, image_size=ALIGNED_SIZE) -> torch.Tensor:
    """Map DECA-crop NDC points into the NDC of the image the crop was cut from.

    ``transform_points`` as ``decode(render_orig=True)`` calls it: ``p_px = (p * 0.5 +
    0.5) * crop_size``; ``[u, v, 1] @ inv(tform).T`` gives original-image pixels; then
    ``u / W * 2 - 1`` and ``v / H * 2 - 1``. z (and any further columns) pass unchanged.

    Args:
        points: ``(B, N, 2|3)`` in DECA NDC of the crop.
        tform: ``(B, 3, 3)`` or ``(3, 3)``, the crop's ``crop_from_image`` similarity
            (``TestData``'s ``tform``: image pixels -> crop pixels, column vectors). The
            official demo passes ``inverse(tform).transpose(1, 2)`` to ``decode``; this
            function does that inversion itself.
        crop_size: side of the crop in pixels (224).
        image_size: ``int`` or ``(H, W)`` of the original image (256).

    Returns:
        Tensor shaped like ``points``, x/y in the original image's DECA NDC.

    Example:
        >>> crop_to_image(torch.tensor([[[-1.0, -1.0, 5.0]]]), torch.eye(3), 224, 256).tolist()
        [[[-1.0, -1.0, 5.0]]]
    """
    _check_points("points", points, (2, 3))
    h, w = image_hw(image_size)
    if not torch.is_tensor(tform) or tform.shape[-2:] != (3, 3) or tform.ndim not in (2, 3):
        raise ValueError(f"tform must have shape (B, 3, 3) or (3, 3), got {tuple(getattr(tform, 'shape', ()))}")
    b, n = points.shape[:2]
    if tform.ndim == 2:
        tform = tform.expand(b, 3, 3)
    elif tform.shape[0] != b:
        raise ValueError(f"tform must have shape ({b}, 3, 3) to match points, got {tuple(tform.shape)}")
    image_from_crop_t = torch.linalg.inv(tform.to(points.dtype)).transpose(1, 2)  # row-vector form
    uv = (points[..., :2] * 0.5 + 0.5) * crop_size
    homogeneous = torch.cat([uv, uv.new_ones(b, n, 1)], dim=-1)
    uv_image = torch.bmm(homogeneous, image_from_crop_t)
    x = uv_image[..., 0] / w * 2 - 1
    y = uv_image[..., 1] / h * 2 - 1
    return torch.cat([torch.stack([x, y], dim=-1), points[..., 2:]], dim=-1)


def _normalise_depth(t: torch.Tensor, normalize: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``render_depth`` arithmetic on ``t`` (B, V): returns (raster z, vertex value)."""
    if normalize == "per_sample":
        t_shift = t - t.amin(dim=1, keepdim=True)
        value = -t_shift
        value = value - value.amin(dim=1, keepdim=True)
        top = value.amax(dim=1, keepdim=True)
    else:
        t_shift = t - t.min()
        value = -t_shift
        value = value - value.min()
        top = value.max()
    # A mesh with a single depth (max t == min t) would give 0/0 officially; call it all near.
    value = torch.where(top > 0, value / torch.where(top > 0, top, torch.ones_like(top)), torch.ones_like(value))
    return t_shift + DEPTH_Z_OFFSET, value


def render_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size=DEPTH_RENDER_SIZE,
    normalize: str = "per_sample",
    settings: RasterSettings | None = None,
) -> torch.Tensor:
    """The official depth map: per-vertex normalised depth, rasterised, 1 = nearest.

    Per vertex ``value = (max t - t) / (max t - min t)`` with ``t`` the projected z (so 1
    at the point nearest the camera, 0 at the farthest vertex, back of the head and neck
    included); every pixel gets the barycentric interpolation of its nearest face's
    values; background 0. Min/max are per mesh (``normalize="per_sample"``) or over the
    whole batch (``"batch"``, the official whole-tensor quirk). A mesh whose vertices all
    share one depth gets value 1 (the official code divides 0 by 0).

    Args:
        vertices: ``(B, V, 3)`` DECA ``trans_verts`` (DECA NDC, see the module docstring).
            Not modified.
        faces: ``(F, 3)`` or ``(B, F, 3)`` integer (FLAME: 9976 triangles).
        image_size: ``int`` or ``(H, W)``; the official map is 224.
        normalize: one of ``DEPTH_NORMALIZE_MODES``.
        settings: rasteriser settings (backend choice); ``None`` = DECA's.

    Returns:
        ``(B, 1, H, W)`` in [0, 1], dtype of ``vertices`` (float32 for half types).
    """
    _check_points("vertices", vertices, (3,))
    if normalize not in DEPTH_NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {DEPTH_NORMALIZE_MODES}, got {normalize!r}")
    h, w = image_hw(image_size)
    verts = vertices if vertices.dtype in (torch.float32, torch.float64) else vertices.float()
    raster_z, value = _normalise_depth(verts[..., 2], normalize)
    # DECA NDC -> pytorch3d NDC: negate x and y (Pytorch3dRasterizer does the same).
    raster_verts = torch.stack([-verts[..., 0], -verts[..., 1], raster_z], dim=-1)
    fragments = rasterize(raster_verts, faces, (h, w), settings)

    b = verts.shape[0]
    faces_b = faces if faces.ndim == 3 else faces.unsqueeze(0).expand(b, -1, -1)
    face_values = torch.gather(value, 1, faces_b.reshape(b, -1).long()).reshape(-1, 3)  # (B*F, 3), packed
    pix_to_face = fragments.pix_to_face[..., 0]  # (B, H, W)
    covered = pix_to_face >= 0
    pixel_face_values = face_values[pix_to_face.clamp_min(0)]  # (B, H, W, 3)
    depth = (fragments.bary_coords[..., 0, :] * pixel_face_values).sum(dim=-1)
    depth = torch.where(covered, depth, torch.zeros_like(depth))
    return depth.unsqueeze(1)


def landmark_thickness(height: int, width: int) -> int:
    """PASL ``plot_kpts`` line width: ``max(int(min(H, W) / 200), 2)``, 2 for a 256 image."""
    return max(int(min(height, width) / LANDMARK_THICKNESS_DIVISOR), LANDMARK_MIN_THICKNESS)


def _landmark_pixels(landmarks: np.ndarray, h: int, w: int) -> np.ndarray:
    """Official de-normalisation in float32, then ``int()`` (truncation toward zero)."""
    x = landmarks[..., 0] * w / 2 + w / 2
    y = landmarks[..., 1] * h / 2 + h / 2
    pixels = np.stack([x, y], axis=-1)
    if np.abs(pixels).max(initial=0) > _MAX_PIXEL_COORD:
        raise ValueError(f"landmarks2d map to pixels beyond ±2**30 (max |x| = {np.abs(landmarks).max():.3g} in NDC)")
    return np.trunc(pixels).astype(np.int64)


def draw_landmarks(landmarks2d: torch.Tensor, image_size=ALIGNED_SIZE) -> torch.Tensor:
    """The PASL landmark image: 60 white line segments on black (``tensor_vis_landmarks``).

    Points are de-normalised as ``u = x * W / 2 + W / 2`` (float32, like the official
    numpy code) and truncated toward zero with ``int()``; each pair in
    ``LANDMARK_SEGMENTS`` is drawn with ``cv2.line`` (LINE_8, no anti-aliasing) at
    ``landmark_thickness(H, W)``. No visibility culling.

    Args:
        landmarks2d: ``(B, 68, 2)`` (or ``(B, 68, 3)``, z ignored) in the image's DECA NDC.
        image_size: ``int`` or ``(H, W)`` of the canvas (256).

    Returns:
        ``(B, 3, H, W)`` with values exactly 0 or 1, 3 identical channels, on the input's
        device, float32 (or the input's dtype if it is float64).
    """
    import cv2  # opencv-python-headless; imported here so the rest of pasl works without it

    _check_points("landmarks2d", landmarks2d, (2, 3), NUM_LANDMARKS)
    h, w = image_hw(image_size)
    points = landmarks2d.detach()[..., :2].to("cpu", torch.float32).numpy()
    if not np.isfinite(points).all():
        raise ValueError("landmarks2d contain NaN or infinity")
    pixels = _landmark_pixels(points, h, w)
    thickness = landmark_thickness(h, w)
    canvases = np.zeros((points.shape[0], h, w), dtype=np.uint8)
    for canvas, pts in zip(canvases, pixels, strict=True):
        for start, end in LANDMARK_SEGMENTS:
            p, q = pts[start], pts[end]
            cv2.line(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), LANDMARK_COLOR, thickness, cv2.LINE_8)
    dtype = landmarks2d.dtype if landmarks2d.dtype == torch.float64 else torch.float32
    images = torch.from_numpy(canvases).to(landmarks2d.device, dtype) / LANDMARK_COLOR
    return images.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def _from_pil(images: list[Image.Image], like: torch.Tensor) -> torch.Tensor:
    """PIL RGB images -> ``(B, 3, H, W)`` float32 / 255 (torchvision ``ToTensor``)."""
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    return torch.from_numpy(array).to(like.device).permute(0, 3, 1, 2).float().div(255.0)


def _flatten(image: Image.Image) -> Image.Image:
    """Paste at (0, 10) on a black canvas 20 px narrower (the test loaders' "壓扁照片")."""
    canvas = Image.new(image.mode, (image.width - FLATTEN_WIDTH_CUT, image.height))
    canvas.paste(image, (0, FLATTEN_MARGIN_TOP))
    return canvas


def conditioning_maps(
    trans_verts_image: torch.Tensor,
    landmarks2d_image: torch.Tensor,
    faces: torch.Tensor,
    flatten: bool = False,
    normalize: str = "per_sample",
    settings: RasterSettings | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two AEG conditioning maps, produced exactly as the official scripts do.

    Demo recipe (``flatten=False``, ``docs/official-code.md`` §1.4f, §1.5): depth rendered at 224
    -> ``x*255``, clip, uint8 truncation -> 3 channels -> PIL BILINEAR 224 -> 256 -> /255;
    landmarks drawn at 256 (values stay {0, 1}).

    Test-protocol recipe (``flatten=True``, §1.7): the 224 uint8 depth is resized to 256
    with PIL BICUBIC; both maps are pasted at (0, 10) on a black 236 x 256 canvas; then
    depth -> LANCZOS 224 -> BILINEAR 256 and landmarks -> LANCZOS 256. Content moves down
    10 px and is stretched horizontally by 256/236 (the right 20 columns are lost).

    Args:
        trans_verts_image: ``(B, V, 3)`` vertices in the 256 image's DECA NDC
            (``crop_to_image(orthographic_project(verts, cam), tform)``).
        landmarks2d_image: ``(B, 68, 2|3)`` landmarks in the same NDC.
        faces: ``(F, 3)`` or ``(B, F, 3)`` FLAME triangles.
        flatten: apply the test-protocol chain.
        normalize: depth normalisation, see ``render_depth``.
        settings: rasteriser settings (backend choice).

    Returns:
        ``(depth, landmarks)``, each ``(B, 3, 256, 256)`` float32 in [0, 1] on the
        vertices' device; channels 0-2 and 3-5 of the generator input respectively.
    """
    _check_points("trans_verts_image", trans_verts_image, (3,))
    _check_points("landmarks2d_image", landmarks2d_image, (2, 3), NUM_LANDMARKS)
    if landmarks2d_image.shape[0] != trans_verts_image.shape[0]:
        raise ValueError(
            f"batch sizes differ: trans_verts_image {tuple(trans_verts_image.shape)}, landmarks2d_image {tuple(landmarks2d_image.shape)}"
        )
    size = (ALIGNED_SIZE, ALIGNED_SIZE)
    depth = render_depth(trans_verts_image, faces, DEPTH_RENDER_SIZE, normalize, settings)
    # x*255, clip, truncation in float32 (DECA's util.tensor2image, the demos' depth conversion)
    depth_u8 = to_uint8_hwc(depth.float().expand(-1, 3, -1, -1), "truncate")
    depth_pil = [Image.fromarray(d) for d in depth_u8]
    landmarks = draw_landmarks(landmarks2d_image, ALIGNED_SIZE)
    if not flatten:
        depth_out = [im.resize(size, Image.Resampling.BILINEAR) for im in depth_pil]
        return _from_pil(depth_out, trans_verts_image), landmarks.to(trans_verts_image.device, torch.float32)

    flat_size = (FLATTEN_DEPTH_SIZE, FLATTEN_DEPTH_SIZE)
    depth_out = [
        _flatten(im.resize(size, Image.Resampling.BICUBIC))
        .resize(flat_size, Image.Resampling.LANCZOS)
        .resize(size, Image.Resampling.BILINEAR)
        for im in depth_pil
    ]
    landmark_pil = [Image.fromarray(lm) for lm in to_uint8_hwc(landmarks.float(), "truncate")]
    landmark_out = [_flatten(im).resize(size, Image.Resampling.LANCZOS) for im in landmark_pil]
    return _from_pil(depth_out, trans_verts_image), _from_pil(landmark_out, trans_verts_image)
