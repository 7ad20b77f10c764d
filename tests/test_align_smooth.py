"""Temporal smoothing: One-Euro filter, streaming chunks, scale lock, gaps; jitter on a real clip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pasl.align.crop import PASL_TEMPLATE_256, alignment_transform, crop_scale
from pasl.align.smooth import LANDMARK_SETTINGS, OneEuroFilter, OneEuroSettings, TemporalSmoother
from pasl.geometry import invert_affine, transform_points
from shared_assets import require

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIDEO = SHARED / "assets" / "faces" / "video" / "pyfeat_single_face.mp4"


def _face_track(frames: int = 120, noise: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A face moving smoothly (slow drift, zoom, turn) with integer-rounded, noisy landmarks.

    Returns (noisy (T, 68, 2), clean (T, 68, 2)) in frame pixels.
    """
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(68, 2, generator=g, dtype=torch.float64) * 160 + 48
    template = torch.tensor(PASL_TEMPLATE_256, dtype=torch.float64)
    base[[36, 39, 42, 45]] = template[[0, 0, 1, 1]] + torch.tensor([[-6, 0], [6, 0], [-6, 0], [6, 0]], dtype=torch.float64)
    base[[30, 48, 54]] = template[2:]
    t = torch.arange(frames, dtype=torch.float64)
    scale = 1.5 + 0.2 * torch.sin(t / 40)
    angle = 0.1 * torch.sin(t / 30)
    shift = torch.stack([300 + 40 * torch.sin(t / 50), 200 + 20 * torch.cos(t / 45)], dim=1)
    c, s = scale * torch.cos(angle), scale * torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (T, 2, 2)
    clean = (base - 128) @ rot.transpose(1, 2) + shift[:, None]
    noisy = (clean + torch.randn(clean.shape, generator=g, dtype=torch.float64) * noise).round()
    return noisy.float(), clean.float()


def jitter(landmarks: torch.Tensor, crop_from_frame: torch.Tensor) -> float:
    """Mean |second difference| of the landmarks in crop pixels (frame-to-frame shake of the crop content)."""
    crop = transform_points(crop_from_frame, landmarks)
    return float((crop[2:] - 2 * crop[1:-1] + crop[:-2]).norm(dim=-1).nanmean())


class TestOneEuroFilter:
    def test_constant_signal_passes_unchanged(self):
        f = OneEuroFilter(LANDMARK_SETTINGS)
        x = torch.tensor([3.0, -2.0])
        for i in range(10):
            out = f(x, i / 25)
        assert torch.allclose(out, x.double())

    def test_first_sample_is_returned(self):
        assert OneEuroFilter(LANDMARK_SETTINGS)(torch.tensor([5.0]), 0.0).item() == 5.0

    def test_step_is_approached_monotonically(self):
        f = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=0.0))
        f(torch.zeros(1), 0.0)
        values = [f(torch.ones(1), (i + 1) / 25).item() for i in range(50)]
        assert all(0 < a < b < 1 for a, b in zip(values, values[1:]))
        # first-order low-pass: alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi fc)
        assert values[0] == pytest.approx(1 / (1 + 25 / (2 * math.pi)))

    def test_fast_motion_lags_less_with_beta(self):
        def lag(beta):
            f = OneEuroFilter(OneEuroSettings(min_cutoff=1.0, beta=beta))
            out = [f(torch.tensor([10.0 * i]), i / 25).item() for i in range(30)]
            return 10.0 * 29 - out[-1]
        assert lag(1.0) < lag(0.0) / 5

    def test_strength_must_be_positive(self):
        with pytest.raises(ValueError, match="strength must be > 0"):
            OneEuroFilter(LANDMARK_SETTINGS, strength=0)


