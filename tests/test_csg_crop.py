"""DECA's crop: landmark box rule, similarity estimate, bilinear warp (vs the official TestData and skimage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deca_synthetic import face_landmarks, frame_image
from pasl.csg import (
    box_crop_transform,
    deca_crop,
    deca_crop_transform,
    full_image_crop_transform,
    landmarks_box,
)
from pasl.geometry import estimate_similarity

GOLDEN = Path(__file__).resolve().parent / "golden" / "deca_crop_official.npz"

# the inputs tests/golden/deca_crop_official.npz was made from (official TestData, fake FAN returning these points)
GOLDEN_CASES = {
    "inside": (10, 0, (20, (128, 134), 120, True)),
    "edge": (11, 30, (21, (40, 210), 150, True)),
    "noface": (12, 0, None),
    "subpixel": (13, 0, (22, (120.3, 128.8), 101.7, False)),
}


def as_tensor_image(frame: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """uint8 HWC -> (1, 3, H, W) in [0, 1], as TestData's ``image / 255.``."""
    return (torch.from_numpy(frame).permute(2, 0, 1)[None].to(torch.float64) / 255.0).to(dtype)


def translation(dx: float, dy: float, scale: float = 1.0) -> torch.Tensor:
    return torch.tensor([[[scale, 0.0, dx], [0.0, scale, dy], [0.0, 0.0, 1.0]]], dtype=torch.float64)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return dict(data)


def golden_inputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    seed, low, landmark_args = GOLDEN_CASES[name]
    frame = frame_image(seed, low=low)
    if landmark_args is None:
        tform = full_image_crop_transform(*frame.shape[:2])
    else:
        seed_l, center, size, integer = landmark_args
        tform = deca_crop_transform(torch.from_numpy(face_landmarks(seed_l, center, size, integer))[None])
    return as_tensor_image(frame), tform


class TestLandmarksBox:
    def test_known_values(self):
        points = torch.zeros(1, 68, 2)
        points[0, 3] = torch.tensor([-4.0, 7.0])
        points[0, 60] = torch.tensor([9.0, -2.0])
        assert landmarks_box(points).tolist() == [[-4.0, -2.0, 9.0, 7.0]]

    def test_rejects_wrong_count(self):
        with pytest.raises(ValueError, match=r"\(2, 5, 2\)"):
            landmarks_box(torch.zeros(2, 5, 2))


class TestEstimateSimilarity:
    def test_recovers_exact_similarity(self):
        angle, scale, shift = 0.3, 1.7, torch.tensor([5.0, -3.0], dtype=torch.float64)
        rotation = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float64)
        src = torch.randn(2, 7, 2, dtype=torch.float64)
        dst = src @ (scale * rotation).T + shift
        out = estimate_similarity(src, dst)
        torch.testing.assert_close(out[:, :2, :2], (scale * rotation).expand(2, 2, 2), rtol=0, atol=1e-12)
        torch.testing.assert_close(out[:, :2, 2], shift.expand(2, 2), rtol=0, atol=1e-12)

    def test_least_squares_on_noisy_points(self):
        src = torch.randn(1, 9, 2, dtype=torch.float64)
        dst = 2 * src.flip(-1) + 0.1 * torch.randn(1, 9, 2, dtype=torch.float64)
        out = estimate_similarity(src, dst)[0]
        # the same problem as a linear least-squares fit of [a, b, tx, ty] with x' = a x - b y + tx, y' = b x + a y + ty
        x, y = src[0, :, 0], src[0, :, 1]
        one, zero = torch.ones_like(x), torch.zeros_like(x)
        design = torch.cat([torch.stack([x, -y, one, zero], 1), torch.stack([y, x, zero, one], 1)])
        a, b, tx, ty = torch.linalg.lstsq(design, torch.cat([dst[0, :, 0], dst[0, :, 1]])[:, None]).solution[:, 0]
        expected = torch.stack([torch.stack([a, -b, tx]), torch.stack([b, a, ty]), out.new_tensor([0.0, 0.0, 1.0])])
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)

    def test_matches_skimage(self):
        transform = pytest.importorskip("skimage.transform")
        rng = np.random.RandomState(0)
        src, dst = rng.uniform(0, 200, (3, 2)), rng.uniform(0, 200, (3, 2))
        expected = transform.estimate_transform("similarity", src, dst).params
        out = estimate_similarity(torch.from_numpy(src)[None], torch.from_numpy(dst)[None])[0].numpy()
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)

    def test_rejects_coincident_points(self):
        with pytest.raises(ValueError, match="coincide"):
            estimate_similarity(torch.ones(1, 3, 2), torch.rand(1, 3, 2))


