"""DECA's crop landmarks: the ``refit`` pass (landmark stage alone in the box of the aligner's
points), its fallbacks, and the defaults and presets that choose between the three rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pasl.align.detect import Detector
from pasl.geometry import NUM_LANDMARKS
from pasl.pipeline import PRESETS, ReenactOptions
from pasl.shape import CROP_LANDMARKS, _deca_landmarks, refit_crop_landmarks


class BoxEcho(Detector):
    """Landmark stage that answers with the box it was given (points 0-33 on its top-left corner,
    34-67 on its bottom-right) and a box convention 10 px wider than the points on each side;
    it records the images it saw. Its face detector must never run."""

    name = "echo"

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def detect(self, image):
        raise AssertionError("refit must not run the face detector")

    def box_from_landmarks(self, landmarks):
        points = torch.as_tensor(landmarks).reshape(-1, NUM_LANDMARKS, 2)
        return torch.cat([points.amin(1) - 10, points.amax(1) + 10], dim=1)

    def landmarks_in_boxes(self, image, boxes):
        self.seen.append(image)
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        out = torch.empty(len(boxes), NUM_LANDMARKS, 2)
        out[:, :34], out[:, 34:] = boxes[:, None, :2], boxes[:, None, 2:]
        return out


def _mapped(batch: int) -> torch.Tensor:
    points = torch.zeros(batch, NUM_LANDMARKS, 2)
    for i in range(batch):
        points[i, :, 0] = torch.linspace(60 + i, 190 + i, NUM_LANDMARKS)
        points[i, :, 1] = torch.linspace(80, 220 - i, NUM_LANDMARKS)
    return points


class TestRefit:
    def test_points_come_from_the_landmark_stage_in_the_detectors_box(self):
        crops = torch.rand(3, 3, 256, 256)
        mapped = _mapped(3)
        mapped[2] = float("nan")  # the aligner found no face here
        detector = BoxEcho()
        landmarks, found = refit_crop_landmarks(detector, crops, mapped, torch.tensor([True, True, False]))
        assert landmarks.shape == (3, NUM_LANDMARKS, 2) and landmarks.dtype == torch.float32
        assert found.tolist() == [True, True, False]
        # by hand: the points' extent widened by 10 px, echoed back as two corners
        expected = {0: ([50.0, 70.0], [200.0, 230.0]), 1: ([51.0, 70.0], [201.0, 229.0])}
        for i, (low, high) in expected.items():
            assert torch.equal(landmarks[i, :34], torch.tensor(low).expand(34, 2))
            assert torch.equal(landmarks[i, 34:], torch.tensor(high).expand(34, 2))
        assert torch.equal(landmarks[2], torch.zeros(NUM_LANDMARKS, 2))
        # the landmark stage saw the 8-bit crops of the rows with a face, as the official uint8 crop
        assert len(detector.seen) == 2
        for image, crop in zip(detector.seen, crops[:2]):
            assert image.dtype == np.uint8 and image.shape == (256, 256, 3)
            np.testing.assert_array_equal(image, (crop.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())

    def test_non_finite_points_are_not_a_face(self):
        mapped = _mapped(2)
        mapped[1, 5, 0] = float("inf")
        landmarks, found = refit_crop_landmarks(BoxEcho(), torch.rand(2, 3, 256, 256), mapped, torch.tensor([True, True]))
        assert found.tolist() == [True, False] and torch.equal(landmarks[1], torch.zeros(NUM_LANDMARKS, 2))

    def test_a_landmark_stage_that_finds_nothing_is_not_a_face(self):
        class Lost(BoxEcho):
            def landmarks_in_boxes(self, image, boxes):
                return torch.full((len(boxes), NUM_LANDMARKS, 2), float("nan"))

        landmarks, found = refit_crop_landmarks(Lost(), torch.rand(1, 3, 256, 256), _mapped(1), torch.tensor([True]))
        assert found.tolist() == [False] and torch.equal(landmarks, torch.zeros(1, NUM_LANDMARKS, 2))

    def test_rule_dispatch_and_fallbacks(self):
        crops, mapped = torch.rand(2, 3, 256, 256), _mapped(2)
        refit, found = _deca_landmarks("refit", BoxEcho(), crops, mapped, None)
        assert found.tolist() == [True, True] and torch.equal(refit[0, 0], torch.tensor([50.0, 70.0]))
        as_mapped, found = _deca_landmarks("refit", None, crops, mapped, None)  # no detector: the mapped points
        assert torch.equal(as_mapped, mapped) and found.tolist() == [True, True]
        empty, found = _deca_landmarks("refit", BoxEcho(), crops, None, None)  # no points: DECA's whole-crop fallback
        assert not found.any() and torch.equal(empty, torch.zeros(2, NUM_LANDMARKS, 2))
        with pytest.raises(ValueError, match="crop_landmarks must be one of .*refit.*, got 'both'"):
            _deca_landmarks("both", None, crops, mapped, None)
        with pytest.raises(ValueError, match="crop_landmarks must be one of redetect, mapped, refit, got 'both'"):
            ReenactOptions(crop_landmarks="both")


class TestChoices:
    def test_rules(self):
        assert CROP_LANDMARKS == ("redetect", "mapped", "refit")

    def test_official_presets_keep_the_second_detection(self):
        for name in ("official-demo", "official-test"):
            assert PRESETS[name]["crop_landmarks"] == "redetect"
            assert ReenactOptions.preset(name).crop_landmarks == "redetect"

    def test_paper_default(self):
        assert "crop_landmarks" not in PRESETS["paper"]
        assert ReenactOptions().crop_landmarks == ReenactOptions.preset("paper").crop_landmarks == "refit"

    def test_command_line_offers_every_rule(self):
        from pasl.__main__ import build_parser

        (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
        (action,) = [a for a in commands.choices["reenact"]._actions if a.dest == "crop_landmarks"]
        assert tuple(action.choices) == CROP_LANDMARKS and action.default is None