class TestTemporalSmoother:
    def test_reduces_jitter_and_stays_close(self):
        noisy, clean = _face_track()
        valid = torch.ones(len(noisy), dtype=torch.bool)
        raw_jitter = jitter(noisy, alignment_transform(noisy))
        smooth_points, smooth_matrix = TemporalSmoother(strength=1.0)(noisy, valid)
        assert jitter(smooth_points, smooth_matrix) < raw_jitter / 2
        error = (smooth_points - clean).norm(dim=-1).mean()
        assert error < (noisy - clean).norm(dim=-1).mean()  # closer to the truth than the raw points

    def test_stronger_is_smoother(self):
        noisy, _ = _face_track()
        valid = torch.ones(len(noisy), dtype=torch.bool)
        values = [jitter(*TemporalSmoother(strength=s)(noisy, valid)) for s in (0.5, 1.0, 2.0)]
        assert values[0] > values[1] > values[2]

    def test_chunks_equal_one_pass(self):
        noisy, _ = _face_track(frames=50)
        valid = torch.ones(50, dtype=torch.bool)
        valid[20:23] = False
        whole = TemporalSmoother(strength=1.0)(noisy, valid)
        streaming = TemporalSmoother(strength=1.0)
        parts = [streaming(noisy[i : i + 7], valid[i : i + 7]) for i in range(0, 50, 7)]
        for k in range(2):
            joined = torch.cat([p[k] for p in parts])
            assert torch.allclose(joined.nan_to_num(-1), whole[k].nan_to_num(-1), atol=1e-5)

    def test_faceless_frames_are_nan(self):
        noisy, _ = _face_track(frames=6)
        valid = torch.tensor([True, False, True, True, False, True])
        points, matrix = TemporalSmoother()(noisy, valid)
        assert torch.isnan(points[~valid]).all() and torch.isnan(matrix[~valid][:, :2]).all()
        assert torch.isfinite(points[valid]).all() and torch.isfinite(matrix[valid]).all()

    def test_strength_zero_is_the_plain_alignment(self):
        noisy, _ = _face_track(frames=5)
        points, matrix = TemporalSmoother(strength=0.0)(noisy, torch.ones(5, dtype=torch.bool))
        assert torch.equal(points, noisy)
        assert torch.allclose(matrix, alignment_transform(noisy), atol=1e-9)

    def test_lock_scale_median(self):
        noisy, _ = _face_track()
        valid = torch.ones(len(noisy), dtype=torch.bool)
        _, matrix = TemporalSmoother(strength=0.0, lock_scale=True)(noisy, valid)
        scales = crop_scale(matrix)
        assert torch.allclose(scales, scales[0].expand_as(scales))
        assert scales[0].item() == pytest.approx(crop_scale(alignment_transform(noisy)).median().item(), rel=1e-6)

    def test_lock_scale_value_survives_chunks(self):
        noisy, _ = _face_track(frames=20)
        smoother = TemporalSmoother(strength=1.0, lock_scale=0.5)
        for i in range(0, 20, 5):
            _, matrix = smoother(noisy[i : i + 5], torch.ones(5, dtype=torch.bool))
            assert torch.allclose(crop_scale(matrix), torch.full((5,), 0.5, dtype=torch.float64))

    def test_rotation_across_pi_does_not_spin(self):
        _, clean = _face_track(frames=2)
        base = clean[0]
        centre = base.mean(dim=0)
        frames = []
        for angle in (math.pi - 0.05, math.pi + 0.05, math.pi + 0.1):  # upside-down face turning past 180 degrees
            c, s = math.cos(angle), math.sin(angle)
            frames.append((base - centre) @ torch.tensor([[c, s], [-s, c]]) + centre)
        points = torch.stack(frames)
        _, matrix = TemporalSmoother(strength=1.0)(points, torch.ones(3, dtype=torch.bool))
        plain = alignment_transform(points)
        # the smoothed crop turns by a small angle between frames, never by ~2 pi
        turn = torch.atan2(matrix[:, 1, 0], matrix[:, 0, 0])
        steps = torch.remainder(turn[1:] - turn[:-1] + math.pi, 2 * math.pi) - math.pi
        assert steps.abs().max() < 0.2
        assert torch.allclose(invert_affine(matrix)[0], invert_affine(plain)[0], atol=1e-6)

    def test_long_gap_restarts(self):
        noisy, _ = _face_track(frames=80)
        valid = torch.ones(80, dtype=torch.bool)
        valid[10:60] = False  # 2 s without a face at 25 fps
        points, _ = TemporalSmoother(strength=1.0, max_gap_s=1.0)(noisy, valid)
        assert torch.equal(points[60], noisy[60])  # first frame after a restart is taken as is

    @pytest.mark.parametrize("kwargs, message", [
        ({"strength": -1.0}, "strength must be >= 0"),
        ({"fps": 0.0}, "fps must be > 0"),
        ({"lock_scale": -2.0}, "lock_scale must be"),
    ])
    def test_bad_settings(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            TemporalSmoother(**kwargs)


@pytest.mark.slow
class TestRealVideo:
    def test_smoothing_reduces_jitter_on_a_real_clip(self):
        """dlib HOG on 30 frames of pyfeat_single_face.mp4: jitter at strength 1 vs 0."""
        pytest.importorskip("cv2")
        pytest.importorskip("dlib")
        require(VIDEO)
        from pasl.align import align_faces, make_detector, read_video

        raw = align_faces(read_video(VIDEO, count=30), detector=make_detector("dlib-hog"))
        assert bool(raw.has_face.all())
        points, matrix = TemporalSmoother(strength=1.0, fps=30.0)(raw.landmarks, raw.has_face)
        before = jitter(raw.landmarks, raw.crop_from_frame)
        after = jitter(points, matrix)
        assert after < before / 2, (before, after)
