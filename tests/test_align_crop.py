"""The official 5-point similarity crop: constants, estimator, transforms and the two warps."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from pasl.align.crop import (
    PASL_TEMPLATE_256,
    ARCFACE_TEMPLATE_96x112,
    alignment_transform,
    five_points,
    letterbox_transform,
    similarity_from_parameters,
    similarity_parameters,
)
from pasl.geometry import estimate_similarity, invert_affine, resize_transform, transform_points, warp_affine, warp_affine_cv2

BRIEF_TEMPLATE = [[92.561295, 103.3926], [163.0357, 103.0028], [128.02249, 143.4732], [99.0707, 184.731], [157.4319, 184.4082]]


def _similarity(scale, angle, tx, ty, dtype=torch.float64):
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]], dtype=dtype)


def _landmarks_from_template(frame_from_crop: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """68 points whose 5 alignment points are exactly the template mapped by ``frame_from_crop``."""
    g = torch.Generator().manual_seed(seed)
    crop_points = torch.rand(68, 2, generator=g, dtype=torch.float64) * 200 + 28
    template = torch.tensor(np.asarray(BRIEF_TEMPLATE, np.float32), dtype=torch.float64)
    crop_points[[36, 39]] = template[0] + torch.tensor([[-6.0, 1.0], [6.0, -1.0]], dtype=torch.float64)
    crop_points[[42, 45]] = template[1] + torch.tensor([[-5.0, 0.5], [5.0, -0.5]], dtype=torch.float64)
    crop_points[30], crop_points[48], crop_points[54] = template[2], template[3], template[4]
    return transform_points(frame_from_crop[None], crop_points[None])


class TestConstants:
    def test_template_equals_the_official_values(self):
        assert PASL_TEMPLATE_256.dtype == np.float32
        assert np.array_equal(PASL_TEMPLATE_256, np.asarray(BRIEF_TEMPLATE, dtype=np.float32))

    def test_arcface_template_is_the_official_literal(self):
        """The 96x112 ArcFace points as written in ``get_arcface`` (insightface's template)."""
        official = [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]]
        assert np.array_equal(np.asarray(ARCFACE_TEMPLATE_96x112, np.float64), np.asarray(official, np.float64))

    def test_template_is_read_only(self):
        with pytest.raises(ValueError):
            PASL_TEMPLATE_256[0, 0] = 0


class TestFivePoints:
    def test_indices(self):
        lm = torch.arange(136, dtype=torch.float32).reshape(1, 68, 2)
        pts = five_points(lm)
        assert pts[0, 0].tolist() == ((lm[0, 36] + lm[0, 39]) / 2).tolist()
        assert pts[0, 1].tolist() == ((lm[0, 42] + lm[0, 45]) / 2).tolist()
        assert pts[0, 2:].tolist() == lm[0, [30, 48, 54]].tolist()

    def test_shape_error(self):
        with pytest.raises(ValueError, match=r"\(B, 68, 2\).*\(68, 2\)"):
            five_points(torch.zeros(68, 2))


class TestEstimateSimilarity:
    def test_recovers_an_exact_similarity(self):
        truth = _similarity(1.7, 0.3, 12.0, -4.0)
        src = torch.rand(2, 5, 2, dtype=torch.float64) * 100
        dst = transform_points(truth.expand(2, 3, 3), src)
        assert torch.allclose(estimate_similarity(src, dst), truth.expand(2, 3, 3), atol=1e-10)

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_matches_skimage_umeyama(self, dtype):
        """skimage (what get_arcface calls) keeps float32 inputs in float32; we always solve in float64."""
        transform = pytest.importorskip("skimage.transform")
        g = np.random.default_rng(3)
        for _ in range(5):
            src = g.uniform(0, 500, size=(5, 2)).astype(dtype)
            dst = (PASL_TEMPLATE_256 + g.normal(0, 3, size=(5, 2))).astype(dtype)
            tform = transform.SimilarityTransform()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # estimate() is deprecated in skimage 0.26
                assert tform.estimate(src, dst)
            ours = estimate_similarity(torch.from_numpy(src)[None], torch.from_numpy(dst))[0].numpy()
            relative = np.abs(ours - tform.params) / np.maximum(np.abs(tform.params), 1e-3)
            assert relative.max() < (1e-9 if dtype == np.float64 else 1e-5)

    def test_is_least_squares(self):
        src = torch.rand(1, 5, 2, dtype=torch.float64) * 100
        dst = torch.rand(1, 5, 2, dtype=torch.float64) * 100
        best = estimate_similarity(src, dst)
        residual = lambda m: (transform_points(m, src) - dst).pow(2).sum()  # noqa: E731
        for delta in (_similarity(1.01, 0, 0, 0), _similarity(1, 0.01, 0, 0), _similarity(1, 0, 0.1, 0)):
            assert residual(best) < residual(delta[None] @ best)

    def test_float64_output_and_broadcast_template(self):
        out = estimate_similarity(torch.rand(3, 5, 2), torch.tensor(PASL_TEMPLATE_256))
        assert out.shape == (3, 3, 3) and out.dtype == torch.float64

    def test_coincident_points(self):
        with pytest.raises(ValueError, match="coincide"):
            estimate_similarity(torch.ones(1, 5, 2), torch.rand(1, 5, 2))

    def test_nan(self):
        with pytest.raises(ValueError, match="NaN"):
            estimate_similarity(torch.full((1, 5, 2), float("nan")), torch.rand(1, 5, 2))

    def test_shape(self):
        with pytest.raises(ValueError, match=r"\(B, N >= 2, 2\)"):
            estimate_similarity(torch.rand(5, 2), torch.rand(5, 2))


