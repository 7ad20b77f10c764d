"""align_faces end to end with a scripted detector (fast, no model): crops, transforms, selection, odd inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pasl.align import (
    PASL_TEMPLATE_256,
    Detector,
    Face,
    FaceAlignment,
    TemporalSmoother,
    align_faces,
    five_points,
    letterbox_transform,
)
from pasl.errors import NoFaceError, PASLError
from pasl.geometry import invert_affine, resize_transform, warp_affine_cv2


def _template_landmarks() -> torch.Tensor:
    """68 points in crop pixels whose 5 alignment points are exactly the template."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(68, 2, generator=g) * 150 + 50
    template = torch.tensor(PASL_TEMPLATE_256)
    points[[36, 39]] = template[0] + torch.tensor([[-7.0, 0.0], [7.0, 0.0]])
    points[[42, 45]] = template[1] + torch.tensor([[-7.0, 0.0], [7.0, 0.0]])
    points[30], points[48], points[54] = template[2], template[3], template[4]
    return points


def _face(cx: float, cy: float, scale: float, angle: float = 0.0, score: float = 1.0) -> Face:
    """A face whose crop centre sits at (cx, cy), ``scale`` frame pixels per crop pixel, rotated by ``angle``."""
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    linear = torch.tensor([[c, -s], [s, c]])
    points = (_template_landmarks() - 127.5) @ linear.T + torch.tensor([cx, cy])
    half = 128 * scale
    return Face(torch.tensor([cx - half, cy - half, cx + half, cy + half]), score, points)


class ScriptedDetector(Detector):
    """Returns, for the i-th call, the faces listed at position i (cycling); records the images it saw."""

    name = "scripted"

    def __init__(self, script: list[list[Face]]) -> None:
        self.script, self.calls = script, []

    def detect(self, image: np.ndarray) -> list[Face]:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls.append(image.shape)
        return self.script[(len(self.calls) - 1) % len(self.script)]


