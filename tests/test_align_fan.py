"""The 'fan' backend (S3FD + 2D-FAN-4) against the official face_alignment 1.1.1, on synthetic weights.

``tests/golden/fan_official.npz`` holds what the vendored face_alignment of AvLab-CV/PASL
computed with the synthetic files of ``fan_synthetic.py``: raw S3FD outputs, the boxes after
NMS, FAN heatmaps (with flip) of the first face and the integer landmarks of every face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fan_synthetic import fan_state, golden_image, s3fd_state, write_fan_files
from pasl.align import fan
from pasl.align.detect import FanDetector, fan_files_present, make_detector
from pasl.errors import MissingWeightError, WeightFileError
from shared_assets import needs

GOLDEN = Path(__file__).resolve().parent / "golden" / "fan_official.npz"


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models_pasl")
    write_fan_files(folder)
    return folder


@pytest.fixture(scope="module")
def detector(weights_dir) -> FanDetector:
    return make_detector("fan", weights_dir)


@pytest.fixture(scope="module")
def landmarks(detector, golden) -> torch.Tensor:
    """Our integer landmarks for the official boxes (FAN on CPU is slow: computed once)."""
    return detector.landmarks(golden["image"], golden["boxes"])


@pytest.fixture
def opencv():
    """FAN's input crop is resized with cv2.resize officially; without OpenCV a torch resize differs by 1 level."""
    return pytest.importorskip("cv2")


class TestNetworks:
    def test_official_files_load_strictly(self, weights_dir):
        files = fan.find_fan_files([weights_dir])
        assert files[fan.S3FD_FILE].parent.name == "face_alignment"
        fan.load_network(fan.S3FD(), files[fan.S3FD_FILE], "S3FD")
        fan.load_network(fan.FAN(), files[fan.FAN_FILE], "FAN")

    def test_parameter_counts(self):
        assert set(fan_state()) <= set(fan.FAN().state_dict()) and len(fan_state()) > 900
        assert set(s3fd_state()) == set(fan.S3FD().state_dict())

    def test_swapped_files_are_refused(self, tmp_path):
        torch.save(fan_state(), tmp_path / "s3fd.pth")
        with pytest.raises(WeightFileError, match="do not fit"):
            fan.load_network(fan.S3FD(), tmp_path / "s3fd.pth", "S3FD")

    def test_code_in_pickle_is_refused(self, tmp_path):
        path = tmp_path / "evil.pth"
        torch.save({"x": Path("/")}, path)
        with pytest.raises(WeightFileError, match="refused"):
            fan.load_network(fan.S3FD(), path, "S3FD")

    def test_s3fd_outputs_equal_official(self, detector, golden):
        x = fan.s3fd_input(golden["image"], torch.device("cpu"), torch.float32)
        with torch.inference_mode():
            outputs = detector.s3fd(x)
        for level, (cls, reg) in enumerate(outputs):
            # not bit-identical on every CPU: 6.4e-6 measured here (torch 2.14.1, 2 threads)
            torch.testing.assert_close(cls, torch.from_numpy(golden[f"s3fd_out{2 * level}"]), rtol=0, atol=1e-5)
            torch.testing.assert_close(reg, torch.from_numpy(golden[f"s3fd_out{2 * level + 1}"]), rtol=0, atol=1e-5)

    def test_fan_heatmaps_with_flip_equal_official(self, detector, golden, opencv):
        crop = fan.fan_crop(golden["image"], golden["boxes"][0])
        x = torch.from_numpy(crop.image).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            heatmaps = detector.fan(x) + fan.flip_heatmaps(detector.fan(x.flip(-1)))
        channels = golden["heatmap_channels"]
        torch.testing.assert_close(heatmaps[0, channels], torch.from_numpy(golden["heatmaps0"]), rtol=0, atol=1e-4)  # 5.0e-5 measured


