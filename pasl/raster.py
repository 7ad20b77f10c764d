"""A pure-torch triangle rasteriser with pytorch3d's ``rasterize_meshes`` contract.

DECA renders its depth map through pytorch3d (``decalib/utils/renderer.py``,
``Pytorch3dRasterizer``). pytorch3d needs a compiled extension, so this module
re-implements the one configuration DECA uses, in plain torch ops that run on any
device, batched:

* ``faces_per_pixel=1``, ``blur_radius=0``: a pixel belongs to a face only if its
  centre is strictly inside it (all three barycentrics ``> 0``); no anti-aliasing.
* ``perspective_correct=False``: affine (screen-space) barycentrics.
* nearest wins: the smallest interpolated z. A tie in z goes to the smallest (packed)
  face index. This is what pytorch3d's CPU kernel does (it sorts ``(z, face)``
  tuples) and what its naive CUDA kernel does (faces in order, replace on strict
  ``<``); its binned CUDA kernel may order ties differently.
* faces whose signed NDC area is within ``KEPSILON`` of zero are skipped, and so is any
  face with a vertex at or behind the image plane (z < ``KEPSILON``), as pytorch3d does.
* optional ``cull_backfaces``: faces with negative signed NDC area are skipped.

Convention (pytorch3d NDC): +X points left, +Y points up, +Z points away from the
viewer. For an ``H x W`` image with ``H == W`` the centre of output column ``j`` is at
``x = 1 - (2j + 1) / W`` and the centre of row ``i`` at ``y = 1 - (2i + 1) / H``.
For non-square images the shorter side spans [-1, 1] and the longer side is scaled by
the aspect ratio (pytorch3d's ``PixToNonSquareNdc``). Every floating-point formula
(pixel centres, edge functions, the ``+1e-8`` added to the area) follows pytorch3d's
kernels operation by operation, so on the CPU the results equal its CPU kernel's bit
for bit (ties follow the same rule): checked against a plain numpy transcription of
the kernel (``tests/test_raster.py``) and against real pytorch3d 0.7.9, built from
source, whose outputs ``tests/golden/render_pytorch3d.npz`` keeps
(``tests/test_render_pytorch3d_golden.py``). CUDA results may differ in the last bits
(FMA contraction), which can flip pixels whose centre lies on an edge.

The fast path enumerates, for every face, the pixel centres inside its bounding box
(the same bounding-box test pytorch3d uses), evaluates all candidates as flat
tensors, and resolves visibility with ``scatter_reduce``. Work is split into chunks of
at most ``RasterSettings.max_candidates`` candidates so memory stays bounded for big
triangles. Barycentrics and z are differentiable w.r.t. the vertices (face selection
is not), like pytorch3d's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

__all__ = ["KEPSILON", "RASTER_BACKENDS", "Fragments", "RasterSettings", "pixel_centres", "rasterize"]

KEPSILON = 1e-8
"""pytorch3d's ``kEpsilon`` (``csrc/utils/geometry_utils.h``): zero-area threshold and
the constant added to the barycentric denominator."""
RASTER_BACKENDS = ("torch", "pytorch3d")
"""``"torch"``: this module; ``"pytorch3d"``: ``pytorch3d.renderer.mesh.rasterize_meshes``
(optional dependency)."""
DEFAULT_MAX_CANDIDATES = 1 << 21
"""Pixel/face candidates evaluated at once by the torch backend (about 100 MB of
float32 temporaries); raised to ``H * W`` when a single face could cover the image."""


@dataclass(frozen=True)
class RasterSettings:
    """Rasteriser options, with pytorch3d's names; the defaults are DECA's.

    Only the configuration DECA uses is implemented by the torch backend:
    ``blur_radius=0``, ``faces_per_pixel=1``, ``perspective_correct=False`` and
    ``clip_barycentric_coords=False``; other values raise ``ValueError``.

    Attributes:
        blur_radius: must be 0 (hard edges).
        faces_per_pixel: must be 1 (keep the nearest face only).
        perspective_correct: must be False (affine barycentrics).
        clip_barycentric_coords: must be False.
        cull_backfaces: skip faces whose signed NDC area is negative (clockwise in
            pytorch3d's NDC as seen by the viewer).
        backend: ``"torch"`` or ``"pytorch3d"`` (needs ``pytorch3d`` installed).
        max_candidates: memory bound of the torch backend, see ``DEFAULT_MAX_CANDIDATES``.
    """

    blur_radius: float = 0.0
    faces_per_pixel: int = 1
    perspective_correct: bool = False
    clip_barycentric_coords: bool = False
    cull_backfaces: bool = False
    backend: str = "torch"
    max_candidates: int = DEFAULT_MAX_CANDIDATES

    def __post_init__(self):
        if self.backend not in RASTER_BACKENDS:
            raise ValueError(f"backend must be one of {RASTER_BACKENDS}, got {self.backend!r}")
        if self.max_candidates < 1:
            raise ValueError(f"max_candidates must be positive, got {self.max_candidates}")
        if self.backend == "torch":
            unsupported = {
                "blur_radius": (self.blur_radius, 0.0),
                "faces_per_pixel": (self.faces_per_pixel, 1),
                "perspective_correct": (self.perspective_correct, False),
                "clip_barycentric_coords": (self.clip_barycentric_coords, False),
            }
            for name, (value, supported) in unsupported.items():
                if value != supported:
                    raise ValueError(
                        f"the torch rasteriser supports only {name}={supported!r}, got {value!r}; "
                        "use backend='pytorch3d' for other settings"
                    )


@dataclass(frozen=True)
class Fragments:
    """Rasteriser output, pytorch3d's ``Fragments`` without ``dists``.

    Attributes:
        pix_to_face: ``(B, H, W, 1)`` int64, index of the nearest face in the *packed*
            face list (face ``f`` of mesh ``b`` is ``b * F + f``), -1 where no face
            covers the pixel centre.
        zbuf: ``(B, H, W, 1)``, NDC z of the nearest face at the pixel centre
            (barycentric interpolation of its vertices' z), -1 where empty.
        bary_coords: ``(B, H, W, 1, 3)``, affine barycentrics of the pixel centre w.r.t.
            the nearest face's vertices in face order, -1 where empty.
    """

    pix_to_face: torch.Tensor
    zbuf: torch.Tensor
    bary_coords: torch.Tensor

    def detach(self) -> "Fragments":
        """The same fragments cut from the autograd graph."""
        return Fragments(self.pix_to_face, self.zbuf.detach(), self.bary_coords.detach())


def image_hw(image_size) -> tuple[int, int]:
    if isinstance(image_size, bool):
        raise TypeError(f"image_size must be an int or (H, W), got {image_size!r}")
    if isinstance(image_size, int):
        h = w = image_size
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in image_size)
    ):
        h, w = image_size
    else:
        raise TypeError(f"image_size must be an int or (H, W) of ints, got {image_size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Validate inputs; return faces as ``(B, F, 3)`` int64 (expanded, not copied)."""
    if not torch.is_tensor(vertices) or not torch.is_tensor(faces):
        raise TypeError(f"vertices and faces must be torch.Tensors, got {type(vertices).__name__}, {type(faces).__name__}")
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (B, V, 3), got {tuple(vertices.shape)}")
    if not vertices.is_floating_point():
        raise TypeError(f"vertices must be floating point, got dtype {vertices.dtype}")
    if faces.is_floating_point() or faces.is_complex() or faces.dtype == torch.bool:
        raise TypeError(f"faces must be an integer tensor, got dtype {faces.dtype}")
    b, v = vertices.shape[:2]
    if faces.ndim == 2 and faces.shape[-1] == 3:
        faces = faces.unsqueeze(0).expand(b, -1, -1)
    elif not (faces.ndim == 3 and faces.shape[-1] == 3 and faces.shape[0] == b):
        raise ValueError(f"faces must have shape (F, 3) or ({b}, F, 3), got {tuple(faces.shape)}")
    if faces.device != vertices.device:
        raise ValueError(f"faces are on {faces.device} but vertices on {vertices.device}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= v):
        raise ValueError(f"faces index vertices outside [0, {v}): range {int(faces.min())}..{int(faces.max())}")
    if not bool(torch.isfinite(vertices).all()):
        raise ValueError("vertices contain NaN or infinity")
    return faces.long()


def pixel_centres(size: int, other: int, dtype: torch.dtype, device) -> torch.Tensor:
    """NDC coordinate of pixel centres along one image axis, in *NDC index* order.

    pytorch3d's ``PixToNonSquareNdc(i, S1=size, S2=other)``: ``-r/2 + (r*i + r/2) / size``
    with ``r = 2`` for the shorter side and ``2*size/other`` for the longer. Index ``i``
    counts from the -X (right) / -Y (bottom) edge, so output column ``j`` is
    ``size - 1 - j``. The result is increasing in ``i``.
    """
    rng = torch.tensor(2.0, dtype=dtype, device=device)
    if size > other:
        rng = (size * rng) / other
    offset = rng / 2.0
    i = torch.arange(size, dtype=dtype, device=device)
    return -offset + (rng * i + offset) / size


def _edge(px, py, ax, ay, dx, dy):
    """pytorch3d ``EdgeFunctionForward(p, a, b)`` with ``dx = b.x - a.x``, ``dy = b.y - a.y``."""
    return (px - ax) * dy - (py - ay) * dx


def rasterize(
    vertices_ndc: torch.Tensor,
    faces: torch.Tensor,
    image_size,
    settings: RasterSettings | None = None,
) -> Fragments:
    """Rasterise a batch of triangle meshes: nearest face, barycentrics and z per pixel.

    Convention: pytorch3d NDC (+X left, +Y up, smaller z is nearer); pixel ``(i, j)``
    (row, column) samples its centre, ``x = 1 - (2j+1)/W``, ``y = 1 - (2i+1)/H`` for
    square images. DECA's NDC (+X right, +Y down) is this with x and y negated.

    Args:
        vertices_ndc: ``(B, V, 3)`` floating point, x/y in NDC, z any (faces with a
            vertex at z < 1e-8 are dropped, as in pytorch3d). float16/bfloat16 are
            computed in float32.
        faces: ``(F, 3)`` shared by the batch or ``(B, F, 3)``, integer vertex indices.
        image_size: ``int`` or ``(H, W)``.
        settings: ``RasterSettings``; ``None`` means DECA's settings on the torch backend.

    Returns:
        ``Fragments`` (``pix_to_face`` packed indices, ``zbuf``, ``bary_coords``, all
        padded with -1 where no face covers the pixel centre). The last-but-one
        dimension K is 1 (``faces_per_pixel`` with the pytorch3d backend).

    Example:
        >>> tri = torch.tensor([[[0.9, -0.9, 1.0], [-0.9, -0.9, 1.0], [0.0, 0.9, 1.0]]])
        >>> frags = rasterize(tri, torch.tensor([[0, 1, 2]]), 4)
        >>> frags.pix_to_face[0, ..., 0].tolist()
        [[-1, -1, -1, -1], [-1, 0, 0, -1], [-1, 0, 0, -1], [0, 0, 0, 0]]
    """
    settings = RasterSettings() if settings is None else settings
    if not isinstance(settings, RasterSettings):
        raise TypeError(f"settings must be a RasterSettings, got {type(settings).__name__}")
    h, w = image_hw(image_size)
    faces = _check_mesh(vertices_ndc, faces)
    if settings.backend == "pytorch3d":
        return _rasterize_pytorch3d(vertices_ndc, faces, (h, w), settings)
    return _rasterize_torch(vertices_ndc, faces, h, w, settings)


def _rasterize_pytorch3d(vertices, faces, hw, settings: RasterSettings) -> Fragments:
    try:
        from pytorch3d.renderer.mesh import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as exc:  # optional dependency
        raise ImportError("backend='pytorch3d' needs the pytorch3d package; use backend='torch' instead") from exc
    meshes = Meshes(verts=vertices.float(), faces=faces)
    pix_to_face, zbuf, bary, _ = rasterize_meshes(
        meshes,
        image_size=hw,
        blur_radius=settings.blur_radius,
        faces_per_pixel=settings.faces_per_pixel,
        bin_size=None,
        max_faces_per_bin=None,
        perspective_correct=settings.perspective_correct,
        clip_barycentric_coords=settings.clip_barycentric_coords,
        cull_backfaces=settings.cull_backfaces,
    )
    return Fragments(pix_to_face, zbuf, bary)


def _rasterize_torch(vertices: torch.Tensor, faces: torch.Tensor, h: int, w: int, settings: RasterSettings) -> Fragments:
    device = vertices.device
    dtype = vertices.dtype if vertices.dtype in (torch.float32, torch.float64) else torch.float32
    verts = vertices.to(dtype)
    b, n_faces = faces.shape[:2]
    n_pix = b * h * w

    # Per-face data, packed as pytorch3d packs a batch: face f of mesh n is n * F + f.
    fv = torch.gather(verts, 1, faces.reshape(b, -1, 1).expand(-1, -1, 3)).reshape(b * n_faces, 3, 3)  # (BF, vertex, xyz)
    x0, y0, z0 = fv[:, 0].unbind(-1)
    x1, y1, z1 = fv[:, 1].unbind(-1)
    x2, y2, z2 = fv[:, 2].unbind(-1)
    with torch.no_grad():
        face_area = _edge(x0, y0, x1, y1, x2 - x1, y2 - y1)  # EdgeFunctionForward(v0, v1, v2)
        valid = face_area.double().abs() > KEPSILON
        if settings.cull_backfaces:
            valid &= face_area >= 0
        # pytorch3d skips a face with any vertex at or behind the image plane (z < kEpsilon),
        # CPU (CheckPointOutsideBoundingBox) and CUDA alike; verified against a source build.
        valid &= torch.minimum(torch.minimum(z0, z1), z2).double() >= KEPSILON

        # Bounding boxes as ranges of pixel-centre indices (NDC index order), with the
        # same inclusive test as pytorch3d's CheckPointOutsideBoundingBox.
        cx = pixel_centres(w, h, dtype, device)
        cy = pixel_centres(h, w, dtype, device)
        xs, ys = fv[..., 0].detach(), fv[..., 1].detach()
        xlo = torch.searchsorted(cx, xs.amin(1).contiguous(), side="left")
        xhi = torch.searchsorted(cx, xs.amax(1).contiguous(), side="right")
        ylo = torch.searchsorted(cy, ys.amin(1).contiguous(), side="left")
        yhi = torch.searchsorted(cy, ys.amax(1).contiguous(), side="right")
        nx = (xhi - xlo).clamp_min(0)
        ny = (yhi - ylo).clamp_min(0)
        counts = torch.where(valid, nx * ny, torch.zeros_like(nx))
        ends = counts.cumsum(0)
        total = int(ends[-1]) if ends.numel() else 0

    # pytorch3d: area = EdgeFunctionForward(v2, v0, v1) + kEpsilon, the epsilon added in
    # double precision on the CPU (kEpsilon is a double there) and rounded back.
    area = _edge(x2, y2, x0, y0, x1 - x0, y1 - y0)
    area = (area.double() + KEPSILON).to(dtype) if dtype == torch.float32 else area + KEPSILON
    # Per-face edge data for the three barycentric numerators (w0: v1->v2, w1: v2->v0, w2: v0->v1).
    # One row per quantity, so that each gathered row below is contiguous for the elementwise passes.
    face_table = torch.stack([x1, y1, x2 - x1, y2 - y1, x2, y2, x0 - x2, y0 - y2, x0, y0, x1 - x0, y1 - y0, area, z0, z1, z2], 0)

    best_z = torch.full((n_pix,), float("inf"), dtype=dtype, device=device)
    best_face = torch.full((n_pix,), -1, dtype=torch.long, device=device)
    best_bary = torch.full((n_pix, 3), -1.0, dtype=dtype, device=device)
    budget = max(settings.max_candidates, h * w)
    start = 0
    while start < total:
        # Faces [f_start, f_end) whose candidates fit the budget (at least one face).
        with torch.no_grad():
            f_start = int(torch.searchsorted(ends, torch.tensor(start, device=device), side="right"))
            f_end = int(torch.searchsorted(ends, torch.tensor(start + budget, device=device), side="right"))
            f_end = max(f_end, f_start + 1)
            chunk_end = int(ends[f_end - 1])
        z_c, face_c, bary_c, pix_c = _candidates(
            face_table, counts, ends, nx, xlo, ylo, cx, cy, f_start, f_end, start, chunk_end, n_faces, h, w
        )
        if pix_c.numel():
            with torch.no_grad():
                z_det = z_c.detach()
                zmin = torch.full((n_pix,), float("inf"), dtype=dtype, device=device)
                zmin.scatter_reduce_(0, pix_c, z_det, "amin")
                at_min = z_det == zmin[pix_c]
                # Among equal z, the first candidate (= smallest face index) wins.
                order = torch.arange(pix_c.numel(), device=device)
                first = torch.full((n_pix,), pix_c.numel(), dtype=torch.long, device=device)
                first.scatter_reduce_(0, pix_c[at_min], order[at_min], "amin")
                hit = (first < pix_c.numel()) & (zmin < best_z.detach())  # strict: earlier faces keep ties
                pix_hit = hit.nonzero().squeeze(1)
                winner = first[pix_hit]
            best_z = best_z.index_put((pix_hit,), z_c[winner])
            best_face = best_face.index_put((pix_hit,), face_c[winner])
            best_bary = best_bary.index_put((pix_hit,), bary_c[winner])
        start = chunk_end

    covered = best_face >= 0
    zbuf = torch.where(covered, best_z, torch.full_like(best_z, -1.0))
    return Fragments(
        pix_to_face=best_face.view(b, h, w, 1),
        zbuf=zbuf.view(b, h, w, 1),
        bary_coords=best_bary.view(b, h, w, 1, 3),
    )


def _candidates(face_table, counts, ends, nx, xlo, ylo, cx, cy, f_start, f_end, c_start, c_end, n_faces, h, w):
    """Evaluate the pixel-centre candidates of faces ``[f_start, f_end)``.

    Returns ``z (T,)``, packed face index ``(T,)``, barycentrics ``(T, 3)`` and flat pixel
    index ``(T,)`` of the candidates that are strictly inside their face and not behind
    the image plane, in packed-face order.
    """
    device = face_table.device
    with torch.no_grad():
        faces_c = torch.arange(f_start, f_end, device=device)
        face_of = torch.repeat_interleave(faces_c, counts[f_start:f_end], output_size=c_end - c_start)
        local = torch.arange(c_start, c_end, device=device) - (ends[face_of] - counts[face_of])
        nxf = nx[face_of]
        row = local // nxf
        xi = xlo[face_of] + (local - row * nxf)  # NDC-order column index
        yi = ylo[face_of] + row
        px, py = cx[xi], cy[yi]
        batch = face_of // n_faces
        pix = (batch * h + (h - 1 - yi)) * w + (w - 1 - xi)
    t = face_table.index_select(1, face_of)  # (16, T)
    area = t[12]
    w0 = _edge(px, py, t[0], t[1], t[2], t[3]) / area
    w1 = _edge(px, py, t[4], t[5], t[6], t[7]) / area
    w2 = _edge(px, py, t[8], t[9], t[10], t[11]) / area
    pz = w0 * t[13] + w1 * t[14] + w2 * t[15]
    with torch.no_grad():
        keep = ((w0 > 0) & (w1 > 0) & (w2 > 0) & (pz >= 0)).nonzero().squeeze(1)
    bary = torch.stack([w0[keep], w1[keep], w2[keep]], 1)
    return pz[keep], face_of[keep], bary, pix[keep]