class TestDecaCropTransform:
    def test_closed_form(self):
        # box 100 x 60 at (20, 40): old_size = 80 * 1.1 = 88, size = int(88 * 1.25) = 110, centre (70, 70)
        points = torch.tensor([[20.0, 40.0], [120.0, 100.0]]).repeat(34, 1)[None]
        tform = deca_crop_transform(points)[0]
        k = 223 / 110
        expected = torch.tensor([[k, 0, -k * (70 - 55)], [0, k, -k * (70 - 55)], [0, 0, 1]], dtype=torch.float64)
        torch.testing.assert_close(tform, expected, rtol=0, atol=1e-12)
        assert tform.dtype == torch.float64

    def test_size_truncates_to_whole_pixels(self):
        # old_size = 101 * 1.1 = 111.1 -> 138.875 -> 138
        points = torch.tensor([[0.0, 0.0], [101.0, 101.0]]).repeat(34, 1)[None]
        assert deca_crop_transform(points)[0, 0, 0].item() == pytest.approx(223 / 138, abs=1e-14)

    def test_crop_corners_land_on_crop_corners(self):
        points = torch.from_numpy(face_landmarks(5, (100, 120), 90))[None]
        tform = deca_crop_transform(points)[0]
        left, top, right, bottom = landmarks_box(points)[0].double().tolist()
        size = int((right - left + bottom - top) / 2 * 1.1 * 1.25)
        cx, cy = (left + right) / 2, (top + bottom) / 2
        corner = tform @ torch.tensor([cx + size / 2, cy + size / 2, 1.0], dtype=torch.float64)
        torch.testing.assert_close(corner[:2], torch.tensor([223.0, 223.0], dtype=torch.float64), rtol=0, atol=1e-10)

    @pytest.mark.parametrize("name", list(GOLDEN_CASES))
    def test_matches_official_testdata(self, name, golden):
        _, tform = golden_inputs(name)
        np.testing.assert_allclose(tform[0].float().numpy(), golden[f"crop_{name}_tform"], rtol=0, atol=5e-16)  # README: <=5e-16

    def test_matches_skimage(self):
        transform = pytest.importorskip("skimage.transform")
        points = torch.from_numpy(face_landmarks(6, (130, 110), 140, integer=False))[None]
        left, top, right, bottom = landmarks_box(points)[0].double().tolist()
        old_size = (right - left + bottom - top) / 2 * 1.1
        cx, cy = right - (right - left) / 2.0, bottom - (bottom - top) / 2.0
        size = int(old_size * 1.25)
        src = np.array([[cx - size / 2, cy - size / 2], [cx - size / 2, cy + size / 2], [cx + size / 2, cy - size / 2]])
        expected = transform.estimate_transform("similarity", src, np.array([[0, 0], [0, 223], [223, 0]])).params
        np.testing.assert_allclose(deca_crop_transform(points)[0].numpy(), expected, rtol=0, atol=1e-10)

    def test_no_face_fallback_is_the_whole_image(self):
        points = torch.full((2, 68, 2), float("nan"))
        points[0] = torch.from_numpy(face_landmarks(7, (128, 128), 100))
        tform = deca_crop_transform(points, face_found=torch.tensor([True, False]), image_size=(256, 256))
        torch.testing.assert_close(tform[0], deca_crop_transform(points[:1])[0])
        # box [0, 0, 255, 255]: size = int(255 * 1.1 * 1.25) = 350 around (127.5, 127.5)
        torch.testing.assert_close(tform[1], full_image_crop_transform(256, 256)[0])
        k = 223 / 350
        torch.testing.assert_close(tform[1, 0], torch.tensor([k, 0.0, -k * (127.5 - 175)], dtype=torch.float64), rtol=0, atol=1e-12)

    def test_fallback_needs_image_size(self):
        with pytest.raises(ValueError, match="image_size"):
            deca_crop_transform(torch.zeros(1, 68, 2), face_found=torch.tensor([False]))

    def test_rejects_nan_without_face_found(self):
        with pytest.raises(ValueError, match="NaN"):
            deca_crop_transform(torch.full((1, 68, 2), float("nan")))

    def test_rejects_degenerate_box(self):
        with pytest.raises(ValueError, match="smaller than one pixel"):
            box_crop_transform(torch.tensor([[5.0, 5.0, 5.0, 5.0]]))


