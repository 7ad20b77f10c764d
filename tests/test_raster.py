"""The pure-torch rasteriser against hand-computed cases and a slow loop reference.

``reference_rasterize`` below is pytorch3d's naive CPU kernel written out plainly: a
z-buffer loop over faces in packed order, numpy float32 arithmetic in pytorch3d's
operation order. The fast implementation must match it exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pasl.raster import Fragments, RasterSettings, rasterize
from shared_assets import needs

SHARED = Path(__file__).resolve().parents[2] / "shared"
HEAD_TEMPLATE = SHARED / "assets" / "flame" / "head_template.obj"

try:
    import pytorch3d  # noqa: F401

    HAVE_PYTORCH3D = True
except ImportError:
    HAVE_PYTORCH3D = False

BACKENDS = ["torch", pytest.param("pytorch3d", marks=pytest.mark.skipif(not HAVE_PYTORCH3D, reason="pytorch3d not installed"))]


# ----------------------------------------------------------------------------- helpers


def load_obj_mesh(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (V, 3) float32 and 0-based triangle vertex indices (F, 3) of an OBJ file."""
    verts, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(a) for a in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(a.split("/")[0]) - 1 for a in line.split()[1:4]])
    return torch.tensor(verts, dtype=torch.float32), torch.tensor(faces, dtype=torch.long)