@pytest.mark.slow
class TestPipeline:
    def test_golden_image_is_the_official_input(self, golden):
        assert np.array_equal(golden_image().numpy(), golden["image"])

    def test_boxes_equal_official(self, detector, golden):
        boxes = detector.boxes(golden["image"])
        assert boxes.shape == golden["boxes"].shape == (7, 5)
        np.testing.assert_allclose(boxes, golden["boxes"], rtol=0, atol=1e-6)  # 1.2e-7 measured

    def test_integer_landmarks_equal_official(self, landmarks, golden, opencv):
        official = torch.from_numpy(golden["landmarks"])
        assert landmarks.shape == official.shape == (7, 68, 2)
        assert torch.equal(landmarks, official)  # identical (0 of 952 coordinates differ here)

    def test_detect_returns_faces_by_score(self, detector, golden, landmarks, opencv):
        faces = detector.detect(golden["image"])
        assert [round(f.score, 5) for f in faces] == [round(float(s), 5) for s in golden["boxes"][:, 4]]
        assert all(torch.equal(face.landmarks, landmarks[i]) for i, face in enumerate(faces))

    def test_float_landmarks_are_close_to_integer_ones(self, weights_dir, golden, opencv):
        precise = make_detector("fan", weights_dir, integer_landmarks=False)
        integer = torch.from_numpy(golden["landmarks"][:2])
        floats = precise.landmarks(golden["image"], golden["boxes"][:2])
        assert not torch.equal(floats, floats.round())
        sides = torch.from_numpy(golden["boxes"][:2, 2] - golden["boxes"][:2, 0]).float()
        # nominal vs actual crop: under one pixel plus a fraction of the 4-pixel heatmap cell
        assert ((floats - integer).abs().amax(dim=(1, 2)) <= 1.5 + sides / 128).all()

    def test_max_side_maps_boxes_back(self, weights_dir):
        image = golden_image(288, 352).numpy()
        full = make_detector("fan", weights_dir).boxes(image)
        small = make_detector("fan", weights_dir, max_side=176).boxes(image)
        assert len(full) != 0 and len(small) != 0 and small.shape[1] == 5
        assert small[:, :4].max() > 180  # boxes found on the half-size image come back in full-size pixels

    def test_no_flip_changes_landmarks(self, weights_dir, golden):
        plain = make_detector("fan", weights_dir, flip_input=False)
        assert not torch.equal(plain.landmarks(golden["image"], golden["boxes"][:1]), torch.from_numpy(golden["landmarks"][:1]))

    def test_tiny_image_has_no_face(self, detector):
        assert detector.detect(np.zeros((20, 400, 3), np.uint8)) == []

    def test_box_outside_the_image(self, detector):
        image = golden_image().numpy()
        crop = fan.fan_crop(image, np.array([1000.0, 1000.0, 1100.0, 1100.0], np.float32))
        assert crop.image.shape == (256, 256, 3) and crop.image.max() == 0


class TestPostprocessing:
    def test_nms_keeps_the_best_of_overlapping_boxes(self):
        boxes = np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.95], [50, 50, 60, 60, 0.6], [0, 0, 10, 9, 0.2]], np.float32)
        assert fan.nms(boxes, 0.3) == [1, 2]
        assert fan.nms(np.zeros((0, 5), np.float32)) == []

    def test_heatmap_peaks(self):
        hm = torch.zeros(1, 2, 64, 64)
        hm[0, 0, 10, 20] = 1.0
        hm[0, 0, 10, 21] = 0.5  # right neighbour larger than left: +0.25 in x
        hm[0, 1, 0, 5] = 1.0  # border row: no nudge
        peaks = fan.heatmap_peaks(hm)
        assert peaks[0].tolist() == [[20 + 1 + 0.25 - 0.5, 10 + 1 - 0.5], [5 + 0.5, 0.5]]

    def test_flip_permutation_is_an_involution(self):
        perm = torch.tensor(fan.FLIP_PERMUTATION)
        assert torch.equal(perm[perm], torch.arange(68))
        assert fan.FLIP_PERMUTATION[36] == 45 and fan.FLIP_PERMUTATION[48] == 54 and fan.FLIP_PERMUTATION[30] == 30


