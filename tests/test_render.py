"""Projection, depth map, landmark drawing and the conditioning recipe.

``golden/render_official.npz`` holds numbers computed by running the authors'
``decalib/utils/util.py`` (``batch_orth_proj``, ``tensor_vis_landmarks``,
``tensor2image``), ``decalib/utils/tensor_cropper.py`` (``transform_points``) and
``decalib/utils/renderer.py`` (``SRenderY.render_depth`` + ``Pytorch3dRasterizer``
with pytorch3d's ``Meshes``/``rasterize_meshes`` replaced by a recorder that returns
fixed fragments) on seeded inputs (torch 2.14, numpy 2.4, OpenCV 5.0, CPU); only those
inputs and outputs are stored.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import pasl.render as render
from pasl.raster import Fragments
from pasl.render import (
    LANDMARK_SEGMENTS,
    conditioning_maps,
    crop_to_image,
    draw_landmarks,
    landmark_thickness,
    orthographic_project,
    render_depth,
)
from shared_assets import needs
from test_raster import HEAD_TEMPLATE, load_obj_mesh

GOLDEN = Path(__file__).parent / "golden" / "render_official.npz"


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


def sphere_mesh(n_lat: int = 24, n_lon: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed unit UV sphere: vertices (V, 3) float32, faces (F, 3) int64."""
    verts = [[0.0, 0.0, 1.0]]
    for i in range(1, n_lat):
        theta = math.pi * i / n_lat
        for j in range(n_lon):
            phi = 2 * math.pi * j / n_lon
            verts.append([math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)])
    verts.append([0.0, 0.0, -1.0])
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + j % n_lon  # noqa: E731
    for j in range(n_lon):
        faces.append([0, ring(1, j), ring(1, j + 1)])
        faces.append([len(verts) - 1, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            faces.append([ring(i, j), ring(i + 1, j), ring(i + 1, j + 1)])
            faces.append([ring(i, j), ring(i + 1, j + 1), ring(i, j + 1)])
    return torch.tensor(verts, dtype=torch.float32), torch.tensor(faces)


def deca_sphere(batch: int = 1, radius: float = 0.5, shift=(0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere as DECA trans_verts: x right, y down, z = -s * z_world (the +z pole is nearest).

    Shifted off the pixel grid a little: pixel centres exactly on an edge are covered by
    no face (pytorch3d's strict inside test), which a symmetric sphere would hit on its
    diagonals.
    """
    verts, faces = sphere_mesh()
    v = verts * radius
    v = torch.stack([v[:, 0] + shift[0] + 0.0123, v[:, 1] + shift[1] + 0.0071, -v[:, 2]], -1)
    return v.expand(batch, -1, -1).clone(), faces


def fake_landmarks(batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.stack([torch.linspace(-0.7, 0.7, 68), 0.6 * torch.sin(torch.linspace(0, 6.28, 68))], -1)
    return base + 0.05 * torch.randn(batch, 68, 2, generator=g)


# ----------------------------------------------------------------------------- projection


class TestOrthographicProject:
    def test_matches_official(self, golden):
        pts, cam = torch.from_numpy(golden["proj_points"]), torch.from_numpy(golden["proj_cam"])
        out = orthographic_project(pts, cam)
        np.testing.assert_array_equal(out.numpy(), golden["proj_trans_verts"])
        np.testing.assert_array_equal(out[..., :2].numpy(), golden["proj_landmarks2d"])

    def test_known_values_and_no_mutation(self):
        pts = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
        before = pts.clone()
        out = orthographic_project(pts, torch.tensor([[2.0, 0.5, -1.0]]))
        assert out.tolist() == [[[3.0, -2.0, -6.0], [1.0, 2.0, -0.0]]]
        assert torch.equal(pts, before)

    def test_cam_shape_error(self):
        with pytest.raises(ValueError, match=r"cam must have shape \(1, 3\)"):
            orthographic_project(torch.zeros(1, 4, 3), torch.zeros(2, 3))


class TestCropToImage:
    def test_matches_official(self, golden):
        tform = torch.from_numpy(golden["crop_tform"])
        tv = torch.from_numpy(golden["proj_trans_verts"])
        lm = torch.from_numpy(golden["proj_landmarks2d"])
        np.testing.assert_allclose(crop_to_image(tv, tform).numpy(), golden["crop_trans_verts"], rtol=0, atol=2e-6)
        np.testing.assert_allclose(crop_to_image(lm, tform).numpy(), golden["crop_landmarks2d"], rtol=0, atol=2e-6)

    def test_z_unchanged_and_crop_corner_maps_through_the_tform(self):
        # crop_from_image: a 2x downscale then a shift of (-10, -20) px.
        tform = torch.tensor([[0.5, 0.0, -10.0], [0.0, 0.5, -20.0], [0.0, 0.0, 1.0]])
        pts = torch.tensor([[[-1.0, -1.0, 7.0], [1.0, 1.0, -3.0]]])
        out = crop_to_image(pts, tform, crop_size=100, image_size=(400, 300))
        # crop pixel (0, 0) <- image pixel (20, 40); crop pixel (100, 100) <- image (220, 240).
        expected = torch.tensor([[[20 / 300 * 2 - 1, 40 / 400 * 2 - 1, 7.0], [220 / 300 * 2 - 1, 240 / 400 * 2 - 1, -3.0]]])
        torch.testing.assert_close(out, expected)
        assert torch.equal(pts, torch.tensor([[[-1.0, -1.0, 7.0], [1.0, 1.0, -3.0]]]))

    def test_tform_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"tform must have shape \(2, 3, 3\)"):
            crop_to_image(torch.zeros(2, 5, 3), torch.eye(3).expand(3, 3, 3))


# ----------------------------------------------------------------------------- depth


def _golden_fragments(golden, n):
    p2f = torch.from_numpy(golden["depth_pix_to_face"][:n])
    return Fragments(p2f, torch.zeros(p2f.shape), torch.from_numpy(golden["depth_bary"][:n]))


class TestRenderDepth:
    @pytest.mark.parametrize("mode,normalize", [("batch", "batch"), ("single", "per_sample"), ("single", "batch")])
    def test_normalisation_and_interpolation_match_official(self, golden, monkeypatch, mode, normalize):
        """Same fragments in, same depth out; and the same vertices reach the rasteriser."""
        verts = torch.from_numpy(golden[f"depth_{mode}_verts"])
        seen = {}

        def fake_rasterize(v, faces, image_size, settings=None):
            seen["verts"] = v
            return _golden_fragments(golden, v.shape[0])

        monkeypatch.setattr(render, "rasterize", fake_rasterize)
        depth = render_depth(verts, torch.from_numpy(golden["depth_faces"]), 6, normalize=normalize)
        np.testing.assert_array_equal(depth.numpy(), golden[f"depth_{mode}_out"])
        np.testing.assert_array_equal(seen["verts"].numpy(), golden[f"depth_{mode}_raster_verts"])

    def test_per_sample_of_a_batch_equals_each_mesh_alone(self, golden, monkeypatch):
        verts = torch.from_numpy(golden["depth_batch_verts"]).clone()
        verts[1, :, 2] *= 3  # widen the second mesh's depth range so "batch" differs
        faces = torch.from_numpy(golden["depth_faces"])
        monkeypatch.setattr(render, "rasterize", lambda v, f, s, settings=None: _golden_fragments(golden, v.shape[0]))
        both = render_depth(verts, faces, 6, normalize="per_sample")
        alone = render_depth(verts[:1], faces, 6, normalize="per_sample")
        assert torch.equal(both[:1], alone)
        assert not torch.equal(render_depth(verts, faces, 6, normalize="batch")[:1], alone)

    def test_never_mutates_input(self, golden):
        verts = torch.from_numpy(golden["depth_batch_verts"]).clone()
        before = verts.clone()
        render_depth(verts, torch.from_numpy(golden["depth_faces"]), 6, normalize="batch")
        assert torch.equal(verts, before)
        assert not np.array_equal(golden["depth_batch_mutated_input"], before.numpy())  # the official code does

    def test_nearest_is_one_farthest_zero_background_zero(self):
        # A plateau at the nearest depth (two triangles) above a larger plane at the farthest.
        near = [[-0.3, -0.3, 1.0], [0.3, -0.3, 1.0], [0.3, 0.3, 1.0], [-0.3, 0.3, 1.0]]
        far = [[-0.8, -0.8, 3.0], [0.8, -0.8, 3.0], [0.8, 0.8, 3.0], [-0.8, 0.8, 3.0]]
        verts = torch.tensor([near + far])
        faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
        depth = render_depth(verts, faces, 20)
        assert depth.shape == (1, 1, 20, 20)
        torch.testing.assert_close(depth[0, 0, 10, 9], torch.tensor(1.0), rtol=0, atol=1e-6)  # inside the plateau
        torch.testing.assert_close(depth[0, 0, 3, 10], torch.tensor(0.0), rtol=0, atol=1e-6)  # far plane only
        assert depth[0, 0, 0, 0] == 0 and depth[0, 0, 19, 19] == 0  # background

    def test_interpolates_the_nearest_face_linearly(self):
        # One slanted triangle: t = 1 + x (DECA NDC), so value = (max t - t) / range = (xmax - x) / (xmax - xmin).
        verts = torch.tensor([[[-0.9, 0.9, 0.1], [0.9, 0.9, 1.9], [0.0, -0.9, 1.0]]])
        depth = render_depth(verts, torch.tensor([[0, 1, 2]]), 10)[0, 0]
        j = torch.arange(10)
        x = (2 * j + 1) / 10 - 1  # DECA NDC centre of column j
        covered = depth[8] > 0  # row 8, near the long edge
        expected = (0.9 - x) / 1.8
        torch.testing.assert_close(depth[8][covered], expected[covered].float(), rtol=0, atol=1e-5)
        assert covered.sum() >= 6

    def test_deca_orientation(self):
        # A sphere shifted to DECA x < 0, y < 0 appears in the top-left of the map.
        verts, faces = deca_sphere(shift=(-0.5, -0.5), radius=0.3)
        depth = render_depth(verts, faces, 32)[0, 0]
        rows, cols = (depth > 0).nonzero().unbind(1)
        assert rows.max() < 16 and cols.max() < 16
        # The nearest point (the +z pole, at the sphere centre in the image) is brightest.
        peak = divmod(int(depth.argmax()), 32)
        assert abs(peak[0] - 8) <= 1 and abs(peak[1] - 8) <= 1 and depth.max() > 0.97

    def test_per_sample_vs_batch(self):
        small, faces = deca_sphere(radius=0.2)
        big, _ = deca_sphere(radius=0.6)
        verts = torch.cat([small, big])
        per_sample = render_depth(verts, faces, 32)
        batch = render_depth(verts, faces, 32, normalize="batch")
        assert per_sample[0].max() > 0.97 and per_sample[1].max() > 0.97
        assert batch[0].max() < 0.75 < batch[1].max()  # the small sphere is squeezed into a narrow band
        torch.testing.assert_close(per_sample[0], render_depth(small, faces, 32)[0])

    def test_flat_mesh_is_all_near(self):
        verts = torch.tensor([[[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]]])
        depth = render_depth(verts, torch.tensor([[0, 1, 2]]), 8)
        assert torch.isfinite(depth).all() and depth.max() == pytest.approx(1.0, abs=1e-6)

    @needs(HEAD_TEMPLATE, reason="../shared/assets/flame/head_template.obj not available")
    def test_flame_head(self):
        verts, faces = load_obj_mesh(HEAD_TEMPLATE)
        centred = (verts - verts.mean(0)) * 4.5
        trans_verts = torch.stack([centred[:, 0], -centred[:, 1], -centred[:, 2]], -1)[None]  # DECA NDC
        depth = render_depth(trans_verts, faces, 224)
        assert depth.shape == (1, 1, 224, 224) and depth.dtype == torch.float32
        assert depth.min() == 0 and 0.9 < depth.max() <= 1.0
        assert (depth > 0).float().mean() > 0.1

    def test_dtype_and_errors(self):
        verts, faces = deca_sphere()
        assert render_depth(verts.half(), faces, 8).dtype == torch.float32
        assert render_depth(verts.double(), faces, 8).dtype == torch.float64
        with pytest.raises(ValueError, match="normalize"):
            render_depth(verts, faces, 8, normalize="global")

    def test_vertices_shape_error(self):
        with pytest.raises(ValueError, match=r"\(B, N, 3\), got \(5, 3\)"):
            render_depth(torch.zeros(5, 3), torch.tensor([[0, 1, 2]]), 8)


# ----------------------------------------------------------------------------- landmarks


def cv2_reference_drawing(landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """Our own cv2 calls: the 60 official pairs, width 2, int() of the pixel coordinates."""
    out = []
    for pts in landmarks.astype(np.float32):
        canvas = np.zeros((size, size, 3), np.uint8)
        px = pts * np.float32(size / 2) + np.float32(size / 2)
        for a in range(67):
            if a in (16, 21, 26, 30, 35, 41, 47):
                continue
            p, q = px[a], px[a + 1]
            cv2.line(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), (255, 255, 255), 2)
        out.append(canvas)
    return np.stack(out)


class TestDrawLandmarks:
    def test_segments_constant(self):
        assert len(LANDMARK_SEGMENTS) == 60
        assert (59, 60) in LANDMARK_SEGMENTS and (16, 17) not in LANDMARK_SEGMENTS and (47, 48) not in LANDMARK_SEGMENTS
        assert all(b == a + 1 for a, b in LANDMARK_SEGMENTS) and LANDMARK_SEGMENTS[-1] == (66, 67)

    def test_matches_official(self, golden):
        images = draw_landmarks(torch.from_numpy(golden["lm_points"]))
        expected = np.unpackbits(golden["lm_images_bits"], axis=-1).astype(np.float32)
        assert images.shape == (4, 3, 256, 256)
        for c in range(3):
            np.testing.assert_array_equal(images[:, c].numpy(), expected)

    def test_matches_own_cv2_calls(self):
        lms = fake_landmarks(3)
        images = draw_landmarks(lms)
        ref = cv2_reference_drawing(lms.numpy()).transpose(0, 3, 1, 2) / 255.0
        np.testing.assert_array_equal(images.numpy(), ref.astype(np.float32))
        assert images.sum() > 3 * 3 * 500  # plenty of lit pixels

    def test_values_channels_dtype(self):
        images = draw_landmarks(fake_landmarks(2), 128)
        assert images.shape == (2, 3, 128, 128) and images.dtype == torch.float32
        assert set(images.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
        assert draw_landmarks(fake_landmarks(1).double()).dtype == torch.float64

    def test_lip_link_is_drawn_and_jaw_brow_link_is_not(self):
        def ndc(u, v):
            return [u / 128 - 1, v / 128 - 1]

        pts = torch.tensor([ndc(10.5, 10.5)] * 68)
        pts[16], pts[17] = torch.tensor(ndc(200.5, 50.5)), torch.tensor(ndc(200.5, 150.5))
        pts[59], pts[60] = torch.tensor(ndc(60.5, 200.5)), torch.tensor(ndc(160.5, 200.5))
        image = draw_landmarks(pts[None])[0, 0]
        assert image[200, 110] == 1  # midpoint of 59 -> 60
        assert image[100, 200] == 0  # midpoint of 16 -> 17
        assert image[50, 200] == 1 and image[150, 200] == 1  # 15 -> 16 and 17 -> 18 reach them

    @pytest.mark.parametrize("u,lit", [(-1.6, True), (-0.6, True), (-2.2, False)])
    def test_truncation_toward_zero(self, u, lit):
        # A vertical width-2 line at pixel column c lights columns c-1..c: int(-1.6) = -1
        # reaches column 0, floor(-1.6) = -2 would not.
        pts = torch.full((68, 2), 0.5)
        pts[0] = torch.tensor([(u - 128) / 128, 0.0])
        pts[1] = torch.tensor([(u - 128) / 128, 0.5])
        image = draw_landmarks(pts[None])[0, 0]
        assert bool(image[140:180, 0].all()) is lit and bool(image[140:180, 0].any()) is lit

    def test_thickness_rule(self):
        assert landmark_thickness(256, 256) == 2 and landmark_thickness(1000, 1200) == 5 and landmark_thickness(64, 64) == 2

    def test_device_follows_input(self):
        assert draw_landmarks(fake_landmarks(1)).device == torch.device("cpu")

    def test_shape_error(self):
        with pytest.raises(ValueError, match=r"\(B, 68, 2\|3\), got \(1, 5, 2\)"):
            draw_landmarks(torch.zeros(1, 5, 2))

    def test_far_away_points_error(self):
        with pytest.raises(ValueError, match="beyond"):
            draw_landmarks(torch.full((1, 68, 2), 1e30))

    def test_non_finite_error(self):
        with pytest.raises(ValueError, match="NaN"):
            draw_landmarks(torch.full((1, 68, 2), float("nan")))


# ----------------------------------------------------------------------------- conditioning


@pytest.fixture(scope="module")
def inputs():
    """Two DECA-NDC spheres (the second shifted right), 68 wavy landmarks each, faces."""
    verts, faces = deca_sphere(batch=2, radius=0.55)
    verts[1, :, 0] += 0.2
    return verts, fake_landmarks(2), faces


class TestConditioningMaps:
    def test_demo_recipe_shapes_and_values(self, inputs):
        verts, lms, faces = inputs
        depth, landmarks = conditioning_maps(verts, lms, faces)
        assert depth.shape == landmarks.shape == (2, 3, 256, 256)
        assert depth.dtype == landmarks.dtype == torch.float32
        assert 0 <= depth.min() and depth.max() <= 1 and depth.max() > 0.9
        assert torch.equal(depth[:, 0], depth[:, 1]) and torch.equal(depth[:, 0], depth[:, 2])
        assert set(landmarks.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(landmarks, draw_landmarks(lms))
        assert torch.equal((depth * 255).round(), depth * 255)  # uint8 levels

    def test_demo_depth_is_uint8_truncation_then_pil_bilinear(self, inputs):
        verts, lms, faces = inputs
        depth, _ = conditioning_maps(verts, lms, faces)
        raw = render_depth(verts, faces, 224)[:, 0].numpy()
        for b in range(2):
            u8 = np.uint8(np.maximum(np.minimum(raw[b] * 255.0, 255), 0))
            up = np.asarray(Image.fromarray(np.repeat(u8[..., None], 3, -1)).resize((256, 256), Image.BILINEAR))
            np.testing.assert_array_equal(depth[b].permute(1, 2, 0).numpy(), up.astype(np.float32) / 255)

    def test_demo_depth_matches_torchvision_resize(self, inputs):
        transforms = pytest.importorskip("torchvision.transforms")
        verts, lms, faces = inputs
        depth, _ = conditioning_maps(verts, lms, faces)
        u8 = (render_depth(verts, faces, 224)[0, 0].numpy() * 255.0).clip(0, 255).astype(np.uint8)
        official = transforms.Compose([transforms.Resize([256, 256]), transforms.ToTensor()])
        assert torch.equal(official(Image.fromarray(np.stack([u8] * 3, -1))), depth[0])

    def test_flatten_follows_the_test_protocol(self, inputs):
        verts, lms, faces = inputs
        depth, landmarks = conditioning_maps(verts, lms, faces, flatten=True)
        assert depth.shape == landmarks.shape == (2, 3, 256, 256)
        # Independent PIL chain for sample 0.
        u8 = (render_depth(verts, faces, 224)[0, 0].numpy() * 255.0).clip(0, 255).astype(np.uint8)
        d = Image.fromarray(np.stack([u8] * 3, -1)).resize((256, 256), Image.BICUBIC)
        canvas = Image.new("RGB", (236, 256))
        canvas.paste(d, (0, 10))
        d = canvas.resize((224, 224), Image.LANCZOS).resize((256, 256), Image.BILINEAR)
        np.testing.assert_array_equal(depth[0].permute(1, 2, 0).numpy(), np.asarray(d, np.float32) / 255)
        lm = Image.fromarray(cv2_reference_drawing(lms[:1].numpy())[0])
        canvas = Image.new("RGB", (236, 256))
        canvas.paste(lm, (0, 10))
        lm = canvas.resize((256, 256), Image.LANCZOS)
        np.testing.assert_array_equal(landmarks[0].permute(1, 2, 0).numpy(), np.asarray(lm, np.float32) / 255)

    def test_flatten_shifts_content_down_by_ten_pixels(self, inputs):
        verts, lms, faces = inputs
        depth, landmarks = conditioning_maps(verts, lms, faces)
        flat_depth, flat_landmarks = conditioning_maps(verts, lms, faces, flatten=True)
        assert (flat_landmarks[:, :, :10] == 0).all()
        assert (flat_depth[:, :, :5] == 0).all()  # LANCZOS 256 -> 224 smears the 10-row border a little

        def centroid_row(img):
            w = img[:, 0].double()
            return float((w.sum(dim=(0, 2)) * torch.arange(256)).sum() / w.sum())

        for before, after in ((depth, flat_depth), (landmarks, flat_landmarks)):
            assert centroid_row(after) - centroid_row(before) == pytest.approx(10, abs=0.6)
        # Rows are untouched by the landmark resize (236 -> 256 is horizontal only).
        lit_before = landmarks[0, 0].sum(1) > 0
        lit_after = flat_landmarks[0, 0].sum(1) > 0
        assert torch.equal(lit_after[10:], lit_before[:-10])

    def test_never_mutates_inputs(self, inputs):
        verts, lms, faces = inputs
        v0, l0 = verts.clone(), lms.clone()
        conditioning_maps(verts, lms, faces, flatten=True)
        assert torch.equal(verts, v0) and torch.equal(lms, l0)

    def test_batch_mismatch_error(self, inputs):
        verts, lms, faces = inputs
        with pytest.raises(ValueError, match="batch sizes differ"):
            conditioning_maps(verts, lms[:1], faces)

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cuda_inputs_give_cuda_outputs(self, inputs):
        verts, lms, faces = inputs
        depth, landmarks = conditioning_maps(verts.cuda(), lms.cuda(), faces.cuda())
        assert depth.is_cuda and landmarks.is_cuda
        cpu_depth, _ = conditioning_maps(verts, lms, faces)
        assert (depth.cpu() - cpu_depth).abs().max() <= 1 / 255 + 1e-6
