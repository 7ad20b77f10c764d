"""The torch rasteriser and depth map against stored outputs of the real pytorch3d.

``golden/render_pytorch3d.npz`` was made by running pytorch3d 0.7.9 (built from source,
CPU kernel, torch 2.14.1) ``rasterize_meshes(..., blur_radius=0, faces_per_pixel=1,
bin_size=None, perspective_correct=False)`` and the official DECA
``SRenderY.render_depth`` (``decalib/utils/renderer.py`` with pytorch3d as its
rasteriser), outside this repository. Stored:

* ``head{k}_*``: three posed FLAME template heads (``../shared/assets/flame/head_template.obj``,
  9976 faces) at 224, 224 and 64 px. No vertex array is stored: the inputs are rebuilt
  by ``head_inputs`` from the OBJ text, the stored centre, rotation matrices and DECA
  cameras, in float64 elementwise arithmetic and one cast to float32, and guarded by
  a SHA-256 of the float32 vertices. ``pix_to_face`` is stored in full; ``zbuf`` at every
  ``zbuf_stride[k]``-th covered pixel (row-major); head 0 also carries the official
  depth map at every covered pixel (background is 0) and head 2 the barycentrics.
* ``rand_*``: two random meshes (vertices stored, z in [0.05, 2.05], 10 duplicated faces
  for exact depth ties), 48 x 64, with and without backface culling.
* ``grid_*``: a 17 x 17 vertex grid at 64 px whose vertices sit exactly on pixel
  centres, so edges pass through pixel centres (strict ``> 0`` inside test: such
  centres belong to neither neighbour).
* ``near_plane_*``: the same meshes with some vertices at z in {-0.3, -1e-9, 0, 5e-9,
  1e-8, 2e-8, -0.05, 1e-7}. pytorch3d skips every face with a vertex at z < kEpsilon
  (``CheckPointOutsideBoundingBox``: ``z_invalid = zmin < kEpsilon``, CPU and CUDA).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pasl.raster import RasterSettings, rasterize
from pasl.render import render_depth
from shared_assets import needs

GOLDEN = Path(__file__).parent / "golden" / "render_pytorch3d.npz"
HEAD_TEMPLATE = Path(__file__).resolve().parents[2] / "shared" / "assets" / "flame" / "head_template.obj"
DEPTH_Z_OFFSET = 10.0  # SRenderY.render_depth: z - min(z) + 10 before rasterising

needs_template = needs(HEAD_TEMPLATE, reason="../shared/assets/flame/head_template.obj not available")


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.fixture(scope="module")
def template():
    """Vertices (V, 3) float64, parsed exactly from the OBJ text, and faces (F, 3) int64."""
    verts, faces = [], []
    for line in HEAD_TEMPLATE.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(a) for a in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(a.split("/")[0]) - 1 for a in line.split()[1:4]])
    return torch.tensor(verts, dtype=torch.float64), torch.tensor(faces, dtype=torch.long)


def head_inputs(verts64: torch.Tensor, centre, rot, cam) -> tuple[torch.Tensor, torch.Tensor]:
    """DECA ``trans_verts`` and the vertices ``render_depth`` hands pytorch3d, both (1, V, 3) float32.

    ``p = rot @ (v - centre)``; DECA NDC ``[s (x + tx), -s (y + ty), -s z]``; pytorch3d NDC
    negates x and y and shifts z to ``z - min z + 10``. Elementwise float64 ops only, so
    the float32 result does not depend on BLAS or reduction order.
    """
    c = [verts64[:, k] - float(centre[k]) for k in range(3)]
    x, y, z = (c[0] * float(rot[i, 0]) + c[1] * float(rot[i, 1]) + c[2] * float(rot[i, 2]) for i in range(3))
    s, tx, ty = (float(a) for a in cam)
    deca = torch.stack([s * (x + tx), -(s * (y + ty)), -(s * z)], -1)
    raster = torch.stack([-deca[:, 0], -deca[:, 1], deca[:, 2] - deca[:, 2].min() + DEPTH_Z_OFFSET], -1)
    return deca.float()[None], raster.float()[None]


def sha256(t: torch.Tensor) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(t.contiguous().numpy().tobytes()).digest(), np.uint8)


def rebuilt_head(golden, template, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    verts64, _ = template
    deca, raster = head_inputs(verts64, golden["head_centre"], golden["head_rot"][k], golden["head_cam"][k])
    if not (
        np.array_equal(sha256(raster), golden[f"head{k}_raster_sha256"]) and np.array_equal(sha256(deca), golden[f"head{k}_deca_sha256"])
    ):
        pytest.fail(f"head {k}: rebuilt vertices differ from the ones pytorch3d saw (different head_template.obj?)")
    return deca, raster


def assert_same_faces(ours: torch.Tensor, expected: np.ndarray, what: str) -> None:
    got = ours.numpy()
    bad = np.argwhere(got != expected)
    assert len(bad) == 0, f"{what}: {len(bad)} of {got.size} pixels differ from pytorch3d, first {bad[:5].tolist()}"


@needs_template
class TestHeadAgainstPytorch3d:
    @pytest.mark.parametrize("k", [0, 1, 2])
    def test_pix_to_face_and_zbuf(self, golden, template, k):
        _, raster = rebuilt_head(golden, template, k)
        size = int(golden["head_size"][k])
        frags = rasterize(raster, template[1], size)
        assert frags.pix_to_face.shape == (1, size, size, 1)
        expected = golden[f"head{k}_pix_to_face"].astype(np.int64)
        assert (expected >= 0).sum() > 0.05 * expected.size  # the head is really in the picture
        assert_same_faces(frags.pix_to_face[0, ..., 0], expected, f"head {k}")
        covered = torch.from_numpy(expected >= 0)
        zbuf = frags.zbuf[0, ..., 0][covered].numpy()[:: int(golden["zbuf_stride"][k])]
        np.testing.assert_array_equal(zbuf, golden[f"head{k}_zbuf_covered"])  # bit-exact z
        assert (frags.zbuf[0, ..., 0][~covered] == -1).all()

    def test_barycentrics(self, golden, template):
        _, raster = rebuilt_head(golden, template, 2)
        frags = rasterize(raster, template[1], 64)
        covered = torch.from_numpy(golden["head2_pix_to_face"] >= 0)
        np.testing.assert_array_equal(frags.bary_coords[0, :, :, 0][covered].numpy(), golden["head2_bary_covered"])  # bit-exact

    def test_depth_map_matches_official_render_depth(self, golden, template):
        deca, _ = rebuilt_head(golden, template, 0)
        depth = render_depth(deca, template[1], 224)
        assert depth.shape == (1, 1, 224, 224)
        covered = torch.from_numpy(golden["head0_pix_to_face"] >= 0)
        got = depth[0, 0][covered].numpy()
        expected = golden["head0_depth_covered"]
        assert expected.min() >= 0 and expected.max() <= 1 and expected.max() > 0.9
        # acceptance bar: >= 99.5 % of pixels within 1e-3; this kernel reproduces it to float32 rounding
        assert np.mean(np.abs(got - expected) <= 1e-3) == 1.0
        np.testing.assert_array_equal(got, expected)  # max diff 0
        assert (depth[0, 0][~covered] == 0).all()


class TestRandomMeshesAgainstPytorch3d:
    def test_pix_to_face_zbuf_and_ties(self, golden):
        verts = torch.from_numpy(golden["rand_verts"])
        faces = torch.from_numpy(golden["rand_faces"].astype(np.int64))
        frags = rasterize(verts, faces, (48, 64))
        expected = golden["rand_pix_to_face"].astype(np.int64)
        assert_same_faces(frags.pix_to_face[..., 0], expected, "random meshes")
        # faces 80..89 duplicate 0..9: some pixels are decided by an exact z tie (smaller index wins)
        local = expected % faces.shape[1]
        assert ((expected >= 0) & (local < 10)).any() and not ((expected >= 0) & (local >= 80)).any()
        covered = torch.from_numpy(expected >= 0)
        np.testing.assert_array_equal(frags.zbuf[..., 0][covered].numpy(), golden["rand_zbuf_covered"])

    def test_backface_culling(self, golden):
        verts = torch.from_numpy(golden["rand_verts"])
        faces = torch.from_numpy(golden["rand_faces"].astype(np.int64))
        frags = rasterize(verts, faces, (48, 64), RasterSettings(cull_backfaces=True))
        assert_same_faces(frags.pix_to_face[..., 0], golden["rand_cull_pix_to_face"].astype(np.int64), "culled random meshes")

    def test_pixel_centres_on_edges(self, golden):
        verts = torch.from_numpy(golden["grid_verts"])
        faces = torch.from_numpy(golden["grid_faces"].astype(np.int64))
        frags = rasterize(verts, faces, 64)
        expected = golden["grid_pix_to_face"].astype(np.int64)
        assert (expected[3:61, 3:61] < 0).sum() > 1000  # the centres on grid lines stay empty
        assert_same_faces(frags.pix_to_face[0, ..., 0], expected, "pixel-centre grid")

    def test_faces_touching_the_image_plane_are_skipped(self, golden):
        verts = torch.from_numpy(golden["near_plane_verts"])
        faces = torch.from_numpy(golden["rand_faces"].astype(np.int64))
        frags = rasterize(verts, faces, (48, 64))
        assert_same_faces(frags.pix_to_face[..., 0], golden["near_plane_pix_to_face"].astype(np.int64), "near-plane meshes")