class TestAlignmentTransform:
    def test_equals_a_least_squares_similarity_onto_the_official_numbers(self):
        """Independent expectation: the least-squares ``[[a, -b, tx], [b, a, ty]]`` that maps the five points onto
        the template as printed in the official code, solved with ``numpy.linalg.lstsq``; and OpenCV's own fit."""
        cv2 = pytest.importorskip("cv2")
        lm = _landmarks_from_template(_similarity(1.8, 0.25, 140.0, 60.0), seed=4)
        lm = lm + torch.randn(lm.shape, generator=torch.Generator().manual_seed(5), dtype=lm.dtype) * 3  # not exact
        src = five_points(lm)[0].double().numpy()
        dst = np.asarray(BRIEF_TEMPLATE, np.float32).astype(np.float64)
        rows = np.zeros((10, 4))
        rows[0::2] = np.stack([src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)], axis=1)
        rows[1::2] = np.stack([src[:, 1], src[:, 0], np.zeros(5), np.ones(5)], axis=1)
        (a, b, tx, ty), *_ = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)
        expected = np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])
        ours = alignment_transform(lm)[0].numpy()
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
        opencv, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        assert inliers.all()
        np.testing.assert_allclose(ours[:2], opencv, rtol=0, atol=1e-5)  # its iterative refinement: 2.6e-7 here

    def test_maps_the_five_points_onto_the_template(self):
        frame_from_crop = _similarity(2.5, -0.4, 300.0, 120.0)
        lm = _landmarks_from_template(frame_from_crop)
        crop_from_frame = alignment_transform(lm)
        assert torch.allclose(crop_from_frame[0], invert_affine(frame_from_crop), atol=1e-6)
        points = transform_points(crop_from_frame, five_points(lm).double())
        assert torch.allclose(points[0], torch.tensor(np.asarray(BRIEF_TEMPLATE, np.float32), dtype=torch.float64), atol=1e-4)

    def test_batch_equals_single(self):
        poses = [(1, 0), (3, 1), (0.5, -2)]
        lm = torch.cat([_landmarks_from_template(_similarity(s, a, 50, 60), seed=i) for i, (s, a) in enumerate(poses)])
        lm = lm + torch.rand_like(lm)
        batched = alignment_transform(lm)
        for i in range(3):
            assert torch.allclose(batched[i], alignment_transform(lm[i : i + 1])[0], atol=1e-12)


class TestAffines:
    def test_invert_round_trip(self):
        m = _similarity(0.7, 2.0, -5.0, 9.0).expand(4, 3, 3)
        assert torch.allclose(invert_affine(m) @ m, torch.eye(3, dtype=torch.float64).expand(4, 3, 3), atol=1e-12)

    def test_invert_singular_is_not_finite(self):
        inverse = invert_affine(torch.stack([torch.zeros(3, 3), torch.eye(3)]))
        assert not torch.isfinite(inverse[0]).all()  # one bad matrix does not stop the batch
        assert torch.equal(inverse[1], torch.eye(3))

    def test_warp_of_a_singular_affine_is_black(self):
        singular = torch.stack([torch.zeros(3, 3), torch.eye(3)])
        singular[0, 2, 2] = 1.0
        out = warp_affine(torch.ones(2, 1, 4, 4), singular, 4)
        assert out[0].abs().max() == 0 and torch.equal(out[1], torch.ones(1, 4, 4))

    def test_transform_points_keeps_nan(self):
        out = transform_points(torch.eye(3)[None], torch.tensor([[[float("nan"), 1.0], [2.0, 3.0]]]))
        assert torch.isnan(out[0, 0]).all() and out[0, 1].tolist() == [2.0, 3.0]

    def test_parameters_round_trip(self):
        m = torch.stack([_similarity(0.4, 0.5, 10, 20), _similarity(2.0, -3.0, -7, 1)])
        params = similarity_parameters(m)
        assert torch.allclose(params[:, 0], torch.log(torch.tensor([0.4, 2.0], dtype=torch.float64)))
        assert torch.allclose(params[:, 1], torch.tensor([0.5, -3.0], dtype=torch.float64))
        assert torch.allclose(similarity_from_parameters(params), m, atol=1e-10)
        # (cx, cy) is the frame pixel shown at the crop centre
        centre = transform_points(m, params[:, None, 2:])
        assert torch.allclose(centre, torch.full((2, 1, 2), 127.5, dtype=torch.float64), atol=1e-9)

    def test_letterbox_keeps_aspect_and_centres(self):
        m = letterbox_transform(100, 200)
        corners = transform_points(m[None], torch.tensor([[[-0.5, -0.5], [199.5, 99.5]]], dtype=torch.float64))
        assert torch.allclose(corners, torch.tensor([[[-0.5, 63.5], [255.5, 191.5]]], dtype=torch.float64))

    def test_bad_sizes(self):
        with pytest.raises(ValueError, match="positive"):
            resize_transform(0, 10, 256)


