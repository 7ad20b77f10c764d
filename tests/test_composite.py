"""Paste-back: warp vs OpenCV, the soft face mask vs OpenCV's polygon tests, colour transfer,
and round trips (crop a frame with cv2.warpAffine, paste the crop back, get the frame)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pasl.composite import RGB_TO_YCBCR, match_colors, paste_back, warp_to_frame
from pasl.geometry import ALIGNED_SIZE as CROP_SIZE
from pasl.masks import BORDER_FADE, FEATHER_SIGMAS, face_mask
from shared_assets import skip_or_fail

FACES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "photos"

# ----------------------------------------------------------------------------- helpers


def face_template(center=(128.0, 128.0), scale: float = 1.0, roll: float = 0.0) -> torch.Tensor:
    """A frontal iBUG-68 layout, ``(68, 2)`` float64 crop pixels; 1.0 = jaw 150 px wide.

    Points in iBUG order: jaw 0-16 (image left -> chin 8 -> right), brows 17-26, nose
    27-35, eyes 36-47, mouth 48-67. ``roll`` in radians, clockwise on screen (y down).
    """
    pts = [(75 * math.cos(math.pi * (1 - k / 16)), 10 + 80 * math.sin(math.pi * (1 - k / 16))) for k in range(17)]
    pts += [(-60 + 11 * k, -38 - 8 * math.sin(math.pi * k / 4)) for k in range(5)]
    pts += [(16 + 11 * k, -38 - 8 * math.sin(math.pi * k / 4)) for k in range(5)]
    pts += [(0.0, -24 + 10 * k) for k in range(4)]
    pts += [(-14 + 7 * k, 24 - 3 * math.sin(math.pi * k / 4)) for k in range(5)]
    for cx in (-32, 32):
        pts += [(cx + 14 * math.cos(t), -16 + 6 * math.sin(t)) for t in np.radians([180, 240, 300, 0, 60, 120])]
    pts += [(26 * math.cos(t), 52 + 10 * math.sin(t)) for t in np.radians(np.arange(180, -180, -30))]
    pts += [(16 * math.cos(t), 52 + 4 * math.sin(t)) for t in np.radians(np.arange(180, -180, -45))]
    p = torch.tensor(pts, dtype=torch.float64)
    c, s = math.cos(roll), math.sin(roll)
    p = p @ torch.tensor([[c, s], [-s, c]], dtype=torch.float64) * scale
    return p + torch.tensor(center, dtype=torch.float64)


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    """3x3 float64 ``[[s cos, -s sin, tx], [s sin, s cos, ty], [0, 0, 1]]`` (angle in radians)."""
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def crop_from_frame_at(center_xy, scale: float, angle: float, size: int = CROP_SIZE) -> np.ndarray:
    """The similarity putting frame point ``center_xy`` at the crop centre, zoomed by ``scale``."""
    rot = similarity(scale, angle, 0.0, 0.0)
    moved = rot[:2, :2] @ np.asarray(center_xy, np.float64)
    rot[:2, 2] = (size - 1) / 2 - moved
    return rot


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` float32 in [0.1, 0.9]: sums of random low-frequency waves (no aliasing)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.zeros((height, width, 3))
    for ch in range(3):
        for _ in range(4):
            fx, fy, phase = rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(0, 2 * math.pi)
            out[..., ch] += np.cos(fx * xx + fy * yy + phase)
    return (0.5 + 0.1 * out).astype(np.float32)


def to_bchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def to_hwc(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).numpy()


def cv2_crop(frame: np.ndarray, crop_from_frame: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    return cv2.warpAffine(frame, crop_from_frame[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def bilinear_reference(image: np.ndarray, src_from_dst: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
    """Textbook float64 bilinear sampling of ``(h, w)`` ``image`` (zeros outside) at
    ``src_from_dst @ [x, y, 1]`` for the destination pixels in ``window``."""
    ys, xs = np.mgrid[window].astype(np.float64)
    sx = src_from_dst[0, 0] * xs + src_from_dst[0, 1] * ys + src_from_dst[0, 2]
    sy = src_from_dst[1, 0] * xs + src_from_dst[1, 1] * ys + src_from_dst[1, 2]
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    padded = np.pad(image.astype(np.float64), 1)  # zero ring: taps at -1 and w read 0

    def tap(i, j):
        inside = (i >= -1) & (i <= image.shape[1]) & (j >= -1) & (j <= image.shape[0])
        return np.where(inside, padded[np.clip(j + 1, 0, image.shape[0] + 1), np.clip(i + 1, 0, image.shape[1] + 1)], 0.0)

    top = (1 - fx) * tap(x0, y0) + fx * tap(x0 + 1, y0)
    bottom = (1 - fx) * tap(x0, y0 + 1) + fx * tap(x0 + 1, y0 + 1)
    return (1 - fy) * top + fy * bottom


def load_photo(name: str) -> np.ndarray:
    path = FACES / name
    if not path.exists():
        skip_or_fail(f"{path} not available (shared test assets)")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def round_trip(frame: np.ndarray, crop_from_frame: np.ndarray, landmarks: torch.Tensor, **kwargs):
    """Crop with OpenCV, paste the untouched crop back; returns (composite, mask) as numpy."""
    crop = cv2_crop(frame, crop_from_frame)
    out, mask = paste_back(
        to_bchw(frame), to_bchw(crop), torch.from_numpy(np.linalg.inv(crop_from_frame))[None].float(), landmarks[None].float(), **kwargs
    )
    return to_hwc(out), mask[0, 0].numpy()


# ----------------------------------------------------------------------------- warp_to_frame


class TestWarpToFrame:
    @pytest.mark.parametrize(
        "scale, angle, tx, ty, height, width",
        [
            (1.3, 0.3, 200.0, 50.0, 480, 640),  # landscape, upscaled, rotated
            (0.6, -0.5, 10.0, -20.0, 300, 200),  # portrait, downscaled, partly outside
            (2.5, 0.1, -100.0, 100.0, 1080, 1920),
            (1.0, 0.0, 0.0, 0.0, 256, 256),  # identity
            (0.37, 2.0, 60.5, 70.25, 90, 70),  # tiny frame, upside-down-ish
        ],
    )
    @pytest.mark.parametrize("kind", ["smooth", "noise"])
    def test_matches_cv2_warp_affine(self, scale, angle, tx, ty, height, width, kind):
        rng = np.random.default_rng(1)
        crop = smooth_image(CROP_SIZE, CROP_SIZE) if kind == "smooth" else rng.random((CROP_SIZE, CROP_SIZE, 3), dtype=np.float32)
        frame_from_crop = similarity(scale, angle, tx, ty)
        expected = cv2.warpAffine(
            crop, frame_from_crop[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        got = warp_to_frame(to_bchw(crop), torch.from_numpy(frame_from_crop)[None].float(), (height, width))
        assert got.shape == (1, 3, height, width)
        np.testing.assert_allclose(to_hwc(got), expected, atol=7e-5, rtol=0)  # 6.2e-5 measured here

    def test_far_corner_of_a_4k_frame(self):
        """The grid is built from the crop's own frame box: no float32 loss at x ~ 3800."""
        crop = smooth_image(CROP_SIZE, CROP_SIZE, seed=2)[..., 0]
        frame_from_crop = similarity(0.9, 0.2, 3650.3, 1950.7)
        got = warp_to_frame(torch.from_numpy(crop)[None, None], torch.from_numpy(frame_from_crop)[None].float(), (2160, 3840))[0, 0]
        window = (slice(1900, 2160), slice(3550, 3840))
        expected = bilinear_reference(crop, np.linalg.inv(frame_from_crop), window)
        np.testing.assert_allclose(got[window].numpy(), expected, atol=1e-4, rtol=0)  # float32 grid: ~1e-4 px
        got[window] = 0
        assert torch.count_nonzero(got) == 0

    def test_integer_shift_moves_pixels_exactly(self):
        crop = torch.rand(1, 2, 8, 8)
        shift = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]]])
        out = warp_to_frame(crop, shift, (12, 14))
        assert torch.equal(out[:, :, 2:10, 3:11], crop)
        out[:, :, 2:10, 3:11] = 0
        assert torch.count_nonzero(out) == 0

    def test_batch_items_are_independent(self):
        crops = torch.rand(3, 3, 32, 32)
        affines = torch.stack([torch.from_numpy(similarity(1.5, 0.2 * n, 10 + 40 * n, 5 + 7 * n)).float() for n in range(3)])
        together = warp_to_frame(crops, affines, (90, 150))
        for n in range(3):
            alone = warp_to_frame(crops[n : n + 1], affines[n : n + 1], (90, 150))
            torch.testing.assert_close(together[n : n + 1], alone, atol=2e-5, rtol=0)  # grids from different box origins

    def test_two_by_three_affine_is_accepted(self):
        crop, affine = torch.rand(1, 3, 16, 16), torch.from_numpy(similarity(2.0, 0.4, 9.0, 3.0))[None].float()
        torch.testing.assert_close(warp_to_frame(crop, affine[:, :2], (40, 40)), warp_to_frame(crop, affine, (40, 40)))

    def test_crop_off_frame_and_singular_affine_give_zeros(self):
        crop = torch.rand(2, 3, 16, 16)
        affines = torch.stack([torch.from_numpy(similarity(1.0, 0.0, 500.0, 0.0)), torch.zeros(3, 3, dtype=torch.float64)]).float()
        assert torch.count_nonzero(warp_to_frame(crop, affines, (20, 30))) == 0

    def test_dtype_and_no_mutation(self):
        crop = torch.rand(1, 3, 16, 16, dtype=torch.float64)
        affine = torch.from_numpy(similarity(1.2, 0.1, 2.0, 2.0))[None]
        crop_before, affine_before = crop.clone(), affine.clone()
        out = warp_to_frame(crop, affine, (24, 24))
        assert out.dtype == torch.float64
        assert torch.equal(crop, crop_before) and torch.equal(affine, affine_before)

    def test_gradcheck(self):
        crop = torch.rand(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
        affine = torch.from_numpy(similarity(1.3, 0.3, 1.0, 0.5))[None]
        assert torch.autograd.gradcheck(lambda c: warp_to_frame(c, affine, (8, 7)), (crop,))

    def test_rejects_channels_last(self):
        with pytest.raises(ValueError, match=r"channels-last.*\(1, 256, 256, 3\)|\(1, 256, 256, 3\).*channels-last"):
            warp_to_frame(torch.zeros(1, 256, 256, 3), torch.eye(3)[None], (10, 10))

    def test_rejects_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"batch 2.*\(1, 3, 3\)"):
            warp_to_frame(torch.zeros(2, 3, 8, 8), torch.eye(3)[None], (10, 10))

    def test_rejects_bad_affine_shape(self):
        with pytest.raises(ValueError, match=r"\(1, 3, 2\)"):
            warp_to_frame(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 2), (10, 10))

    def test_rejects_non_finite_affine(self):
        with pytest.raises(ValueError, match="non-finite"):
            warp_to_frame(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 3), float("nan")), (10, 10))

    def test_rejects_empty_frame_size(self):
        with pytest.raises(ValueError, match="frame_size"):
            warp_to_frame(torch.zeros(1, 3, 8, 8), torch.eye(3)[None], (0, 10))


