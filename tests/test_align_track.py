"""Face tracking: when the detector runs (first frame, schedule, cuts, drift, lost faces), stable ids,
per-track smoothing, chunks, the align_faces wiring; and on a real clip, tracked vs per-frame landmarks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from pasl.align import FaceAlignment, FaceTracker, align_faces, letterbox_transform
from pasl.align.crop import PASL_TEMPLATE_256
from pasl.align.detect import Detector, box_iou
from pasl.align.smooth import TemporalSmoother, jitter
from pasl.align.track import CUT_THRESHOLD, WHOLE_FRAME_EVERY, is_cut, plausible_landmarks, thumbnail
from pasl.align.types import Face
from shared_assets import require

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIDEO = SHARED / "assets" / "faces" / "video" / "pyfeat_single_face.mp4"
HEIGHT, WIDTH = 240, 320


def _shape() -> torch.Tensor:
    """68 points in a 256 crop with the template's 5 alignment points (eyes above the mouth)."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(68, 2, generator=g) * 120 + 68
    template = torch.tensor(PASL_TEMPLATE_256)
    points[36:42] = template[0] + torch.linspace(-7, 7, 6)[:, None] * torch.tensor([1.0, 0.0])
    points[42:48] = template[1] + torch.linspace(-7, 7, 6)[:, None] * torch.tensor([1.0, 0.0])
    points[48:68] = (template[3] + template[4]) / 2 + torch.linspace(-12, 12, 20)[:, None] * torch.tensor([1.0, 0.0])
    points[30] = template[2]
    return points


SHAPE = _shape()


def landmarks_at(cx: float, cy: float, scale: float = 0.3) -> torch.Tensor:
    """A face centred at (cx, cy), ``scale`` frame pixels per crop pixel (0.3: ~40 px wide)."""
    return (SHAPE - 127.5) * scale + torch.tensor([cx, cy])


def landmark_box(points: torch.Tensor) -> torch.Tensor:
    return torch.cat([points.amin(-2), points.amax(-2)], dim=-1)