class TestWarpAffine:
    def test_known_shift(self):
        frame = torch.arange(16.0).reshape(1, 1, 4, 4)
        shift = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        out = warp_affine(frame, shift, 3)
        assert out[0, 0].tolist() == [[1.0, 2.0, 3.0], [5.0, 6.0, 7.0], [9.0, 10.0, 11.0]]

    def test_outside_is_black(self):
        out = warp_affine(torch.ones(1, 3, 8, 8), _similarity(1.0, 0.0, 100.0, 100.0)[None], 16)
        assert out.abs().max() == 0

    def test_matches_cv2_warp_affine(self):
        cv2 = pytest.importorskip("cv2")
        g = np.random.default_rng(0)
        base = g.integers(0, 256, size=(45, 60, 3), dtype=np.uint8)
        frame = cv2.resize(base, (300, 230), interpolation=cv2.INTER_CUBIC)  # smooth, like a photo
        m = _similarity(1.3, 0.35, -40.0, 10.0)
        ours = warp_affine(torch.from_numpy(frame).permute(2, 0, 1)[None].double() / 255, m[None], 256)[0]
        ours = ours.permute(1, 2, 0).numpy() * 255
        theirs = cv2.warpAffine(frame, m[:2].numpy(), (256, 256), flags=cv2.INTER_LINEAR, borderValue=0.0).astype(np.float64)
        diff = np.abs(ours - theirs)
        assert (diff <= 1.0).mean() > 0.99
        assert diff.mean() < 0.4 and diff.max() < 8

    def test_warp_affine_cv2_is_the_official_call(self):
        cv2 = pytest.importorskip("cv2")
        frame = np.random.default_rng(1).integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
        m = _similarity(2.0, 0.1, -3.0, 4.0)
        expected = cv2.warpAffine(frame, m[:2].numpy(), (256, 256), borderValue=0.0)
        assert np.array_equal(warp_affine_cv2(frame, m), expected)

    def test_resize_transform_is_cv2_resize(self):
        cv2 = pytest.importorskip("cv2")
        frame = np.random.default_rng(2).integers(0, 256, size=(100, 80, 3), dtype=np.uint8)  # upscaling
        ours = warp_affine(torch.from_numpy(frame).permute(2, 0, 1)[None].double(), resize_transform(100, 80, 256)[None], 256)[0]
        theirs = cv2.resize(frame, (256, 256), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        inner = np.s_[2:-2, 2:-2]  # resize clamps at the border where warpAffine fades to black
        assert np.abs(ours.permute(1, 2, 0).numpy()[inner] - theirs[inner]).max() <= 1.0

    def test_round_trip_through_the_inverse(self):
        frame = torch.rand(1, 3, 64, 64, dtype=torch.float64)
        frame = torch.nn.functional.avg_pool2d(frame, 5, 1, 2)  # smooth so resampling loses little
        m = _similarity(1.5, 0.2, 20.0, -10.0)[None]
        crop = warp_affine(frame, m, 160)
        back = warp_affine(crop, invert_affine(m), 64)
        assert (back - frame)[..., 12:-12, 12:-12].abs().max() < 0.05

    def test_dtype_device_and_batch(self):
        frames = torch.rand(3, 3, 20, 30, dtype=torch.float16).float()
        out = warp_affine(frames, _similarity(1, 0, 0, 0).expand(3, 3, 3), 8)
        assert out.shape == (3, 3, 8, 8) and out.dtype == torch.float32

    def test_gradcheck(self):
        frame = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
        m = _similarity(1.1, 0.2, -0.5, 0.3)[None]
        assert torch.autograd.gradcheck(lambda x: warp_affine(x, m, 5), (frame,))

    def test_rejects_channels_last(self):
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            warp_affine(torch.rand(5, 5, 3), torch.eye(3), 4)

    def test_rejects_wrong_batch(self):
        with pytest.raises(ValueError, match=r"\(2, 3, 3\)"):
            warp_affine(torch.rand(2, 3, 5, 5), torch.eye(3).expand(3, 3, 3), 4)