def head_in_ndc(verts: torch.Tensor, yaw: float, pitch: float = 0.0, scale: float = 4.0) -> torch.Tensor:
    """A rotated, centred template head in pytorch3d NDC, in front of the image plane."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    rot_y = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_x = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    centred = (verts - verts.mean(0)) @ (rot_x @ rot_y).T * scale
    return centred + torch.tensor([0.0, 0.1, 10.0])


def _edge(px, py, ax, ay, bx, by):
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def _centres(size: int, other: int) -> np.ndarray:
    rng = np.float32(2.0)
    if size > other:
        rng = np.float32(size) * rng / np.float32(other)
    offset = rng / np.float32(2.0)
    return np.array([-offset + (rng * np.float32(i) + offset) / np.float32(size) for i in range(size)], np.float32)


def reference_rasterize(verts, faces, h: int, w: int, cull_backfaces: bool = False):
    """Slow z-buffer over faces, per mesh; returns numpy (pix_to_face, zbuf, bary)."""
    verts = np.asarray(verts, np.float32)
    faces = np.asarray(faces)
    b = verts.shape[0]
    if faces.ndim == 2:
        faces = np.broadcast_to(faces, (b,) + faces.shape)
    n_faces = faces.shape[1]
    cx, cy = _centres(w, h), _centres(h, w)  # NDC-index order: +x / +y increasing
    p2f = np.full((b, h, w), -1, np.int64)
    zbuf = np.full((b, h, w), np.inf, np.float32)
    bary = np.full((b, h, w, 3), -1, np.float32)
    for n in range(b):
        for f in range(n_faces):
            (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = verts[n, faces[n, f]]
            face_area = _edge(x0, y0, x1, y1, x2, y2)
            if abs(float(face_area)) <= 1e-8 or (cull_backfaces and face_area < 0):
                continue
            if float(min(z0, z1, z2)) < 1e-8:  # pytorch3d: a vertex at or behind the image plane
                continue
            cols = np.nonzero((cx >= min(x0, x1, x2)) & (cx <= max(x0, x1, x2)))[0]
            rows = np.nonzero((cy >= min(y0, y1, y2)) & (cy <= max(y0, y1, y2)))[0]
            if not len(cols) or not len(rows):
                continue
            px, py = np.meshgrid(cx[cols], cy[rows])
            area = np.float32(float(_edge(x2, y2, x0, y0, x1, y1)) + 1e-8)
            w0 = _edge(px, py, x1, y1, x2, y2) / area
            w1 = _edge(px, py, x2, y2, x0, y0) / area
            w2 = _edge(px, py, x0, y0, x1, y1) / area
            pz = w0 * z0 + w1 * z1 + w2 * z2
            ii, jj = np.meshgrid(h - 1 - rows, w - 1 - cols, indexing="ij")
            better = (w0 > 0) & (w1 > 0) & (w2 > 0) & (pz >= 0) & (pz < zbuf[n, ii, jj])
            i_sel, j_sel = ii[better], jj[better]
            p2f[n, i_sel, j_sel] = n * n_faces + f
            zbuf[n, i_sel, j_sel] = pz[better]
            bary[n, i_sel, j_sel] = np.stack([w0[better], w1[better], w2[better]], -1)
    zbuf[p2f < 0] = -1
    return p2f, zbuf, bary


def assert_matches_reference(frags: Fragments, verts, faces, h, w, cull_backfaces=False):
    p2f, zbuf, bary = reference_rasterize(verts, faces, h, w, cull_backfaces)
    np.testing.assert_array_equal(frags.pix_to_face[..., 0].cpu().numpy(), p2f)
    np.testing.assert_array_equal(frags.zbuf[..., 0].cpu().numpy(), zbuf)
    np.testing.assert_array_equal(frags.bary_coords[..., 0, :].cpu().numpy(), bary)


def random_meshes(seed: int, batch: int, n_verts: int, n_faces: int, spread: float = 1.3):
    g = torch.Generator().manual_seed(seed)
    verts = (torch.rand(batch, n_verts, 3, generator=g) - 0.5) * 2 * spread
    verts[..., 2] = torch.rand(batch, n_verts, generator=g) * 3 - 0.5  # some points behind the image plane
    faces = torch.randint(0, n_verts, (n_faces, 3), generator=g)
    return verts, faces


# ----------------------------------------------------------------------------- tests


class TestRasterSettings:
    def test_defaults_are_decas(self):
        s = RasterSettings()
        assert (s.blur_radius, s.faces_per_pixel, s.perspective_correct, s.cull_backfaces) == (0.0, 1, False, False)
        assert s.backend == "torch"

    @pytest.mark.parametrize(
        "kwargs",
        [{"blur_radius": 1e-4}, {"faces_per_pixel": 2}, {"perspective_correct": True}, {"clip_barycentric_coords": True}],
    )
    def test_unsupported_torch_settings_raise(self, kwargs):
        with pytest.raises(ValueError, match="torch rasteriser supports only"):
            RasterSettings(**kwargs)

    def test_unknown_backend_raises(self):
        with pytest.raises(ValueError, match="backend"):
            RasterSettings(backend="opengl")

    def test_is_frozen(self):
        with pytest.raises(AttributeError):
            RasterSettings().blur_radius = 1.0  # type: ignore[misc]


class TestRasterizeAnalytic:
    # Triangle in pytorch3d NDC, image 4x4: column centres x = 0.75, 0.25, -0.25, -0.75 and
    # row centres y = 0.75, 0.25, -0.25, -0.75 (both decreasing with the index).
    TRI = torch.tensor([[[0.9, -0.9, 1.0], [-0.9, -0.9, 1.0], [0.0, 0.9, 1.0]]])
    FACE = torch.tensor([[0, 1, 2]])

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_single_triangle_coverage(self, backend):
        frags = rasterize(self.TRI, self.FACE, 4, RasterSettings(backend=backend))
        # At height y the triangle spans |x| < 0.5 * (0.9 - y): 0.075, 0.325, 0.575, 0.825.
        expected = [[-1, -1, -1, -1], [-1, 0, 0, -1], [-1, 0, 0, -1], [0, 0, 0, 0]]
        assert frags.pix_to_face[0, :, :, 0].tolist() == expected
        assert frags.pix_to_face.shape == (1, 4, 4, 1) and frags.pix_to_face.dtype == torch.long
        assert frags.zbuf.shape == (1, 4, 4, 1) and frags.bary_coords.shape == (1, 4, 4, 1, 3)

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_single_triangle_barycentrics_and_z(self, backend):
        frags = rasterize(self.TRI, self.FACE, 4, RasterSettings(backend=backend))
        # Pixel (row 3, col 1) has centre (0.25, -0.75). Solving p = w0 v0 + w1 v1 + w2 v2:
        # y: -0.9 (1 - w2) + 0.9 w2 = -0.75 -> w2 = 1/12; x: 0.9 (w0 - w1) = 0.25 -> w0 = 43/72, w1 = 23/72.
        torch.testing.assert_close(frags.bary_coords[0, 3, 1, 0], torch.tensor([43 / 72, 23 / 72, 1 / 12]), rtol=0, atol=1e-6)
        torch.testing.assert_close(frags.zbuf[0, 3, 1, 0], torch.tensor(1.0), rtol=0, atol=1e-6)
        # Background is padded with -1 in every field.
        assert frags.zbuf[0, 0, 0, 0] == -1 and (frags.bary_coords[0, 0, 0, 0] == -1).all()

    def test_axes_follow_pytorch3d_ndc(self):
        # A triangle in the +x/+y quadrant lands in the top-left corner of the image.
        tri = torch.tensor([[[1.0, 1.0, 1.0], [0.4, 1.0, 1.0], [1.0, 0.4, 1.0]]])
        covered = rasterize(tri, self.FACE, 8).pix_to_face[0, :, :, 0] >= 0
        rows, cols = covered.nonzero().unbind(1)
        assert covered.any() and rows.max() <= 2 and cols.max() <= 2

    def test_non_square_images_scale_the_longer_side(self):
        # 4 rows x 8 columns: y in [-1, 1], x in [-2, 2]; column centres 1.75, 1.25, ..., -1.75.
        tri = torch.tensor([[[1.6, 1.0, 1.0], [1.4, -1.0, 1.0], [1.9, -1.0, 1.0]]])
        covered = rasterize(tri, self.FACE, (4, 8)).pix_to_face[0, :, :, 0] >= 0
        assert covered[:, 0].any() and not covered[:, 1:].any()

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("near_first", [True, False])
    def test_nearest_of_two_overlapping_triangles_wins(self, backend, near_first):
        big = [[0.95, -0.95], [-0.95, -0.95], [0.0, 0.95]]
        near = torch.tensor([[x, y, 0.5] for x, y in big])
        far = torch.tensor([[x * 0.8, y * 0.8, 2.0] for x, y in big])
        verts = torch.cat([near, far] if near_first else [far, near])[None]
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
        frags = rasterize(verts, faces, 16, RasterSettings(backend=backend))
        covered = frags.pix_to_face[0, ..., 0] >= 0
        assert covered.sum() > 50
        assert (frags.pix_to_face[0, ..., 0][covered] == (0 if near_first else 1)).all()
        torch.testing.assert_close(frags.zbuf[0, ..., 0][covered], torch.full((int(covered.sum()),), 0.5), rtol=0, atol=1e-6)

    def test_depth_order_is_per_pixel(self):
        # Two triangles crossing in depth: left part of the image sees one, right part the other.
        a = [[0.9, -0.9, 0.5], [-0.9, -0.9, 2.5], [0.0, 0.9, 1.5]]
        b = [[0.9, -0.9, 2.5], [-0.9, -0.9, 0.5], [0.0, 0.9, 1.5]]
        frags = rasterize(torch.tensor([a + b]), torch.tensor([[0, 1, 2], [3, 4, 5]]), 16)
        faces_seen = frags.pix_to_face[0, 12]  # a row near the bottom
        covered = faces_seen[:, 0] >= 0
        seen = faces_seen[covered, 0]
        assert seen[0] == 0 and seen[-1] == 1  # +x (face a near) is on the left
        assert (frags.zbuf[0, ..., 0][frags.pix_to_face[0, ..., 0] >= 0] <= 1.5 + 1e-6).all()

    @pytest.mark.parametrize("max_candidates", [None, 1])  # 1: every face in its own chunk
    @pytest.mark.parametrize("order", [(0, 1), (1, 0)])
    def test_equal_depth_goes_to_the_smaller_face_index(self, order, max_candidates):
        tri = [[0.9, -0.9, 1.0], [-0.9, -0.9, 1.0], [0.0, 0.9, 1.0]]
        verts = torch.tensor([tri + tri])
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])[list(order)]
        settings = RasterSettings() if max_candidates is None else RasterSettings(max_candidates=max_candidates)
        p2f = rasterize(verts, faces, 8, settings).pix_to_face[0, ..., 0]
        assert set(p2f[p2f >= 0].tolist()) == {0}

    def test_pixel_centres_on_an_edge_are_not_covered(self):
        # A square split along its diagonal x = y; the diagonal passes through the centres of
        # pixels (i, i) of a square image, which pytorch3d's strict inside test leaves empty.
        verts = torch.tensor([[[-0.9, -0.9, 1.0], [0.9, -0.9, 1.0], [0.9, 0.9, 1.0], [-0.9, 0.9, 1.0]]])
        faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
        p2f = rasterize(verts, faces, 8).pix_to_face[0, ..., 0]
        diagonal = torch.arange(1, 7)
        assert (p2f[diagonal, diagonal] == -1).all()
        assert (p2f[diagonal, diagonal - 1] >= 0).all() and (p2f[diagonal - 1, diagonal] >= 0).all()

    def test_points_behind_the_image_plane_are_dropped(self):
        verts = torch.tensor([[[0.9, -0.9, -0.5], [-0.9, -0.9, -0.5], [0.0, 0.9, -0.5]]])
        assert (rasterize(verts, self.FACE, 8).pix_to_face == -1).all()
        # A face crossing or touching z = 0 is dropped whole (pytorch3d: any vertex z < 1e-8).
        for z_low in (-1.0, 0.0, 5e-9):
            verts = torch.tensor([[[0.9, -0.9, 1.0], [-0.9, -0.9, z_low], [0.0, 0.9, 0.5]]])
            assert (rasterize(verts, self.FACE, 16).pix_to_face == -1).all()
        verts = torch.tensor([[[0.9, -0.9, 1.0], [-0.9, -0.9, 2e-8], [0.0, 0.9, 0.5]]])
        assert (rasterize(verts, self.FACE, 16).pix_to_face >= 0).any()

    def test_degenerate_faces_are_skipped(self):
        verts = torch.tensor([[[0.9, -0.9, 1.0], [-0.9, -0.9, 1.0], [0.0, 0.9, 1.0], [0.5, 0.5, 0.1], [0.0, 0.0, 0.1]]])
        faces = torch.tensor([[3, 4, 4], [0, 3, 3], [0, 1, 2]])  # two zero-area faces in front, then a real one
        p2f = rasterize(verts, faces, 8).pix_to_face
        assert set(p2f[p2f >= 0].tolist()) == {2}

    def test_cull_backfaces(self):
        ccw = torch.tensor([[[0.9, -0.9, 1.0], [-0.9, -0.9, 1.0], [0.0, 0.9, 1.0]]])
        assert (rasterize(ccw, self.FACE, 8, RasterSettings(cull_backfaces=True)).pix_to_face >= 0).any()
        cw = ccw[:, [1, 0, 2]]
        assert (rasterize(cw, self.FACE, 8, RasterSettings(cull_backfaces=True)).pix_to_face == -1).all()
        assert (rasterize(cw, self.FACE, 8).pix_to_face >= 0).any()

    def test_batch_of_different_meshes_uses_packed_face_indices(self):
        verts, faces = random_meshes(5, 3, 12, 10)
        per_mesh_faces = torch.stack([faces, faces.flip(0), faces.roll(3, 0)])
        frags = rasterize(verts, per_mesh_faces, 20)
        for n in range(3):
            single = rasterize(verts[n : n + 1], per_mesh_faces[n], 20)
            expected = torch.where(single.pix_to_face >= 0, single.pix_to_face + n * 10, single.pix_to_face)
            assert torch.equal(frags.pix_to_face[n : n + 1], expected)
            assert torch.equal(frags.bary_coords[n : n + 1], single.bary_coords)
            assert torch.equal(frags.zbuf[n : n + 1], single.zbuf)

    def test_empty_inputs(self):
        frags = rasterize(torch.zeros(2, 3, 3), torch.zeros(0, 3, dtype=torch.long), 5)
        assert (frags.pix_to_face == -1).all() and (frags.zbuf == -1).all() and frags.pix_to_face.shape == (2, 5, 5, 1)


class TestRasterizeReference:
    @pytest.mark.parametrize("seed,size", [(0, 16), (1, (12, 20)), (2, (20, 12)), (3, 33)])
    def test_random_meshes_match_the_loop_reference(self, seed, size):
        verts, faces = random_meshes(seed, 2, 40, 60)
        h, w = (size, size) if isinstance(size, int) else size
        assert_matches_reference(rasterize(verts, faces, size), verts.numpy(), faces.numpy(), h, w)

    def test_per_mesh_faces_and_backface_culling_match_the_reference(self):
        verts, faces = random_meshes(7, 2, 30, 50)
        faces_b = torch.stack([faces, faces[:, [1, 0, 2]]])
        frags = rasterize(verts, faces_b, 24, RasterSettings(cull_backfaces=True))
        assert_matches_reference(frags, verts.numpy(), faces_b.numpy(), 24, 24, cull_backfaces=True)

    def test_chunking_does_not_change_the_result(self):
        verts, faces = random_meshes(4, 2, 40, 80)
        full = rasterize(verts, faces, 24)
        chunked = rasterize(verts, faces, 24, RasterSettings(max_candidates=1))  # budget raised to H*W
        for name in ("pix_to_face", "zbuf", "bary_coords"):
            assert torch.equal(getattr(full, name), getattr(chunked, name))

    @needs(HEAD_TEMPLATE, reason="../shared/assets/flame/head_template.obj not available")
    def test_flame_topology_matches_the_loop_reference(self):
        verts, faces = load_obj_mesh(HEAD_TEMPLATE)
        assert faces.shape == (9976, 3) and verts.shape == (5023, 3)
        ndc = head_in_ndc(verts, yaw=0.7, pitch=0.2)[None]
        frags = rasterize(ndc, faces, 224)
        assert (frags.pix_to_face >= 0).float().mean() > 0.1
        assert_matches_reference(frags, ndc.numpy(), faces.numpy(), 224, 224)


class TestRasterizeDtypeDeviceGrad:
    def test_half_input_is_computed_in_float32(self):
        verts, faces = random_meshes(3, 1, 20, 20)
        frags = rasterize(verts.half(), faces, 16)
        assert frags.zbuf.dtype == torch.float32 and frags.bary_coords.dtype == torch.float32
        assert torch.equal(frags.pix_to_face, rasterize(verts.half().float(), faces, 16).pix_to_face)

    def test_float64_stays_float64_and_agrees(self):
        verts, faces = random_meshes(6, 1, 20, 20)
        f64 = rasterize(verts.double(), faces, 16)
        f32 = rasterize(verts, faces, 16)
        assert f64.zbuf.dtype == torch.float64
        same = f64.pix_to_face == f32.pix_to_face
        assert same.float().mean() > 0.98  # only pixels on a knife edge may differ
        torch.testing.assert_close(f64.bary_coords[same[..., 0]].float(), f32.bary_coords[same[..., 0]], rtol=0, atol=1e-5)

    def test_barycentrics_and_z_are_differentiable(self):
        tri = torch.tensor([[[0.9, -0.8, 1.0], [-0.7, -0.9, 2.0], [0.1, 0.9, 3.0]]], dtype=torch.float64)

        def fn(v):
            frags = rasterize(v, torch.tensor([[0, 1, 2]]), 6)
            return frags.bary_coords[0, 3, 2, 0], frags.zbuf[0, 3, 2]

        assert torch.autograd.gradcheck(fn, (tri.clone().requires_grad_(),))

    def test_detach(self):
        tri = TestRasterizeAnalytic.TRI.clone().requires_grad_()
        frags = rasterize(tri, TestRasterizeAnalytic.FACE, 4)
        assert frags.bary_coords.requires_grad and not frags.detach().bary_coords.requires_grad

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cuda_matches_cpu(self):
        verts, faces = random_meshes(8, 2, 60, 120)
        cpu = rasterize(verts, faces, 64)
        gpu = rasterize(verts.cuda(), faces.cuda(), 64)
        assert gpu.pix_to_face.is_cuda
        same = gpu.pix_to_face.cpu() == cpu.pix_to_face
        assert same.float().mean() > 0.995  # FMA contraction may flip a pixel on an edge
        torch.testing.assert_close(gpu.bary_coords.cpu()[same[..., 0]], cpu.bary_coords[same[..., 0]], rtol=0, atol=1e-5)


class TestRasterizeErrors:
    def test_vertices_shape(self):
        with pytest.raises(ValueError, match=r"\(B, V, 3\), got \(3, 3\)"):
            rasterize(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 4)

    def test_float_faces(self):
        with pytest.raises(TypeError, match="integer"):
            rasterize(torch.zeros(1, 3, 3), torch.tensor([[0.0, 1.0, 2.0]]), 4)

    def test_faces_out_of_range(self):
        with pytest.raises(ValueError, match="outside"):
            rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]]), 4)

    def test_faces_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"\(2, F, 3\)"):
            rasterize(torch.zeros(2, 3, 3), torch.zeros(3, 1, 3, dtype=torch.long), 4)

    def test_non_finite_vertices(self):
        with pytest.raises(ValueError, match="NaN"):
            rasterize(torch.full((1, 3, 3), float("nan")), torch.tensor([[0, 1, 2]]), 4)

    def test_image_size(self):
        with pytest.raises(TypeError, match="image_size"):
            rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), 4.0)

    def test_settings_type(self):
        with pytest.raises(TypeError, match="RasterSettings"):
            rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), 4, {"blur_radius": 0.0})

    @pytest.mark.skipif(HAVE_PYTORCH3D, reason="pytorch3d is installed")
    def test_pytorch3d_backend_without_pytorch3d(self):
        with pytest.raises(ImportError, match="pytorch3d"):
            rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), 4, RasterSettings(backend="pytorch3d"))