# ----------------------------------------------------------------------------- face_mask


def hull_reference(points: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """cv2's signed distance of each pixel centre to the convex hull (positive inside)."""
    hull = cv2.convexHull(points.astype(np.float32))
    return np.array([[cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x in range(size)] for y in range(size)])


def forehead_polygon(landmarks: torch.Tensor, lift: float) -> np.ndarray:
    """The documented polygon: 68 points + brows moved by ``lift`` x (brow mean - chin)."""
    brows = landmarks[17:27]
    up = brows.mean(0) - landmarks[8]
    return torch.cat([landmarks, brows + lift * up]).numpy()


class TestFaceMask:
    def test_shape_range_and_dtype(self):
        lm = torch.stack([face_template(), face_template(scale=0.6, roll=0.5)]).float()
        m = face_mask(lm)
        assert m.shape == (2, 1, CROP_SIZE, CROP_SIZE) and m.dtype == torch.float32
        assert float(m.min()) >= 0 and float(m.max()) <= 1
        assert face_mask(lm.double()).dtype == torch.float64

    def test_core_is_one_outside_is_zero_border_is_zero(self):
        m = face_mask(face_template()[None].float())[0, 0]
        assert float(m[128, 128]) == pytest.approx(1.0, abs=1e-6)  # the nose
        assert float(m[5, 5]) == 0 and float(m[250, 128]) == 0
        ring = torch.cat([m[0], m[-1], m[:, 0], m[:, -1]])
        assert float(ring.abs().max()) == 0

    def test_hard_mask_is_the_convex_hull(self):
        lm = face_template(scale=0.9, roll=0.2)
        polygon = forehead_polygon(lm, 0.25)
        ref = hull_reference(polygon)
        got = face_mask(lm[None].float(), erode=0.0, blur=0.0)[0, 0].numpy()
        border = np.minimum.outer(np.minimum(np.arange(256), 255 - np.arange(256)), np.minimum(np.arange(256), 255 - np.arange(256)))
        clear = (np.abs(ref) > 1e-3) & (border > 6)  # away from ties and the border fade
        assert np.array_equal(got[clear] > 0.5, ref[clear] > 0)

    def test_erosion_is_exact(self):
        lm = face_template(scale=0.8)
        size = float((lm.amax(0) - lm.amin(0)).mean())
        ref = hull_reference(forehead_polygon(lm, 0.25))
        got = face_mask(lm[None].float(), erode=0.1, blur=0.0)[0, 0].numpy()
        clear = np.abs(ref - 0.1 * size) > 1e-2
        assert np.array_equal(got[clear] > 0.5, ref[clear] >= 0.1 * size)

    def test_forehead_lift_extends_above_the_brows(self):
        lm = face_template()[None].float()
        brow_top = float(lm[0, 17:27, 1].min())
        low, high = face_mask(lm, forehead=0.0, blur=0.0, erode=0.0), face_mask(lm, forehead=0.25, blur=0.0, erode=0.0)
        rows_low, rows_high = ((m[0, 0].amax(1) > 0.5).nonzero()[:, 0] for m in (low, high))
        assert int(rows_low.min()) == math.ceil(brow_top)
        lift = 0.25 * float(lm[0, 17:27, 1].mean() - lm[0, 8, 1])  # negative: up
        assert int(rows_high.min()) == math.ceil(brow_top + lift)

    def test_feather_is_smooth_and_its_width_scales_with_the_face(self):
        widths = []
        for scale in (1.0, 0.5):
            lm = face_template(scale=scale)[None].float()
            m = face_mask(lm, erode=0.05, blur=0.2)[0, 0]
            size = float((lm[0].amax(0) - lm[0].amin(0)).mean())
            sigma = 0.2 * size / FEATHER_SIGMAS
            steepest = 1 / (sigma * math.sqrt(2 * math.pi))  # a blurred straight edge's peak slope
            grad = max(float(m.diff(dim=0).abs().max()), float(m.diff(dim=1).abs().max()))
            assert grad <= 1.05 * steepest
            column = m[int(lm[0, 8, 1]) - int(0.5 * size) :, 128]  # down through the chin
            widths.append(int(((column > 0.1) & (column < 0.9)).sum()))
            assert widths[-1] == pytest.approx(0.2 * size, abs=1.5)
        assert widths[1] / widths[0] == pytest.approx(0.5, abs=0.08)

    def test_rotating_the_landmarks_rotates_the_mask(self):
        lm = face_template(center=(120.0, 131.0), scale=0.8)
        turned = torch.stack([255 - lm[:, 1], lm[:, 0]], -1)  # 90 degrees about the crop centre
        m, m_turned = face_mask(lm[None]), face_mask(turned[None])
        torch.testing.assert_close(torch.rot90(m, -1, dims=(2, 3)), m_turned, atol=1e-9, rtol=0)

    def test_non_finite_and_degenerate_landmarks_give_zero_masks(self):
        good = face_template(scale=0.7)
        nan = torch.full((68, 2), float("nan"), dtype=torch.float64)
        point = torch.full((68, 2), 100.0, dtype=torch.float64)
        line = torch.stack([torch.linspace(20, 200, 68, dtype=torch.float64)] * 2, -1)
        m = face_mask(torch.stack([good, nan, point, line]))
        torch.testing.assert_close(m[0], face_mask(good[None])[0], atol=1e-12, rtol=0)
        assert float(m[1:].abs().max()) == 0

    def test_long_batch_equals_items(self):
        lms = torch.stack([face_template(scale=0.5 + 0.02 * n, roll=0.05 * n) for n in range(19)])
        together = face_mask(lms)
        for n in (0, 15, 16, 18):
            torch.testing.assert_close(together[n], face_mask(lms[n : n + 1])[0], atol=1e-12, rtol=0)

    def test_crop_kind_is_a_feathered_square(self):
        m = face_mask(None, kind="crop", erode=0.1, blur=0.1)
        assert m.shape == (1, 1, 256, 256)
        middle = m[0, 0, 128]
        assert float(middle[0]) == 0 and float(middle[128]) == 1
        # the 50% level sits at the eroded edge: 0.1 x 256 px in from the crop's pixel edge
        crossing = int((middle[:128] < 0.5).sum())
        assert crossing == pytest.approx(0.1 * 256 - 0.5, abs=1.0)
        torch.testing.assert_close(m, m.flip(-1)) and torch.testing.assert_close(m, m.transpose(-1, -2))

    def test_negative_erode_grows(self):
        lm = face_template(scale=0.6)[None]
        assert float(face_mask(lm, erode=-0.1).sum()) > float(face_mask(lm, erode=0.0).sum()) > float(face_mask(lm, erode=0.1).sum())

    def test_doesnt_mutate_landmarks(self):
        lm = face_template()[None].float()
        before = lm.clone()
        face_mask(lm)
        assert torch.equal(lm, before)

    def test_rejects_unknown_kind(self):
        with pytest.raises(ValueError, match="kind must be one of"):
            face_mask(face_template()[None], kind="ellipse")

    def test_rejects_missing_landmarks(self):
        with pytest.raises(ValueError, match="needs landmarks_crop"):
            face_mask(None)

    def test_rejects_bad_landmark_shape(self):
        with pytest.raises(ValueError, match=r"\(B, 68, 2\).*\(1, 5, 2\)"):
            face_mask(torch.zeros(1, 5, 2))

    def test_rejects_bad_blur(self):
        with pytest.raises(ValueError, match="blur"):
            face_mask(face_template()[None], blur=-0.1)

    def test_rejects_bad_erode(self):
        with pytest.raises(ValueError, match="erode"):
            face_mask(face_template()[None], erode=1.5)


# ----------------------------------------------------------------------------- match_colors


def _bt601_ycbcr() -> np.ndarray:
    """Full-range BT.601 (JPEG) from its definition: Y = .299 R + .587 G + .114 B, Cb = (B - Y) / 1.772, Cr = (R - Y) / 1.402."""
    y = np.array([0.299, 0.587, 0.114])
    return np.stack([y, (np.array([0.0, 0.0, 1.0]) - y) / 1.772, (np.array([1.0, 0.0, 0.0]) - y) / 1.402])


YCBCR = _bt601_ycbcr()


def test_colour_space_is_full_range_bt601():
    np.testing.assert_allclose(np.asarray(RGB_TO_YCBCR), YCBCR, rtol=0, atol=1e-9)


def masked_ycbcr_mean(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    ycc = torch.einsum("ij,bjhw->bihw", torch.tensor(YCBCR, dtype=image.dtype), image)
    return (ycc * mask).sum((2, 3)) / mask.sum((2, 3))


def masked_ycbcr_std(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    ycc = torch.einsum("ij,bjhw->bihw", torch.tensor(YCBCR, dtype=image.dtype), image)
    mean = (ycc * mask).sum((2, 3), keepdim=True) / mask.sum((2, 3), keepdim=True)
    return (((ycc - mean) ** 2 * mask).sum((2, 3)) / mask.sum((2, 3))).sqrt()


class TestMatchColors:
    @pytest.fixture
    def images(self):
        gen = torch.from_numpy(smooth_image(64, 64, seed=3)).permute(2, 0, 1)[None].double()
        other = torch.from_numpy(smooth_image(64, 64, seed=4)).permute(2, 0, 1)[None].double()
        target = (0.8 * other + torch.tensor([0.12, 0.05, 0.0]).view(1, 3, 1, 1)).clamp(0, 1)
        mask = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
        mask[..., 10:50, 12:52] = 1
        mask[..., 20:30, 20:30] = 0.5
        return gen, target, mask

    def test_full_strength_matches_masked_statistics(self, images):
        gen, target, mask = images
        out = match_colors(gen, target, mask)
        torch.testing.assert_close(masked_ycbcr_mean(out, mask), masked_ycbcr_mean(target, mask), atol=1e-6, rtol=0)
        torch.testing.assert_close(masked_ycbcr_std(out, mask), masked_ycbcr_std(target, mask), atol=1e-6, rtol=0)

    def test_strength_blends_linearly_and_zero_is_a_no_op(self, images):
        gen, target, mask = images
        zero = match_colors(gen, target, mask, strength=0.0)
        assert torch.equal(zero, gen) and zero is not gen
        half, full = match_colors(gen, target, mask, strength=0.5), match_colors(gen, target, mask)
        torch.testing.assert_close(half, 0.5 * (gen + full), atol=1e-12, rtol=0)
        before, after = masked_ycbcr_mean(gen, mask), masked_ycbcr_mean(half, mask)
        goal = masked_ycbcr_mean(target, mask)
        assert bool(((after - goal).abs() < (before - goal).abs()).all())

    def test_pixels_outside_the_mask_do_not_count(self, images):
        gen, target, mask = images
        other = target.clone()
        other[..., :5, :] = torch.rand(1, 3, 5, 64, dtype=torch.float64)
        torch.testing.assert_close(match_colors(gen, other, mask), match_colors(gen, target, mask))

    def test_flat_generated_face_stays_finite_and_contrast_is_limited(self, images):
        _, target, mask = images
        flat = torch.full((1, 3, 64, 64), 0.4, dtype=torch.float64)
        out = match_colors(flat, target, mask)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(masked_ycbcr_mean(out, mask), masked_ycbcr_mean(target, mask), atol=1e-6, rtol=0)
        gen, _, _ = images
        flat_target = torch.full_like(target, 0.5)
        assert (
            float(masked_ycbcr_std(match_colors(gen, flat_target, mask), mask).min())
            >= 0.5 * float(masked_ycbcr_std(gen, mask).min()) - 1e-9
        )

    def test_empty_mask_is_a_no_op(self, images):
        gen, target, _ = images
        torch.testing.assert_close(match_colors(gen, target, torch.zeros(1, 1, 64, 64, dtype=torch.float64)), gen)

    def test_per_image_statistics(self, images):
        gen, target, mask = images
        both = match_colors(torch.cat([gen, gen.flip(-1)]), torch.cat([target, target.flip(-2)]), mask.expand(2, -1, -1, -1))
        torch.testing.assert_close(both[:1], match_colors(gen, target, mask))

    def test_rejects_strength_out_of_range(self, images):
        with pytest.raises(ValueError, match="strength"):
            match_colors(*images, strength=1.5)

    def test_rejects_size_mismatch(self, images):
        gen, target, mask = images
        with pytest.raises(ValueError, match=r"\(1, 3, 32, 32\)"):
            match_colors(gen, target[..., :32, :32], mask)


# ----------------------------------------------------------------------------- paste_back


def affine_tensor(matrix: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(matrix)[None].float()


class TestPasteBack:
    @pytest.mark.parametrize(
        "height, width, center, scale, angle",
        [
            (480, 640, (300.0, 220.0), 1.0, 0.2),  # landscape, crop at native resolution, rolled
            (900, 400, (210.0, 500.0), 1.4, -0.3),  # portrait, small face zoomed into the crop
            (1440, 2560, (2300.0, 1200.0), 1.1, 0.05),  # big frame, face near a corner
            (120, 90, (45.0, 60.0), 2.5, 0.0),  # tiny frame: the crop covers all of it and more
        ],
    )
    def test_round_trip_reproduces_the_frame(self, height, width, center, scale, angle):
        frame = smooth_image(height, width, seed=5)
        crop_from_frame = crop_from_frame_at(center, scale, angle)
        out, mask = round_trip(frame, crop_from_frame, face_template(scale=1.2))
        core, outside = mask > 0.99, mask == 0
        assert core.sum() > 1000 and outside.sum() > 0
        err = np.abs(out - frame)
        assert err[core].mean() < 2 / 255 and err[core].max() < 8 / 255
        assert np.array_equal(out[outside], frame[outside])  # bit-identical outside the mask
        assert np.abs(out - frame)[mask < 1].max() <= err[core].max() + 1e-6  # no seam in the feather

    @pytest.mark.parametrize("name, center", [("skimage_astronaut.png", (220.0, 121.0)), ("facerec_obama.jpg", (483.0, 275.0))])
    @pytest.mark.parametrize("zoom", [0.5, 1.42])
    def test_round_trip_on_real_photo(self, name, center, zoom):
        """Bilinear twice blurs real detail (the same happens with two cv2.warpAffine), so
        the tight bound holds for crops that upsample the face, as PASL's 256 crop does
        for faces under ~180 px; ours equals the all-OpenCV round trip either way."""
        frame = load_photo(name)
        crop_from_frame = crop_from_frame_at(center, zoom, 0.2)
        out, mask = round_trip(frame, crop_from_frame, face_template(scale=1.1))
        crop = cv2_crop(frame, crop_from_frame)
        back = cv2.warpAffine(crop, np.linalg.inv(crop_from_frame)[:2], frame.shape[1::-1], flags=cv2.INTER_LINEAR, borderValue=0)
        np.testing.assert_allclose(out, mask[..., None] * back + (1 - mask[..., None]) * frame, atol=1e-4, rtol=0)
        core = mask > 0.99
        err = np.abs(out - frame)[core].mean()
        assert err < (2.1 / 255 if zoom > 1 else 5 / 255)
        assert np.array_equal(out[mask == 0], frame[mask == 0])

    def test_faceless_frames_pass_through_bit_identical(self):
        frames = torch.rand(3, 3, 100, 150)
        faces = torch.rand(3, 3, 256, 256)
        affines = torch.from_numpy(np.stack([np.linalg.inv(crop_from_frame_at((75.0, 50.0), 2.0, 0.1))] * 3)).float()
        affines[1] = float("nan")  # what an aligner may leave for a frame without a face
        landmarks = face_template()[None].repeat(3, 1, 1).float()
        landmarks[1] = float("nan")
        has_face = torch.tensor([True, False, False])
        out, mask = paste_back(frames, faces, affines, landmarks, has_face)
        assert torch.equal(out[1:], frames[1:]) and float(mask[1:].abs().max()) == 0
        assert float(mask[0].max()) == pytest.approx(1.0) and not torch.equal(out[0], frames[0])

    def test_unusable_face_frames_pass_through_with_a_warning(self, caplog):
        frames, faces = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 256, 256)
        affines = torch.from_numpy(np.linalg.inv(crop_from_frame_at((32.0, 32.0), 4.0, 0.0)))[None].repeat(2, 1, 1).float()
        landmarks = face_template()[None].repeat(2, 1, 1).float()
        landmarks[1, 5] = float("nan")
        with caplog.at_level(logging.WARNING, logger="pasl.composite"):
            out, mask = paste_back(frames, faces, affines, landmarks)
        assert torch.equal(out[1], frames[1]) and float(mask[1].max()) == 0
        assert "[1]" in caplog.text

    def test_mask_is_the_warped_crop_mask_and_vanishes_at_the_crop_edge(self):
        frame = torch.rand(1, 3, 300, 400)
        crop_from_frame = crop_from_frame_at((200.0, 150.0), 2.0, 0.4)  # the crop is smaller than the frame
        frame_from_crop = affine_tensor(np.linalg.inv(crop_from_frame))
        for kind in ("landmarks", "crop"):
            lm = face_template(scale=1.6)[None].float()  # the face hull reaches past the crop
            _, mask = paste_back(frame, torch.rand(1, 3, 256, 256), frame_from_crop, lm, mask_kind=kind, erode=0.0, blur=0.05)
            expected = warp_to_frame(
                face_mask(lm if kind == "landmarks" else None, kind=kind, erode=0.0, blur=0.05), frame_from_crop, (300, 400)
            )
            torch.testing.assert_close(mask, expected, atol=1e-6, rtol=0)
            corners = cv2.transform(
                np.array([[[-1, -1], [256, -1], [256, 256], [-1, 256]]], np.float64), np.linalg.inv(crop_from_frame)[:2]
            )
            outside = np.ones((300, 400), np.uint8)
            cv2.fillConvexPoly(outside, np.round(corners[0]).astype(np.int32), 0)
            assert float(mask[0, 0][torch.from_numpy(outside.astype(bool))].max()) == 0
            # no seam: per frame pixel the mask changes no faster than the steeper of the feather
            # (sigma = 0.05 x size / 2.563 crop px) and the border smoothstep (1.5 / ramp), halved crop->frame
            size = float((lm[0].amax(0) - lm[0].amin(0)).mean()) if kind == "landmarks" else 256.0
            steepest = max(1 / (0.05 * size / FEATHER_SIGMAS * math.sqrt(2 * math.pi)), 1.5 / (BORDER_FADE * 256)) * 2.0
            assert max(float(mask.diff(dim=-1).abs().max()), float(mask.diff(dim=-2).abs().max())) <= 1.05 * steepest

    def test_blend_formula(self):
        frames, faces = torch.rand(2, 3, 80, 120), torch.rand(2, 3, 256, 256)
        affines = torch.from_numpy(
            np.stack([np.linalg.inv(crop_from_frame_at((60.0 + 10 * n, 40.0), 3.0, 0.2 * n)) for n in range(2)])
        ).float()
        lm = torch.stack([face_template(), face_template(scale=0.8)]).float()
        out, mask = paste_back(frames, faces, affines, lm)
        expected = mask * warp_to_frame(faces, affines, (80, 120)) + (1 - mask) * frames
        torch.testing.assert_close(out, expected, atol=5e-5, rtol=0)  # grids from different box origins

    def test_user_frame_mask_restricts_and_broadcasts(self):
        frames, faces = torch.rand(2, 3, 80, 120), torch.rand(2, 3, 256, 256)
        affines = torch.from_numpy(np.linalg.inv(crop_from_frame_at((60.0, 40.0), 3.0, 0.0)))[None].repeat(2, 1, 1).float()
        lm = face_template()[None].repeat(2, 1, 1).float()
        user = torch.ones(1, 1, 80, 120)
        user[..., :, :60] = 0  # keep the original left half (e.g. a hand in front of the face)
        user[..., :, 60:70] = 0.5
        _, auto = paste_back(frames, faces, affines, lm)
        out, mask = paste_back(frames, faces, affines, lm, mask=user)
        torch.testing.assert_close(mask, auto * user, atol=1e-7, rtol=0)
        assert torch.equal(out[..., :60], frames[..., :60])
        same, _ = paste_back(frames, faces, affines, lm, mask=user.expand(2, -1, -1, -1))
        assert torch.equal(same, out)

    def test_user_crop_mask_is_warped_with_the_face(self):
        frames, faces = torch.rand(1, 3, 80, 120), torch.rand(1, 3, 256, 256)
        frame_from_crop = affine_tensor(np.linalg.inv(crop_from_frame_at((60.0, 40.0), 3.0, 0.3)))
        lm = face_template()[None].float()
        template = torch.zeros(1, 1, 256, 256)
        template[..., 128:, :] = 1  # lower half of the crop only
        _, mask = paste_back(frames, faces, frame_from_crop, lm, mask=template, mask_space="crop")
        expected = warp_to_frame(face_mask(lm) * template, frame_from_crop, (80, 120))
        torch.testing.assert_close(mask, expected, atol=1e-6, rtol=0)

    def test_color_match_moves_the_face_toward_the_frame(self):
        frame = smooth_image(300, 300, seed=7)
        crop_from_frame = crop_from_frame_at((150.0, 150.0), 1.0, 0.1)
        crop = cv2_crop(frame, crop_from_frame)
        tinted = np.clip(crop * np.array([1.0, 0.8, 0.7], np.float32) + 0.05, 0, 1)
        args = (to_bchw(frame), to_bchw(tinted), affine_tensor(np.linalg.inv(crop_from_frame)), face_template()[None].float())
        plain, mask = paste_back(*args)
        matched, mask_matched = paste_back(*args, color_match=1.0)
        assert torch.equal(mask, mask_matched)
        core = mask > 0.99
        err_plain = (plain - to_bchw(frame)).abs().expand(1, 3, 300, 300)[core.expand(1, 3, 300, 300)].mean()
        err_matched = (matched - to_bchw(frame)).abs().expand(1, 3, 300, 300)[core.expand(1, 3, 300, 300)].mean()
        assert float(err_matched) < 0.25 * float(err_plain)
        assert torch.equal(paste_back(*args, color_match=0.0)[0], plain)

    def test_chunks_match_single_frames(self):
        n = 18
        frames, faces = torch.rand(n, 3, 60, 70), torch.rand(n, 3, 64, 64)
        affines = torch.from_numpy(
            np.stack([np.linalg.inv(crop_from_frame_at((30.0 + k, 35.0), 1.5, 0.03 * k, size=64)) for k in range(n)])
        ).float()
        lm = torch.stack([face_template(center=(32.0, 32.0), scale=0.3 + 0.005 * k) for k in range(n)]).float()
        out, mask = paste_back(frames, faces, affines, lm, color_match=0.5)
        for k in (0, 15, 16, 17):
            single, single_mask = paste_back(frames[k : k + 1], faces[k : k + 1], affines[k : k + 1], lm[k : k + 1], color_match=0.5)
            torch.testing.assert_close(out[k : k + 1], single, atol=1e-6, rtol=0)
            torch.testing.assert_close(mask[k : k + 1], single_mask, atol=1e-6, rtol=0)

    def test_half_precision_frames_keep_their_dtype(self):
        frames = torch.rand(1, 3, 64, 64).half()
        affine = affine_tensor(np.linalg.inv(crop_from_frame_at((32.0, 32.0), 4.0, 0.0)))
        out, mask = paste_back(frames, torch.rand(1, 3, 256, 256), affine, mask_kind="crop")
        assert out.dtype == torch.float16 and mask.dtype == torch.float32
        assert torch.equal(out[mask.expand_as(out) == 0], frames[mask.expand_as(out) == 0])

    def test_never_mutates_inputs(self):
        affine = affine_tensor(np.linalg.inv(crop_from_frame_at((32.0, 32.0), 4.0, 0.0)))
        landmarks, has_face, user = face_template()[None].float(), torch.tensor([True]), torch.rand(1, 1, 64, 64)
        inputs = [torch.rand(1, 3, 64, 64), torch.rand(1, 3, 256, 256), affine, landmarks, has_face, user]
        before = [x.clone() for x in inputs]
        paste_back(*inputs, color_match=1.0)
        assert all(torch.equal(a, b) for a, b in zip(inputs, before))

    def test_gradients_reach_the_faces(self):
        frames = torch.rand(1, 3, 12, 12, dtype=torch.float64)
        faces = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
        affine = torch.from_numpy(similarity(1.2, 0.2, 2.0, 1.0))[None]
        assert torch.autograd.gradcheck(lambda f: paste_back(frames, f, affine, mask_kind="crop", blur=0.2, erode=0.0)[0], (faces,))

    def test_rejects_channels_last_frames(self):
        with pytest.raises(ValueError, match=r"frames.*\(1, 64, 64, 3\).*channels-last"):
            paste_back(torch.zeros(1, 64, 64, 3), torch.zeros(1, 3, 256, 256), torch.eye(3)[None], mask_kind="crop")

    def test_rejects_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"\(2, 3, 64, 64\).*\(1, 3, 256, 256\)"):
            paste_back(torch.zeros(2, 3, 64, 64), torch.zeros(1, 3, 256, 256), torch.eye(3)[None].repeat(2, 1, 1), mask_kind="crop")

    def test_rejects_affine_batch_mismatch(self):
        with pytest.raises(ValueError, match=r"frame_from_crop.*\(1, 3, 3\)"):
            paste_back(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 256, 256), torch.eye(3)[None], mask_kind="crop")

    def test_rejects_missing_landmarks(self):
        with pytest.raises(ValueError, match="needs landmarks_crop"):
            paste_back(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 256, 256), torch.eye(3)[None])

    def test_rejects_comfyui_mask_layout(self):
        with pytest.raises(ValueError, match=r"\(1, 64, 64\).*unsqueeze"):
            paste_back(
                torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 256, 256), torch.eye(3)[None], mask=torch.zeros(1, 64, 64), mask_kind="crop"
            )

    def test_rejects_crop_sized_mask_in_frame_space(self):
        with pytest.raises(ValueError, match=r'mask_space="frame".*\(1, 1, 256, 256\)'):
            paste_back(
                torch.zeros(1, 3, 64, 64),
                torch.zeros(1, 3, 256, 256),
                torch.eye(3)[None],
                mask=torch.zeros(1, 1, 256, 256),
                mask_kind="crop",
            )

    def test_rejects_bad_has_face(self):
        with pytest.raises(ValueError, match=r"has_face.*\(2,\)"):
            paste_back(
                torch.zeros(1, 3, 64, 64),
                torch.zeros(1, 3, 256, 256),
                torch.eye(3)[None],
                has_face=torch.ones(2, dtype=torch.bool),
                mask_kind="crop",
            )

    def test_rejects_color_match_out_of_range(self):
        with pytest.raises(ValueError, match="color_match"):
            paste_back(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 256, 256), torch.eye(3)[None], mask_kind="crop", color_match=2.0)