def frame(index: int, shot: int = 0) -> np.ndarray:
    """A frame that carries its index in pixel (0, 0); each ``shot`` has its own background (cuts between)."""
    image = np.full((HEIGHT, WIDTH, 3), 40 + 150 * (shot % 2), dtype=np.uint8)
    image[:, : WIDTH // 2] += np.uint8(20 * (shot // 2 % 3))
    image[0, 0, 0], image[0, 0, 1] = index % 256, index // 256
    return image


def index_of(image: np.ndarray) -> int:
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


class ScriptDetector(Detector):
    """Faces per frame index from ``script(index) -> list of landmarks``; a landmark stage like dlib's.

    ``landmarks_in_boxes`` behaves like a shape predictor: a box over a face (any overlap) snaps to that
    face; a box over nothing gives the mean shape fitted into the box (a plausible phantom).
    """

    name = "script"

    def __init__(self, script: Callable[[int], list[torch.Tensor]], noise: float = 0.0) -> None:
        self.script, self.noise = script, noise
        self.detected: list[int] = []
        self.followed: list[int] = []

    def _faces(self, index: int) -> list[torch.Tensor]:
        faces = self.script(index)
        if self.noise:
            g = torch.Generator().manual_seed(index)
            faces = [f + torch.randn(f.shape, generator=g) * self.noise for f in faces]
        return faces

    def detect(self, image: np.ndarray) -> list[Face]:
        index = index_of(image)
        self.detected.append(index)
        return [Face(landmark_box(p), 1.0, p) for p in self._faces(index)]

    def landmarks_in_boxes(self, image, boxes) -> torch.Tensor:
        index = index_of(image)
        self.followed.append(index)
        faces = self._faces(index)
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        out = []
        for box in boxes:
            overlap = box_iou(box[None], torch.stack([landmark_box(f) for f in faces]))[0] if faces else torch.zeros(0)
            if len(overlap) and float(overlap.max()) > 0:
                out.append(faces[int(overlap.argmax())])
            else:
                low, size = box[:2], box[2:] - box[:2]
                out.append(low + (SHAPE - SHAPE.amin(0)) / (SHAPE.amax(0) - SHAPE.amin(0)) * size)
        return torch.stack(out) if out else torch.zeros(0, 68, 2)


class DetectOnly(ScriptDetector):
    """The same faces without a landmark stage of its own (the base class's detect-and-match fallback)."""

    landmarks_in_boxes = Detector.landmarks_in_boxes


class WindowedScript(ScriptDetector):
    """The same faces, and a cheaper search near known boxes (like dlib's ``detect_near``): the faces
    whose box overlaps one of them."""

    def __init__(self, script: Callable[[int], list[torch.Tensor]], noise: float = 0.0) -> None:
        super().__init__(script, noise)
        self.near: list[int] = []

    def detect_near(self, image: np.ndarray, boxes: torch.Tensor) -> list[Face]:
        index = index_of(image)
        self.near.append(index)
        faces = [Face(landmark_box(p), 1.0, p) for p in self._faces(index)]
        return [f for f in faces if float(box_iou(f.box[None], boxes).max()) > 0]


def run(tracker: FaceTracker, frames: list[np.ndarray], chunk: int = 7):
    out = []
    for start in range(0, len(frames), chunk):
        out += tracker.track(frames[start : start + chunk])
    return out


def drifting(index: int) -> list[torch.Tensor]:
    return [landmarks_at(100 + index, 120 + 0.5 * index)]


class TestWhenTheDetectorRuns:
    def test_first_frame_schedule_and_cut(self):
        """30 frames, a cut at 13 where the face jumps: detector on 0, every 5 after the last detection, and 13."""
        script = lambda i: [landmarks_at(80 + i, 120)] if i < 13 else [landmarks_at(240 - i, 90)]  # noqa: E731
        detector = ScriptDetector(script)
        tracker = FaceTracker(detector, detect_every=5)
        faces = run(tracker, [frame(i, shot=0 if i < 13 else 1) for i in range(30)])
        assert detector.detected == [0, 5, 10, 13, 18, 23, 28]
        assert tracker.stats.detection_frames == detector.detected and tracker.stats.cuts == [13]
        assert sorted(detector.followed) == sorted(set(range(30)) - set(detector.detected))
        assert [len(f) for f in faces] == [1] * 30
        for i in (12, 13, 14, 29):  # landmarks follow the face through the cut
            assert torch.allclose(faces[i][0].landmarks, script(i)[0])
        assert [f[0].detected for f in faces] == [i in detector.detected for i in range(30)]

    def test_only_when_needed(self):
        detector = ScriptDetector(lambda i: [landmarks_at(80 + i, 120)] if i < 13 else [landmarks_at(240 - i, 90)])
        run(FaceTracker(detector, detect_every=0), [frame(i, shot=0 if i < 13 else 1) for i in range(40)])
        assert detector.detected == [0, 13]

    def test_a_cut_without_a_jump_restarts_nothing_but_detects(self):
        detector = ScriptDetector(drifting)
        tracker = FaceTracker(detector, detect_every=0)
        faces = run(tracker, [frame(i, shot=i // 10) for i in range(30)])
        assert detector.detected == [0, 10, 20] and tracker.stats.cuts == [10, 20]
        assert {f[0].track_id for f in faces} == {0}

    def test_jump_without_cut_redetects(self):
        """The face moves 25 px in one frame (its 40 px box overlaps the old one by less than half)."""
        script = lambda i: [landmarks_at(100 if i < 8 else 125, 120)]  # noqa: E731
        detector = ScriptDetector(script)
        faces = run(FaceTracker(detector, detect_every=0), [frame(i) for i in range(12)])
        assert detector.detected == [0, 8]
        assert torch.allclose(faces[8][0].landmarks, script(8)[0]) and {f[0].track_id for f in faces} == {0}

    def test_face_leaving_the_frame(self):
        """Moving right 6 px a frame: followed while more than half of it is inside; then its landmarks
        are implausible and the detector runs on every frame (it still sees a sliver), then finds nothing."""
        def script(i):
            points = landmarks_at(250 + 6 * i, 120)
            return [points] if float(points[:, 0].min()) < WIDTH - 2 else []

        detector = ScriptDetector(script)
        faces = run(FaceTracker(detector, detect_every=0), [frame(i) for i in range(25)])
        half_out = [i for i in range(25) if script(i) and not plausible_landmarks(script(i)[0], (HEIGHT, WIDTH))]
        gone = [i for i in range(25) if not script(i)]
        assert half_out and gone and max(half_out) < min(gone)
        assert [bool(f) for f in faces] == [i not in gone for i in range(25)]
        assert detector.detected == [0] + half_out + gone
        assert {f[0].track_id for f in faces if f} == {0}

    def test_faceless_stretch_resumes(self):
        """Face, 10 faceless frames (the landmark stage alone would see a phantom), face again."""
        script = lambda i: [] if 10 <= i < 20 else [landmarks_at(150, 120)]  # noqa: E731
        detector = ScriptDetector(script)
        tracker = FaceTracker(detector, detect_every=5)
        faces = run(tracker, [frame(i) for i in range(30)])
        assert [bool(f) for f in faces] == [not 10 <= i < 20 for i in range(30)]
        assert detector.detected == [0, 5] + list(range(10, 21)) + [25]
        assert {f[0].track_id for f in faces if f} == {0}  # resumed within max_lost_s
        detector = ScriptDetector(script)
        tracker = FaceTracker(detector, detect_every=5, max_lost_s=0.2)  # 5 frames at 25 fps
        faces = run(tracker, [frame(i) for i in range(30)])
        assert faces[9][0].track_id == 0 and faces[20][0].track_id == 1 and tracker.stats.tracks == 2

    def test_scheduled_detections_search_windows_and_every_fourth_the_frame(self):
        """detect_every=5 over 45 frames: the frame on 0, 20, 40 (WHOLE_FRAME_EVERY = 4), windows between."""
        detector = WindowedScript(drifting)
        tracker = FaceTracker(detector, detect_every=5)
        faces = run(tracker, [frame(i) for i in range(45)])
        assert WHOLE_FRAME_EVERY == 4
        assert detector.detected == [0, 20, 40] and detector.near == [5, 10, 15, 25, 30, 35]
        assert tracker.stats.window_frames == detector.near
        assert tracker.stats.detection_frames == list(range(0, 45, 5))
        assert [f[0].detected for f in faces] == [i % 5 == 0 for i in range(45)]
        assert {f[0].track_id for f in faces} == {0} and all(torch.allclose(faces[i][0].landmarks, drifting(i)[0]) for i in range(45))

    def test_a_face_entering_elsewhere_is_found_by_the_next_whole_frame_search(self):
        """A second face appears at frame 7 away from the first: the windows (10, 15) do not see it, the
        whole-frame search on 20 does; a cut finds it at once."""
        script = lambda i: [landmarks_at(80, 120)] + ([landmarks_at(240, 120)] if i >= 7 else [])  # noqa: E731
        detector = WindowedScript(script)
        faces = run(FaceTracker(detector, detect_every=5), [frame(i) for i in range(25)])
        assert detector.detected == [0, 20] and detector.near == [5, 10, 15]
        assert [len(f) for f in faces] == [1] * 20 + [2] * 5
        assert [f.track_id for f in faces[24]] == [0, 1]
        detector = WindowedScript(script)
        faces = run(FaceTracker(detector, detect_every=5), [frame(i, shot=int(i >= 7)) for i in range(25)])
        assert detector.detected == [0, 7] and [len(f) for f in faces] == [1] * 7 + [2] * 18

    def test_a_window_that_misses_its_face_searches_the_frame(self):
        """The face is gone on frame 10, a scheduled detection: the window finds nothing, the frame is
        searched on the same frame, and the face is reported missing there, not followed as a phantom."""
        script = lambda i: [] if 10 <= i < 13 else [landmarks_at(150, 120)]  # noqa: E731
        detector = WindowedScript(script)
        faces = run(FaceTracker(detector, detect_every=5), [frame(i) for i in range(20)])
        assert detector.near == [5, 10, 18] and detector.detected == [0, 10, 11, 12, 13]
        assert [bool(f) for f in faces] == [not 10 <= i < 13 for i in range(20)]

    def test_detector_without_landmark_stage_detects_every_frame(self):
        detector = DetectOnly(drifting)
        faces = run(FaceTracker(detector, detect_every=5), [frame(i) for i in range(12)])
        assert detector.detected == list(range(12)) and {f[0].track_id for f in faces} == {0}


class TestIdsAndSmoothing:
    @staticmethod
    def two_faces(i: int) -> list[torch.Tensor]:
        return [landmarks_at(220 - i, 100 + 0.3 * i), landmarks_at(70 + i, 140)]  # right face listed first

    def test_two_faces_keep_their_ids(self):
        detector = ScriptDetector(self.two_faces)
        faces = run(FaceTracker(detector, detect_every=4), [frame(i) for i in range(30)], chunk=4)
        ids_by_side = {(round(float(f.landmarks[:, 0].mean())) < WIDTH / 2, f.track_id) for frame_faces in faces for f in frame_faces}
        assert ids_by_side == {(False, 0), (True, 1)}
        assert all(len(f) == 2 for f in faces) and len(detector.detected) == 8

    def test_select_by_side_follows_the_track(self):
        tracker = FaceTracker(ScriptDetector(self.two_faces), detect_every=4)
        frames = np.stack([frame(i) for i in range(12)])
        left = align_faces(frames, tracker=tracker, select=0)
        assert left.track_ids.tolist() == [1] * 12 and left.detected.tolist() == [i % 4 == 0 for i in range(12)]
        assert "tracked (1 track), detector ran on 3 of 12 frames" in left.summary()

    def test_smoothing_runs_per_track(self):
        """Each face's smoothed landmarks are exactly one TemporalSmoother over that face alone, across chunks."""
        detector = ScriptDetector(self.two_faces, noise=1.5)
        tracker = FaceTracker(detector, detect_every=6, smoothing=1.0, fps=25.0)
        faces = run(tracker, [frame(i) for i in range(30)], chunk=7)
        for track_id in (0, 1):
            raw = torch.stack([next(f for f in fs if f.track_id == track_id).face.landmarks for fs in faces])
            smoothed = torch.stack([next(f for f in fs if f.track_id == track_id).landmarks for fs in faces])
            alone, matrices = TemporalSmoother(strength=1.0, fps=25.0)(raw, torch.ones(30, dtype=torch.bool))
            assert torch.allclose(smoothed, alone, atol=1e-4)
            tracked_matrices = torch.stack([next(f for f in fs if f.track_id == track_id).crop_from_frame for fs in faces])
            assert torch.allclose(tracked_matrices, matrices, atol=1e-6)
            assert jitter(smoothed, matrices) < 0.75 * jitter(raw, matrices)

    def test_a_cut_restarts_the_track_smoother(self):
        script = lambda i: [landmarks_at(100 + 0.5 * i, 120)] if i < 10 else [landmarks_at(104 + 0.5 * i, 124)]  # noqa: E731
        faces = run(FaceTracker(ScriptDetector(script), detect_every=0, smoothing=2.0), [frame(i, shot=i // 10) for i in range(14)])
        assert faces[10][0].track_id == 0  # same face (boxes overlap) ...
        assert torch.allclose(faces[10][0].landmarks, script(10)[0], atol=1e-4)  # ... but no lag from before the cut
        assert not torch.allclose(faces[9][0].landmarks, script(9)[0], atol=1e-2)

    def test_chunking_does_not_change_anything(self):
        frames = [frame(i, shot=i // 17) for i in range(40)]
        results = []
        for chunk in (40, 6, 1):
            detector = ScriptDetector(self.two_faces, noise=1.0)
            faces = run(FaceTracker(detector, detect_every=9, smoothing=1.0), frames, chunk=chunk)
            results.append((detector.detected, torch.stack([torch.stack([f.landmarks for f in fs]) for fs in faces])))
        for detected, points in results[1:]:
            assert detected == results[0][0] and torch.allclose(points, results[0][1], atol=1e-5)


class TestAlignFacesWithTracker:
    def test_faceless_frames_are_letterboxed_and_untracked(self):
        script = lambda i: [] if 3 <= i < 6 else [landmarks_at(150, 120)]  # noqa: E731
        tracker = FaceTracker(ScriptDetector(script), detect_every=0)  # the face leaves and comes back at cuts
        shots = lambda i: frame(i, shot=int(3 <= i < 6))  # noqa: E731
        result = FaceAlignment.cat([align_faces(np.stack([shots(i) for i in range(s, s + 4)]), tracker=tracker, require_face=False)
                                    for s in (0, 4)])
        assert result.has_face.tolist() == [not 3 <= i < 6 for i in range(8)]
        assert result.track_ids.tolist() == [0, 0, 0, -1, -1, -1, 0, 0]
        assert result.detected.tolist() == [True, False, False, True, True, True, True, False]
        assert torch.allclose(result.crop_from_frame[4], letterbox_transform(HEIGHT, WIDTH).to(result.crop_from_frame.dtype))
        assert result[0].track_id == 0 and result[4].track_id == -1

    def test_tracked_crops_match_detected_ones_for_exact_landmarks(self):
        frames = np.stack([frame(i) for i in range(6)])
        tracked = align_faces(frames, tracker=FaceTracker(ScriptDetector(drifting), detect_every=0))
        detected = align_faces(frames, detector=ScriptDetector(drifting))
        assert torch.equal(tracked.crops, detected.crops) and torch.allclose(tracked.crop_from_frame, detected.crop_from_frame)
        assert detected.track_ids is None and detected.detected is None

    def test_tracker_excludes_the_other_temporal_options(self):
        tracker = FaceTracker(ScriptDetector(drifting))
        for extra in (dict(smoothing=1.0), dict(smoother=TemporalSmoother()), dict(detector=ScriptDetector(drifting))):
            with pytest.raises(ValueError, match="with a tracker"):
                align_faces(frame(0), tracker=tracker, **extra)

    def test_needs_a_detector(self):
        with pytest.raises(TypeError, match="needs a pasl.align Detector"):
            FaceTracker(object())

    @pytest.mark.parametrize("kwargs", [dict(detect_every=-1), dict(detect_every=2.5), dict(detect_every=True), dict(smoothing=-1.0)])
    def test_bad_settings(self, kwargs):
        with pytest.raises(ValueError):
            FaceTracker(ScriptDetector(drifting), **kwargs)


class TestCutsAndPlausibility:
    def test_thumbnail_and_cut(self):
        a, b = frame(0, shot=0), frame(1, shot=1)
        assert thumbnail(a).shape == (18, 32)
        assert not is_cut(thumbnail(a), thumbnail(frame(5, shot=0)))
        assert is_cut(thumbnail(a), thumbnail(b))
        noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
        assert not is_cut(thumbnail(a), thumbnail(noisy))  # pixel noise averages out in the thumbnail
        assert is_cut(thumbnail(a), thumbnail(a) * 0 + (thumbnail(a) + CUT_THRESHOLD + 1))

    def test_plausible_landmarks(self):
        face = landmarks_at(150, 120)
        assert plausible_landmarks(face, (HEIGHT, WIDTH))
        upside_down = face * torch.tensor([1.0, -1.0]) + torch.tensor([0.0, 240.0])
        assert not plausible_landmarks(upside_down, (HEIGHT, WIDTH))  # mouth above the eyes
        assert not plausible_landmarks(torch.full((68, 2), float("nan")), (HEIGHT, WIDTH))
        assert not plausible_landmarks(landmarks_at(150, 120, scale=0.01), (HEIGHT, WIDTH))  # collapsed
        assert not plausible_landmarks(landmarks_at(WIDTH + 5, 120), (HEIGHT, WIDTH))  # mostly outside
        rotated = (face - face.mean(0)) @ torch.tensor([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]]).T
        assert plausible_landmarks(rotated + face.mean(0), (HEIGHT, WIDTH))  # a tilted head is still a face


@pytest.mark.slow
class TestRealVideo:
    def test_tracking_dlib_hog_on_a_real_clip(self):
        """pyfeat_single_face.mp4 (72 frames, 640x360, one face) with dlib HOG, in chunks of 16.

        Bound: the tracked landmarks are the same shape predictor started from the previous frame's box
        instead of the detector's, so they differ from per-frame detection by about dlib's own frame-to-frame
        noise. Measured: mean 0.8 px, 95th percentile 2.8 px, max 7.3 px (a jaw point) with an inter-ocular
        distance of ~60 px. Asserted with margin: mean < 1.5 px, 95th percentile < 4 px, every frame's
        mean < 3 px. Detections: 3 of 72 (detect_every=25). Jitter (crop-pixel second difference, as in
        test_align_smooth): tracked <= per-frame, without smoothing and with it.
        """
        pytest.importorskip("cv2")
        pytest.importorskip("dlib")
        require(VIDEO)
        from pasl.align import make_detector, read_video

        frames = read_video(VIDEO)
        detector = make_detector("dlib-hog")
        every = align_faces(frames, detector=detector)
        tracker = FaceTracker(detector, detect_every=25, fps=30.0)
        tracked = FaceAlignment.cat([align_faces(frames[s : s + 16], tracker=tracker) for s in range(0, len(frames), 16)])
        assert bool(every.has_face.all()) and bool(tracked.has_face.all())
        assert tracker.stats.detection_frames == [0, 25, 50] and set(tracked.track_ids.tolist()) == {0}
        distance = (tracked.landmarks - every.landmarks).norm(dim=-1)
        assert float(distance.mean()) < 1.5 and float(distance.flatten().quantile(0.95)) < 4.0, distance.mean()
        assert float(distance.mean(1).max()) < 3.0
        assert jitter(tracked.landmarks, tracked.crop_from_frame) <= jitter(every.landmarks, every.crop_from_frame)
        smoothed_every = align_faces(frames, detector=detector, smoothing=1.0, fps=30.0)
        smoothed = align_faces(frames, tracker=FaceTracker(detector, detect_every=25, smoothing=1.0, fps=30.0))
        assert jitter(smoothed.landmarks, smoothed.crop_from_frame) <= jitter(smoothed_every.landmarks, smoothed_every.crop_from_frame)


class TestAllFaces:
    @staticmethod
    def script(i: int) -> list[torch.Tensor]:
        return [] if i == 2 else TestIdsAndSmoothing.two_faces(i)

    def frames(self, start: int, stop: int) -> np.ndarray:
        return np.stack([frame(i, shot=int(i == 2)) for i in range(start, stop)])  # the faceless frame 2 is a cut

    def test_every_face_is_a_row(self):
        tracker = FaceTracker(ScriptDetector(self.script), detect_every=0)
        parts = [align_faces(self.frames(s, s + 3), tracker=tracker, select="all", require_face=False) for s in (0, 3)]
        result = FaceAlignment.cat(parts)
        assert result.frame_index.tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5]
        assert result.track_ids.tolist() == [0, 1, 0, 1, -1, 0, 1, 0, 1, 0, 1]
        assert result.has_face.tolist() == [True] * 4 + [False] + [True] * 6
        assert result.faceless_frames == [2] and result.frame_count == 6 and result.face_counts.tolist()[:5] == [2, 2, 2, 2, 0]
        assert "face in 5 of 6 frames (10 faces, every face kept)" in result.summary()
        assert "several faces in frames 0-1, 3-5" in result.summary()
        # each row is that face's own crop: the same as choosing it alone
        left = align_faces(self.frames(0, 2), tracker=FaceTracker(ScriptDetector(self.script), detect_every=0), select=0)
        assert torch.equal(result.crops[[1, 3]], left.crops)
        assert torch.allclose(result.landmarks[[1, 3]], left.landmarks)

    def test_without_tracker_rows_go_left_to_right(self):
        result = align_faces(self.frames(0, 2), detector=ScriptDetector(self.script), select="all")
        x = result.landmarks[:, :, 0].mean(1)
        assert result.frame_index.tolist() == [0, 0, 1, 1] and bool(x[0] < x[1]) and bool(x[2] < x[3])
        assert result.track_ids is None
        with pytest.raises(ValueError, match="select='all' smooths"):
            align_faces(self.frames(0, 2), detector=ScriptDetector(self.script), select="all", smoothing=1.0)