class TestMissingWeights:
    def test_message_names_files_place_and_source(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", "")
        monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")
        with pytest.raises(MissingWeightError) as info:
            FanDetector(tmp_path)
        text = str(info.value)
        for part in (fan.S3FD_FILE, fan.FAN_FILE, "models/pasl", "face_alignment/", "https://www.adrianbulat.com/downloads/python-fan/"):
            assert part in text

    def test_presence_check_opens_nothing(self, weights_dir, tmp_path):
        assert fan_files_present(weights_dir)
        (tmp_path / "face_alignment").mkdir()
        (tmp_path / "face_alignment" / fan.S3FD_FILE).write_bytes(b"")
        assert fan_files_present(tmp_path) == fan_files_present(None)  # one file alone is not enough

    def test_auto_prefers_fan(self, weights_dir):
        assert make_detector("auto", weights_dir).name == "fan"

    def test_unknown_backend(self):
        with pytest.raises(ValueError, match="backend must be one of"):
            make_detector("mtcnn")


FACES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces"


@pytest.mark.slow
@pytest.mark.skipif(not fan_files_present(None), reason="real FAN weights ($PASL_WEIGHTS or weights/face_alignment/) absent")
@needs(FACES, reason="../shared/assets/faces is not available")
class TestRealWeights:
    def test_frontal_photo_is_aligned(self):
        from pasl.align import PASL_TEMPLATE_256, align_faces, five_points, read_image

        result = align_faces(read_image(FACES / "photos" / "pyfeat_0-f1-su-ph.jpg"), backend="fan")
        assert result.has_face.all() and result.backend == "fan"
        residual = (five_points(result.landmarks_crop)[0] - torch.tensor(PASL_TEMPLATE_256)).norm(dim=-1)
        assert residual.mean() < 10.0

    def test_noface_photo(self):
        from pasl.align import read_image

        assert make_detector("fan").detect(read_image(FACES / "noface" / "skimage_coffee.png")) == []


class TestDecaLandmarkPass:
    """DECA's second landmark pass on the aligned 256 crop (decalib ``detectors.FAN``: FAN without flip,
    first face), then its crop box: numbers from the official code in ``tests/golden/deca_pass_official.npz``."""

    @pytest.fixture(scope="class")
    @classmethod
    def official(cls):
        return np.load(Path(__file__).parent / "golden" / "deca_pass_official.npz")

    def test_second_pass_is_fan_without_flip_sharing_the_networks(self, detector):
        second = detector.for_crop_landmarks()
        assert detector.flip_input and not second.flip_input
        assert second.fan is detector.fan and second.s3fd is detector.s3fd
        assert second.for_crop_landmarks() is second

    def test_the_detector_runs_where_its_networks_are(self, weights_dir):
        """A memory manager (ComfyUI's) moves the networks between calls; inputs must follow them."""
        moved = make_detector("fan", weights_dir)
        assert moved.device == torch.device("cpu")
        moved.s3fd.to("meta")  # where a manager could have put them; "meta" stands for a GPU on a CPU-only machine
        assert moved.device == torch.device("meta") and moved.for_crop_landmarks().device == torch.device("meta")

    def test_landmarks_and_deca_crop_equal_official(self, detector, official, opencv):
        from pasl.csg.crop import deca_crop_transform
        from pasl.shape import detect_crop_landmarks

        crop = opencv.resize(golden_image().numpy(), (256, 256), interpolation=opencv.INTER_LINEAR)
        assert int(crop.astype(np.int64).sum()) == int(official["crop256_sum"])
        crops = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
        landmarks, found = detect_crop_landmarks(detector, crops)
        assert found.tolist() == [True]
        np.testing.assert_array_equal(landmarks[0].numpy(), official["landmarks"])
        tform = deca_crop_transform(landmarks.double(), face_found=found, image_size=(256, 256))
        np.testing.assert_allclose(tform[0].numpy(), official["tform"], rtol=1e-6, atol=1e-6)  # TestData returns float32

    def test_no_face_in_the_crop_means_the_whole_crop(self):
        from pasl.shape import detect_crop_landmarks
        from pipeline_synthetic import ScriptedDetector

        crops = torch.zeros(3, 3, 256, 256)
        crops[1] = 0.5  # the scripted detector finds a face in frames that are not dark
        landmarks, found = detect_crop_landmarks(ScriptedDetector(), crops)
        assert found.tolist() == [False, True, False]
        assert float(landmarks[[0, 2]].abs().max()) == 0.0 and float(landmarks[1].abs().max()) > 0