class TestDecaCrop:
    @pytest.mark.parametrize("name", list(GOLDEN_CASES))
    def test_matches_official_testdata(self, name, golden):
        image, tform = golden_inputs(name)
        crop = deca_crop(image, tform)[0].float().numpy()  # TestData returns float32
        np.testing.assert_array_equal(crop[:, golden["crop_rows_index"]], golden[f"crop_{name}_rows"])  # bit-identical
        np.testing.assert_allclose(crop.astype(np.float64).sum(axis=(1, 2)), golden[f"crop_{name}_channel_sums"], rtol=1e-14, atol=0)

    def test_float32_image_within_one_ulp_of_official(self, golden):
        image, tform = golden_inputs("inside")  # the float64 tform keeps the sampling positions exact
        crop = deca_crop(image.float(), tform)
        assert crop.dtype == torch.float32
        np.testing.assert_allclose(crop[0][:, golden["crop_rows_index"]].numpy(), golden["crop_inside_rows"], rtol=0, atol=1.2e-7)

    def test_float32_tform_close_to_official(self, golden):
        image, tform = golden_inputs("inside")  # DECA's own float32 tform moves samples by ~1e-5 pixel
        crop = deca_crop(image.float(), tform.float())
        np.testing.assert_allclose(crop[0][:, golden["crop_rows_index"]].numpy(), golden["crop_inside_rows"], rtol=0, atol=2e-5)

    def test_integer_shift_selects_pixels(self):
        image = torch.rand(1, 3, 240, 250, dtype=torch.float64)
        crop = deca_crop(image, translation(-7.0, -11.0))  # crop (x, y) shows image (x + 7, y + 11)
        torch.testing.assert_close(crop, image[:, :, 11 : 11 + 224, 7 : 7 + 224], rtol=0, atol=1e-12)

    def test_half_pixel_shift_blends_neighbours(self):
        image = torch.rand(2, 3, 230, 230, dtype=torch.float64)
        crop = deca_crop(image, translation(-0.5, 0.0))
        expected = (image[..., :224, :224] + image[..., :224, 1:225]) / 2
        torch.testing.assert_close(crop, expected, rtol=0, atol=1e-12)

    def test_outside_is_black_and_clip_is_skimages(self):
        image = 0.2 + 0.8 * torch.rand(1, 3, 224, 224, dtype=torch.float64)  # minimum 0.2 > fill value 0
        # half a pixel to the right: column 0 blends the image with the zero outside it, but no crop
        # pixel lies wholly outside, so skimage clips that column back up to the input minimum
        crop = deca_crop(image, translation(0.5, 0.0))
        low = image.amin()
        torch.testing.assert_close(crop[..., 0], torch.clamp(image[..., 0] / 2, min=low.item()), rtol=0, atol=1e-12)
        # two pixels to the right: columns 0 and 1 are wholly outside, so 0 is kept
        crop = deca_crop(image, translation(2.0, 0.0))
        assert torch.equal(crop[..., :2], torch.zeros_like(crop[..., :2]))
        torch.testing.assert_close(crop[..., 3:], image[..., 1:222], rtol=0, atol=1e-12)

    @pytest.mark.parametrize(("shift", "low"), [(0.5, 50), (2.0, 50), (0.3, 0), (-40.25, 0)])
    def test_matches_skimage_warp(self, shift, low):
        transform = pytest.importorskip("skimage.transform")
        frame = frame_image(3, 200, 300, low=low) / 255.0
        params = np.array([[0.93, 0.21, shift], [-0.21, 0.93, 12.6], [0.0, 0.0, 1.0]])
        expected = transform.warp(frame, transform.SimilarityTransform(matrix=params).inverse, output_shape=(224, 224))
        out = deca_crop(torch.from_numpy(frame).permute(2, 0, 1)[None], torch.from_numpy(params)[None])
        np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-12)

    def test_tform_of_one_broadcasts(self):
        image = torch.rand(3, 3, 230, 230, dtype=torch.float64)
        crop = deca_crop(image, translation(-1.0, -2.0))
        assert crop.shape == (3, 3, 224, 224)
        torch.testing.assert_close(crop[2], image[2, :, 2:226, 1:225], rtol=0, atol=1e-12)

    def test_never_mutates_input(self):
        image = torch.rand(1, 3, 64, 64)
        before = image.clone()
        deca_crop(image, translation(3.5, 3.5, 2.0))
        assert torch.equal(image, before)

    def test_rejects_channels_last(self):
        with pytest.raises(ValueError, match="channels-last"):
            deca_crop(torch.rand(1, 256, 256, 3), translation(0, 0))

    def test_rejects_uint8(self):
        with pytest.raises(TypeError, match="floating point"):
            deca_crop(torch.zeros(1, 3, 256, 256, dtype=torch.uint8), translation(0, 0))

    def test_rejects_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"\(2, 3, 3\)"):
            deca_crop(torch.rand(2, 3, 64, 64), translation(0, 0).expand(3, 3, 3))