def _frames(count=2, height=240, width=320, seed=0) -> np.ndarray:
    g = np.random.default_rng(seed)
    small = g.integers(0, 256, size=(count, height // 8, width // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)


class TestAlignFaces:
    def test_result_fields(self):
        result = align_faces(_frames(), detector=ScriptedDetector([[_face(160, 120, 0.5, 0.2)]]))
        assert isinstance(result, FaceAlignment) and len(result) == 2
        assert result.crops.shape == (2, 3, 256, 256) and result.crops.dtype == torch.float32
        assert result.crop_from_frame.shape == result.frame_from_crop.shape == (2, 3, 3)
        assert result.landmarks.shape == result.landmarks_crop.shape == (2, 68, 2)
        assert result.scores.tolist() == [1.0, 1.0] and result.face_counts.tolist() == [1, 1]
        assert result.has_face.dtype == torch.bool and result.has_face.all()
        assert result.frame_sizes.tolist() == [[240, 320], [240, 320]]
        assert torch.allclose(result.frame_from_crop @ result.crop_from_frame, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))

    def test_five_points_land_on_the_template(self):
        face = _face(150, 130, 0.6, -0.3)
        result = align_faces(_frames(1), detector=ScriptedDetector([[face]]))
        assert torch.allclose(five_points(result.landmarks_crop)[0], torch.tensor(PASL_TEMPLATE_256), atol=1e-3)
        assert torch.allclose(result.landmarks[0], face.landmarks)
        c, s = 0.6 * math.cos(-0.3), 0.6 * math.sin(-0.3)
        assert torch.allclose(result.frame_from_crop[0, :2, :2], torch.tensor([[c, -s], [s, c]], dtype=torch.float64), atol=1e-6)

    def test_crop_is_the_official_cv2_warp(self):
        pytest.importorskip("cv2")
        frames = _frames(1)
        result = align_faces(frames, detector=ScriptedDetector([[_face(160, 120, 0.5, 0.2)]]), warp="cv2")
        expected = warp_affine_cv2(frames[0], result.crop_from_frame[0])
        assert np.array_equal((result.crops[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)

    def test_torch_and_cv2_warps_agree(self):
        pytest.importorskip("cv2")
        frames = _frames(1)
        detector = ScriptedDetector([[_face(160, 120, 0.45, 0.1)]])
        diff = (
            align_faces(frames, detector=detector, warp="torch").crops - align_faces(frames, detector=detector, warp="cv2").crops
        ).abs() * 255
        assert (diff <= 1.0).float().mean() > 0.99 and diff.max() < 12

    def test_faceless_frame_is_letterboxed(self):
        frames = _frames(2)
        result = align_faces(frames, detector=ScriptedDetector([[_face(160, 120, 0.5)], []]))
        assert result.has_face.tolist() == [True, False] and result.face_counts.tolist() == [1, 0]
        assert torch.isnan(result.landmarks[1]).all() and torch.isnan(result.landmarks_crop[1]).all()
        assert math.isnan(result.scores[1])
        assert torch.equal(result.crop_from_frame[1], letterbox_transform(240, 320))
        assert result.crops[1, :, :20].abs().max() == 0 and result.crops[1, :, 128].abs().max() > 0  # black bars, picture
        assert result.faceless_frames == [1]
        assert "no face in frame 1" in result.summary()

    def test_all_faceless_raises(self):
        with pytest.raises(NoFaceError, match="no face was found in any of the 3 frames") as info:
            align_faces(_frames(3), detector=ScriptedDetector([[]]))
        assert isinstance(info.value, PASLError)

    def test_faceless_chunk_of_a_stream(self):
        smoother = TemporalSmoother(strength=1.0)
        detector = ScriptedDetector([[]])
        result = align_faces(_frames(3), detector=detector, smoother=smoother, require_face=False)
        assert not result.has_face.any() and smoother.frame == 3
        assert torch.equal(result.crop_from_frame[0], letterbox_transform(240, 320))

    def test_resize_mode_never_raises_and_stretches(self):
        frames = _frames(2, 104, 48)
        result = align_faces(frames, detector=ScriptedDetector([[]]), mode="resize")
        assert not result.has_face.any()
        assert torch.equal(result.crop_from_frame[0], resize_transform(104, 48, 256))

    def test_resize_mode_is_cv2_resize(self):
        cv2 = pytest.importorskip("cv2")
        frame = _frames(1, 96, 64, seed=3)[0]
        for warp in ("torch", "cv2"):
            result = align_faces(frame, backend="none", mode="resize", warp=warp)
            expected = cv2.resize(frame, (256, 256), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            assert np.abs(result.crops[0].permute(1, 2, 0).numpy() * 255 - expected).max() <= 1.0

    def test_resize_mode_without_detector(self):
        result = align_faces(_frames(1, 256, 256), backend="none", mode="resize")
        assert torch.allclose(result.crops[0], torch.from_numpy(_frames(1, 256, 256)[0]).permute(2, 0, 1) / 255)
        assert result.face_counts.tolist() == [-1] and result.backend == ""

    def test_resize_mode_reports_landmarks_in_the_crop(self):
        face = _face(100, 60, 0.3)
        result = align_faces(_frames(1, 120, 200), detector=ScriptedDetector([[face]]), mode="resize")
        expected = (face.landmarks + 0.5) * torch.tensor([256 / 200, 256 / 120]) - 0.5
        assert torch.allclose(result.landmarks_crop[0], expected, atol=1e-4)

    def test_align_needs_a_detector(self):
        with pytest.raises(ValueError, match="mode='align' needs landmarks"):
            align_faces(_frames(1), backend="none")

    @pytest.mark.parametrize("select, expected_x", [("largest", 200.0), ("central", 160.0), ("score", 60.0), (0, 60.0), (-1, 200.0)])
    def test_selection(self, select, expected_x):
        faces = [_face(160, 120, 0.3, score=0.5), _face(60, 100, 0.2, score=0.9), _face(200, 150, 0.4, score=0.1)]
        result = align_faces(_frames(1), detector=ScriptedDetector([faces]), select=select)
        assert result.face_counts.tolist() == [3]
        centre = result.frame_from_crop[0] @ torch.tensor([127.5, 127.5, 1.0], dtype=torch.float64)
        assert centre[0].item() == pytest.approx(expected_x, abs=1e-3)

    def test_index_out_of_range_is_faceless(self):
        faces = [[_face(160, 120, 0.3)], [_face(100, 120, 0.3), _face(200, 120, 0.3)]]
        result = align_faces(_frames(2), detector=ScriptedDetector(faces), select=1)
        assert result.has_face.tolist() == [False, True] and result.face_counts.tolist() == [1, 2]

    def test_bad_select(self):
        with pytest.raises(ValueError, match="select must be one of"):
            align_faces(_frames(1), detector=ScriptedDetector([[]]), select="biggest")

    def test_bad_mode_and_warp(self):
        with pytest.raises(ValueError, match="mode must be one of"):
            align_faces(_frames(1), detector=ScriptedDetector([[]]), mode="crop")
        with pytest.raises(ValueError, match="warp must be one of"):
            align_faces(_frames(1), detector=ScriptedDetector([[]]), warp="pil")

    def test_smoothing_and_streaming(self):
        g = torch.Generator().manual_seed(1)
        script = [[_face(160 + 3 * i, 120, 0.5 + 0.003 * float(torch.randn(1, generator=g)))] for i in range(12)]
        one = align_faces(_frames(12), detector=ScriptedDetector(script), smoothing=1.0)
        smoother = TemporalSmoother(strength=1.0)
        detector = ScriptedDetector(script)
        parts = [align_faces(_frames(12)[i : i + 4], detector=detector, smoother=smoother) for i in range(0, 12, 4)]
        joined = FaceAlignment.cat(parts)
        assert torch.allclose(joined.crop_from_frame, one.crop_from_frame, atol=1e-6)
        assert torch.allclose(joined.landmarks, one.landmarks, atol=1e-5)
        plain = align_faces(_frames(12), detector=ScriptedDetector(script))
        assert not torch.allclose(plain.crop_from_frame, one.crop_from_frame, atol=1e-4)

    def test_lock_scale(self):
        script = [[_face(160, 120, s)] for s in (0.4, 0.5, 0.6)]
        result = align_faces(_frames(3), detector=ScriptedDetector(script), lock_scale=True)
        scales = result.frame_from_crop[:, 0, :2].norm(dim=-1)
        assert torch.allclose(scales, torch.full((3,), 0.5, dtype=torch.float64), atol=1e-6)

    def test_does_not_mutate_the_input(self):
        frames = torch.rand(2, 64, 80, 3)
        before = frames.clone()
        align_faces(frames, detector=ScriptedDetector([[_face(40, 30, 0.2)]]))
        assert torch.equal(frames, before)

    def test_indexing_and_to(self):
        result = align_faces(_frames(2), detector=ScriptedDetector([[_face(160, 120, 0.5)], []]))
        item = result[1]
        assert item.has_face is False and item.face_count == 0 and item.frame_size == (240, 320)
        assert torch.equal(item.crop, result.crops[1])
        with pytest.raises(IndexError):
            result[2]
        assert result.to("cpu").crops.device.type == "cpu"


class TestOddInputs:
    def test_one_pixel_frame(self):
        result = align_faces(np.full((1, 1, 3), 200, np.uint8), detector=ScriptedDetector([[]]), mode="resize")
        assert result.crops.shape == (1, 3, 256, 256)
        assert torch.allclose(result.crops[0, :, 100:150, 100:150], torch.tensor(200 / 255))

    def test_one_pixel_frame_without_face_in_align_mode(self):
        with pytest.raises(NoFaceError):
            align_faces(np.zeros((1, 1, 3), np.uint8), detector=ScriptedDetector([[]]))

    @pytest.mark.slow
    def test_8k_frame(self):
        frame = np.zeros((4320, 7680, 3), np.uint8)
        frame[2000:2400, 3600:4000] = 255
        detector = ScriptedDetector([[_face(3800, 2200, 2.0)]])
        result = align_faces(frame, detector=detector)
        assert detector.calls == [(4320, 7680, 3)]
        assert result.frame_sizes.tolist() == [[4320, 7680]]
        assert result.crops[0, :, 128, 128].min() == 1.0  # the white square sits in the middle of the crop

    def test_grayscale_rgba_and_float_inputs_give_the_same_crop(self):
        grey = _frames(1)[0][..., 0]
        detector = ScriptedDetector([[_face(160, 120, 0.5)]])
        from_grey = align_faces(grey, detector=detector).crops
        rgba = np.concatenate([np.repeat(grey[..., None], 3, -1), np.full(grey.shape + (1,), 7, np.uint8)], -1)
        assert torch.equal(align_faces(rgba, detector=detector).crops, from_grey)
        as_float = torch.from_numpy(grey).float() / 255
        assert torch.allclose(align_faces(as_float, detector=detector).crops, from_grey, atol=1e-6)

    def test_frames_of_different_sizes(self):
        frames = [_frames(1, 240, 320)[0], _frames(1, 104, 88)[0]]
        detector = ScriptedDetector([[_face(160, 120, 0.5)], [_face(45, 50, 0.2)]])
        result = align_faces(frames, detector=detector)
        assert result.frame_sizes.tolist() == [[240, 320], [104, 88]] and result.has_face.all()

    def test_empty_batch(self):
        with pytest.raises(ValueError, match="empty batch"):
            align_faces(np.zeros((0, 8, 8, 3), np.uint8), detector=ScriptedDetector([[]]))

    def test_unknown_backend(self):
        with pytest.raises(ValueError, match="backend must be one of"):
            align_faces(_frames(1), backend="retinaface")


class TestSummaryAndCat:
    def test_summary_ranges(self):
        script = [[_face(160, 120, 0.5)], [], [], [], [_face(160, 120, 0.5), _face(60, 60, 0.1)]]
        result = align_faces(_frames(5), detector=ScriptedDetector(script))
        assert result.summary() == "align (scripted): face in 2 of 5 frames; no face in frames 1-3; several faces in frame 4"

    def test_cat_checks_modes(self):
        detector = ScriptedDetector([[_face(160, 120, 0.5)]])
        a = align_faces(_frames(1), detector=detector)
        b = align_faces(_frames(1), detector=detector, mode="resize")
        with pytest.raises(ValueError, match="different modes"):
            FaceAlignment.cat([a, b])
        assert len(FaceAlignment.cat([a, a])) == 2

    def test_invert_is_consistent(self):
        result = align_faces(_frames(1), detector=ScriptedDetector([[_face(160, 120, 0.5, 1.0)]]))
        assert torch.allclose(invert_affine(result.crop_from_frame), result.frame_from_crop)


class TestBenchRows:
    def test_rows(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", "")
        monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")
        from pasl.bench import align_rows

        rows = align_rows(_frames(2, 64, 64), backends=("fan",), weights_dir=tmp_path)
        assert rows[0] == {"stage": "detect+landmarks", "backend": "fan", "skipped": rows[0]["skipped"]}
        assert "s3fd-619a316812.pth" in rows[0]["skipped"]
        crop_rows = {r["backend"]: r for r in rows if r["stage"] == "crop"}
        assert crop_rows["torch"]["ms_per_frame"] > 0 and crop_rows["torch"]["frames"] == 2
        assert set(crop_rows) == {"torch", "cv2"}


@pytest.mark.parametrize("module", ["crop", "detect", "images", "smooth", "types"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"pasl.align.{module}"))
    assert result.attempted > 0 and result.failed == 0
