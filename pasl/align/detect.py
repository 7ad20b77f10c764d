"""Face detectors with 68-point landmarks, behind one interface.

``detector.detect(image)`` takes one ``(H, W, 3)`` uint8 RGB numpy image and returns a list
of :class:`~pasl.align.types.Face` (box, score, 68 landmarks in frame pixels), highest score
first. Backends:

* ``"fan"``: S3FD + 2D-FAN-4 (:mod:`pasl.align.fan`), what the official demos use; needs
  ``s3fd-619a316812.pth`` and ``2DFAN4-11f355bf06.pth.tar`` in a ``face_alignment/`` folder
  of the weight folders (nothing is downloaded). Torch only; runs on any device.
* ``"dlib"``: dlib's CNN (MMOD) detector + the 68-point shape predictor, from the PyPI
  packages ``dlib-bin`` and ``face-recognition-models`` (weights inside the package).
  Best recall on large poses of the offline detectors we measured on real photos,
  about 1.2-1.4 s per 640x360 frame on 2 CPU cores.
* ``"dlib-hog"``: dlib's HOG frontal detector + the same predictor: ~20x faster, misses
  faces beyond ~45 degrees of yaw.
* ``"auto"``: ``fan`` when its two files are found, else ``dlib`` (CNN).

Every backend returns the iBUG 68-point layout in OpenCV pixel coordinates (see
:mod:`pasl.align.types`). dlib and official FAN landmarks are integer-valued.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import BackendUnavailableError, MissingWeightError
from ..geometry import NUM_LANDMARKS
from .types import Face

log = logging.getLogger(__name__)

BACKENDS = ("auto", "fan", "dlib", "dlib-hog")
SELECT_RULES = ("largest", "central", "score")
"""How to pick one face per frame; an ``int`` picks the i-th face from the image-left."""

DLIB_MODELS_PACKAGE = "face_recognition_models"
DLIB_CNN_FILE = "mmod_human_face_detector.dat"
DLIB_SHAPE_FILE = "shape_predictor_68_face_landmarks.dat"
DLIB_INSTALL = "pip install dlib-bin face-recognition-models"
DEFAULT_MAX_SIDE = 2048
"""Detectors look for faces on a copy shrunk to at most this side (landmarks always use the
full image): a VGG-16 (S3FD) or MMOD pass over an 8K frame needs tens of GB and minutes.
Every official input (video frames, 256 crops) is smaller, so parity is unaffected."""
FAN_SUBFOLDER = "face_alignment"
DLIB_MIN_SIDE = 16
"""dlib's CNN raises on images narrower than ~10 px; its smallest face window is 80 px anyway."""
DLIB_CNN_TO_HOG = (0.0333, 0.0961, 0.9489)
"""dlib's 68-point predictor was trained on HOG-detector boxes; a CNN (MMOD) box is another
extent. ``(dx, dy, s)``: on average the HOG box of a face is centred at ``centre_cnn + (dx, dy) * side_cnn``
with side ``s * side_cnn`` (both boxes are square): medians over 63 real faces of
``shared/assets/faces`` (photos, multi-face photos, 39 video frames) where both detectors fire,
``tools/dlib_box_pairs.py`` then ``tools/fit_dlib_boxes.py``. The spread is large (HOG box sides
are quantised by its image pyramid, and on turned heads the HOG box sits toward the far side),
so this is only the fallback of :data:`DLIB_HOG_WINDOW` and the inverse of :meth:`DlibDetector.box_from_landmarks`."""
DLIB_HOG_FROM_POINTS = (-0.0068, 0.5366, -0.0946, 1.0113)
"""``(ax, g, ay, k)``: the HOG box of a face with 68 points is centred at
``centre_pts + (ax + g * nose_x, ay) * size_pts`` with side ``k * size_pts``, where ``centre_pts`` /
``size_pts`` are the points' bounding-box centre and mean of width and height and ``nose_x`` the nose
tip's (point 30) offset from that centre over ``size_pts``: a turned head's HOG box sits toward the
side the nose points to. Fitted like :data:`DLIB_CNN_TO_HOG` on the predictor's points in HOG boxes:
IoU with the real HOG box median 0.85, min 0.70 over those 63 faces."""
DLIB_HOG_WINDOW = (2.0, (100, 120, 140))
"""``(context, sides)``: the predictor of the CNN backend runs in the box dlib's HOG detector finds in
a window ``context`` times the CNN box around it, the window scaled so the face is each of ``sides``
pixels wide; the HOG boxes overlapping the CNN box most are averaged (their sides jump with the
HOG pyramid; the average of three scales steadies them): three small HOG runs a face, far less
than a CNN detection; where HOG finds nothing (beyond ~50 degrees of yaw) the CNN box mapped by :data:`DLIB_CNN_TO_HOG` is used. On the
annotated faces of ``tests/data/real_landmarks68.json`` this takes the inter-ocular NME of the
CNN backend on the three-quarter photo from 0.48 to under 0.04 (README "Alignment quality")."""


NEAR_WINDOW = (2.0, 110, 0.6)
"""``(context, face_side, most)``: :meth:`Detector.detect_near` looks for a known face in a square
window ``context`` times its box around it, scaled so the face is ``face_side`` pixels wide (dlib's
CNN finds faces from its 80 px window up), and searches the whole frame instead when the windows
together are more than ``most`` of the pixels a whole-frame detection reads. A 640x360 frame with a
165 px face: ~0.25 s instead of ~1.2 s with dlib's CNN on 2 CPU cores. Measured against whole-frame
detection on the real clips: README "Video: face tracking"."""


def _window(image: np.ndarray, box: torch.Tensor, context: float) -> tuple[np.ndarray, int, int]:
    """The square ``context`` x ``box`` window around ``box`` (zeros beyond the frame), and its top-left."""
    (centre,), (side,) = _centre_side(box[None])
    window = max(1, math.ceil(float(side) * context))
    left, top = math.floor(float(centre[0]) - window / 2), math.floor(float(centre[1]) - window / 2)
    patch = np.zeros((window, window, 3), dtype=np.uint8)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, left), max(0, top), min(width, left + window), min(height, top + window)
    if x1 > x0 and y1 > y0:
        patch[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return patch, left, top


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"detect() takes a numpy (H, W, 3) uint8 RGB image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detect() takes a (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    return np.ascontiguousarray(image)


def _shrink_factor(image: np.ndarray, max_side: int | None) -> float:
    """Factor (<= 1) that brings the longer side to ``max_side``; 1 when it already fits."""
    if max_side is None:
        return 1.0
    longest = max(image.shape[:2])
    return min(1.0, max_side / longest)


def _shrink(image: np.ndarray, factor: float) -> np.ndarray:
    if factor >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    # C-contiguous: dlib reads a strided (channels-first) buffer wrongly, now and then
    return np.ascontiguousarray(x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())


class Detector(ABC):
    """Interface: ``detect(image) -> list[Face]``, models loaded once in the constructor."""

    name: str = ""

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one ``(H, W, 3)`` uint8 RGB image, highest score first."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """:meth:`detect` on each image (backends may batch this)."""
        return [self.detect(image) for image in images]

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """68 landmarks ``(N, 68, 2)`` float32 for given face ``boxes`` ``(N, >=4)`` ``[x0, y0, x1, y1]``,
        without running the face detector: the cheap half of :meth:`detect`, for tracking a face
        from frame to frame and for a second landmark pass on a crop. Boxes are in this backend's
        own convention (see :meth:`box_from_landmarks`).

        Backends with a separate landmark stage override this; this fallback runs :meth:`detect`
        and gives each box the landmarks of the detection that overlaps it most (NaN where none does).
        """
        wanted = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, torch.as_tensor(boxes).shape[-1])[:, :4]
        out = torch.full((len(wanted), NUM_LANDMARKS, 2), float("nan"))
        faces = self.detect(image)
        if faces and len(wanted):
            overlap = box_iou(wanted, torch.stack([f.box for f in faces]))
            best, index = overlap.max(1)
            for i in torch.nonzero(best > 0).flatten().tolist():
                out[i] = faces[int(index[i])].landmarks
        return out

    def box_from_landmarks(self, landmarks: torch.Tensor) -> torch.Tensor:
        """The box ``(N, 4)`` this backend's detector would give for faces with these ``(N, 68, 2)``
        landmarks, so :meth:`landmarks_in_boxes` can run again without the detector (tracking).

        This default is the landmarks' bounding box; backends whose landmark stage was trained on
        boxes of another extent override it."""
        points = torch.as_tensor(landmarks, dtype=torch.float32).reshape(-1, NUM_LANDMARKS, 2)
        return torch.cat([points.amin(1), points.amax(1)], dim=1)

    def landmarks_from_points(self, image: np.ndarray, landmarks: torch.Tensor) -> torch.Tensor:
        """The landmark stage run again ``(N, 68, 2)`` on a face whose points ``(N, 68, 2)`` are known
        (e.g. mapped from another image): :meth:`landmarks_in_boxes` in :meth:`box_from_landmarks`,
        unless a backend has a shorter way."""
        return self.landmarks_in_boxes(image, self.box_from_landmarks(landmarks))

    def detect_near(self, image: np.ndarray, boxes: torch.Tensor) -> list[Face] | None:
        """Faces found only near known ones (``boxes`` ``(N, 4)`` in this backend's convention): a
        cheaper detection for a tracker to confirm its faces (see :data:`NEAR_WINDOW`). ``None`` when
        that is not cheaper than :meth:`detect` on the whole frame, or this backend cannot; the caller
        then runs :meth:`detect`. Faces elsewhere in the frame are not looked for."""
        return None

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect(image)

    def for_crop_landmarks(self) -> "Detector":
        """The detector for DECA's own landmark pass on the aligned crops (see
        :func:`pasl.shape.detect_crop_landmarks`): the same one, unless a backend differs there."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def _centre_side(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    boxes = boxes[:, :4].double()
    return (boxes[:, :2] + boxes[:, 2:]) / 2, ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 2


def _square(centre: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    half = (side / 2)[:, None]
    return torch.cat([centre - half, centre + half], dim=1)


def _map_box(boxes: torch.Tensor, mapping: tuple[float, float, float], inverse: bool = False) -> torch.Tensor:
    """Square boxes moved and scaled by ``(dx, dy, s)`` relative to their side (or back, ``inverse``)."""
    centre, side = _centre_side(boxes)
    dx, dy, scale = mapping
    shift = torch.tensor([dx, dy], dtype=torch.float64)
    if inverse:
        side = side / scale
        return _square(centre - shift * side[:, None], side)
    return _square(centre + shift * side[:, None], side * scale)


def dlib_hog_box_from_points(landmarks: torch.Tensor) -> torch.Tensor:
    """The HOG detector's box ``(N, 4)`` float32 for faces with these ``(N, 68, 2)`` points (:data:`DLIB_HOG_FROM_POINTS`)."""
    points = torch.as_tensor(landmarks).reshape(-1, NUM_LANDMARKS, 2).double()
    low, high = points.amin(1), points.amax(1)
    ax, gain, ay, k = DLIB_HOG_FROM_POINTS
    size, centre = (high - low).mean(1), (low + high) / 2
    nose = (points[:, 30, 0] - centre[:, 0]) / size.clamp(min=1e-9)
    shift = torch.stack([ax + gain * nose, torch.full_like(nose, ay)], dim=1)
    return _square(centre + shift * size[:, None], k * size).float()


def inter_ocular_nme(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean point-to-point error of ``(N, 68, 2)`` landmarks over the outer-eye-corner distance
    (points 36 and 45 of the truth; the 300-W "inter-ocular" NME), ``(N,)``.

    Example:
        >>> truth = torch.zeros(1, 68, 2); truth[0, 45, 0] = 100.0
        >>> inter_ocular_nme(truth + torch.tensor([3.0, 4.0]), truth)
        tensor([0.0500])
    """
    predicted, truth = torch.as_tensor(predicted).reshape(-1, NUM_LANDMARKS, 2), torch.as_tensor(truth).reshape(-1, NUM_LANDMARKS, 2)
    error = (predicted.double() - truth.double()).norm(dim=-1).mean(-1)
    return (error / (truth[:, 36].double() - truth[:, 45].double()).norm(dim=-1)).float()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union ``(N, M)`` of ``[x0, y0, x1, y1]`` boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)``.

    Example:
        >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2], [5.0, 5, 6, 6]]))
        tensor([[0.3333, 0.0000]])
    """
    a, b = a[:, None, :4].float(), b[None, :, :4].float()
    width = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    height = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = width * height
    area = lambda x: (x[..., 2] - x[..., 0]).clamp(min=0) * (x[..., 3] - x[..., 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)


# ---------------------------------------------------------------- dlib


def dlib_models_folder() -> Path:
    """``face_recognition_models/models`` located without importing the package.

    Importing ``face_recognition_models`` needs ``pkg_resources``, which recent setuptools
    no longer ships; its folder is all that is needed.
    """
    spec = importlib.util.find_spec(DLIB_MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            f"the dlib alignment backend needs the package face-recognition-models (its model files): {DLIB_INSTALL}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibDetector(Detector):
    """dlib face detector (``"cnn"`` MMOD or ``"hog"``) + 68-point shape predictor.

    Args:
        model: ``"cnn"`` (``mmod_human_face_detector.dat``) or ``"hog"``
            (``get_frontal_face_detector``).
        upsample: dlib's ``upsample_num_times`` (each doubles the image side to find faces
            smaller than ~80 px; 4x the time). Default 0 for cnn, 1 for hog (the manifest's
            counts used hog with 1).
        max_side: detect on a copy whose longer side is at most this many pixels (then map
            the boxes back; landmarks are always predicted on the full image). ``None``:
            full resolution. Default :data:`DEFAULT_MAX_SIDE`.
        models_folder: where the ``.dat`` files are; default: inside face-recognition-models.

    The predictor was trained on HOG boxes, so with the CNN it runs in the HOG box found near
    each CNN box (:data:`DLIB_HOG_WINDOW`); faces keep the CNN box as ``Face.box``.
    """

    def __init__(self, model: str = "cnn", upsample: int | None = None, max_side: int | None = DEFAULT_MAX_SIDE,
                 models_folder: str | Path | None = None) -> None:
        if model not in ("cnn", "hog"):
            raise ValueError(f"model must be 'cnn' or 'hog', got {model!r}")
        if importlib.util.find_spec("dlib") is None:
            raise BackendUnavailableError(f"the dlib alignment backend needs dlib: {DLIB_INSTALL}")
        import dlib

        folder = Path(models_folder) if models_folder is not None else dlib_models_folder()
        files = [DLIB_SHAPE_FILE] + ([DLIB_CNN_FILE] if model == "cnn" else [])
        for name in files:
            if not (folder / name).is_file():
                raise MissingWeightError(
                    f"dlib model {name} not found in {folder}; reinstall it with: pip install --force-reinstall face-recognition-models"
                )
        self.model = model
        self.name = "dlib" if model == "cnn" else "dlib-hog"
        self.upsample = (0 if model == "cnn" else 1) if upsample is None else int(upsample)
        self.max_side = max_side
        self._predictor = dlib.shape_predictor(str(folder / DLIB_SHAPE_FILE))
        if model == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(folder / DLIB_CNN_FILE))
        self._hog = dlib.get_frontal_face_detector()
        self._dlib = dlib

    def _boxes(self, image: np.ndarray) -> list[tuple[list[float], float]]:
        """``([x0, y0, x1, y1], score)`` per face in ``image`` pixels (dlib's inclusive right/bottom + 1)."""
        if self.model == "cnn":
            found = [(d.rect, float(d.confidence)) for d in self._cnn(image, self.upsample)]
        else:
            rects, scores, _ = self._hog.run(image, self.upsample, 0.0)
            found = list(zip(rects, map(float, scores)))
        return [([r.left(), r.top(), r.right() + 1.0, r.bottom() + 1.0], s) for r, s in found]

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The 68-point shape predictor in each ``[x0, y0, x1, y1]`` box of this detector (exclusive
        right/bottom): directly in HOG boxes (~2 ms a face), in the HOG box found near each CNN box
        (:data:`DLIB_HOG_WINDOW`: three small HOG runs a face)."""
        image = _check_image(image)
        boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, torch.as_tensor(boxes).shape[-1])[:, :4]
        if self.model == "cnn" and len(boxes):
            boxes = torch.stack([self._hog_box_near(image, box) for box in boxes])
        return self._predict(image, boxes)

    def box_from_landmarks(self, landmarks: torch.Tensor) -> torch.Tensor:
        """The box this detector gives a face with these points: HOG's (:data:`DLIB_HOG_FROM_POINTS`),
        or for the CNN that box mapped back by :data:`DLIB_CNN_TO_HOG`."""
        hog = dlib_hog_box_from_points(landmarks)
        return (hog if self.model == "hog" else _map_box(hog, DLIB_CNN_TO_HOG, inverse=True)).float()

    def landmarks_from_points(self, image: np.ndarray, landmarks: torch.Tensor) -> torch.Tensor:
        """The predictor straight in the HOG box of known points (:func:`dlib_hog_box_from_points`), for
        both models: the CNN's box round trip and HOG search are not needed when the points are there."""
        return self._predict(_check_image(image), dlib_hog_box_from_points(landmarks).double())

    def _hog_box_near(self, image: np.ndarray, box: torch.Tensor) -> torch.Tensor:
        """The HOG detector's box for the face in CNN ``box`` (see :data:`DLIB_HOG_WINDOW`), float64 ``(4,)``."""
        context, sides = DLIB_HOG_WINDOW
        (_,), (side,) = _centre_side(box[None])
        side = float(side)
        if not (side > 0 and bool(torch.isfinite(box).all())):
            return _map_box(box[None], DLIB_CNN_TO_HOG)[0]
        patch, left, top = _window(image, box, context)
        window = patch.shape[0]
        found = []
        for face_side in sides:
            scaled = _shrink(patch, face_side / side) if face_side < side else patch
            factor = scaled.shape[0] / window
            rects, _, _ = self._hog.run(scaled, 0, 0.0)
            for r in rects:
                found.append([r.left() / factor + left, r.top() / factor + top,
                              (r.right() + 1) / factor + left, (r.bottom() + 1) / factor + top])
        if found:
            candidates = torch.tensor(found, dtype=torch.float64)
            overlap = box_iou(candidates, box[None])[:, 0]
            near = candidates[overlap > 0.3]
            if len(near):  # up to one match per scale, the closest, averaged
                return near.mean(0) if len(near) <= len(sides) else candidates[overlap.argsort(descending=True)[: len(sides)]].mean(0)
        return _map_box(box[None], DLIB_CNN_TO_HOG)[0]

    def _predict(self, image: np.ndarray, boxes: torch.Tensor) -> torch.Tensor:
        """The predictor once in each HOG-convention box (NaN points for a non-finite box)."""
        out = torch.zeros(len(boxes), NUM_LANDMARKS, 2)
        for i, (x0, y0, x1, y1) in enumerate(boxes[:, :4].tolist()):
            if not all(map(math.isfinite, (x0, y0, x1, y1))):
                out[i] = float("nan")
                continue
            rect = self._dlib.rectangle(round(x0), round(y0), round(x1) - 1, round(y1) - 1)
            shape = self._predictor(image, rect)
            out[i] = torch.tensor([(p.x, p.y) for p in shape.parts()], dtype=torch.float32)
        return out

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _check_image(image)
        factor = _shrink_factor(image, self.max_side)
        small = _shrink(image, factor)
        if min(small.shape[:2]) < DLIB_MIN_SIDE:
            return []
        return self._faces(image, [([v / factor for v in box], score) for box, score in self._boxes(small)])

    def detect_near(self, image: np.ndarray, boxes: torch.Tensor) -> list[Face] | None:
        """The detector in a window around each box, scaled so the face is small but findable
        (:data:`NEAR_WINDOW`), boxes mapped back; the predictor as in :meth:`detect`, on the full image."""
        image = _check_image(image)
        context, face_side, most = NEAR_WINDOW
        boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
        if not len(boxes) or not bool(torch.isfinite(boxes).all()):
            return None
        sides = _centre_side(boxes)[1].clamp(min=1.0)
        scales = (face_side / sides).clamp(max=1.0)
        searched = float(((sides * context * scales) ** 2).sum())
        whole = float(np.prod(image.shape[:2])) * _shrink_factor(image, self.max_side) ** 2
        if searched > most * whole:
            return None
        found = []
        for box, scale in zip(boxes, scales.tolist()):
            patch, left, top = _window(image, box, context)
            small = _shrink(patch, scale)
            if min(small.shape[:2]) < DLIB_MIN_SIDE:
                continue
            factor = small.shape[0] / patch.shape[0]
            for (x0, y0, x1, y1), score in self._boxes(small):
                found.append(([x0 / factor + left, y0 / factor + top, x1 / factor + left, y1 / factor + top], score))
        return self._faces(image, found)

    def _faces(self, image: np.ndarray, found: list[tuple[list[float], float]]) -> list[Face]:
        """Faces for detector boxes in ``image`` pixels: the predictor's landmarks, highest score first."""
        if not found:
            return []
        boxes = torch.tensor([box for box, _ in found], dtype=torch.float32)
        points = self.landmarks_in_boxes(image, boxes)
        faces = [Face(boxes[i], score, points[i]) for i, (_, score) in enumerate(found)]
        faces.sort(key=lambda f: -f.score)
        return faces


# ---------------------------------------------------------------- FAN


def fan_folders(weights_dir: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """Folders searched for the FAN files: ``weights_dir`` (one or several), then ``$PASL_WEIGHTS`` and the pack's ``weights/``."""
    from ..catalog import search_folders

    extra = [] if weights_dir is None else [weights_dir] if isinstance(weights_dir, (str, Path)) else list(weights_dir)
    return search_folders(extra)


def fan_files_present(weights_dir: str | Path | Sequence[str | Path] | None = None) -> bool:
    """Whether both FAN weight files can be found (nothing is opened)."""
    from .fan import find_fan_files

    return all(p is not None for p in find_fan_files(fan_folders(weights_dir)).values())


class FanDetector(Detector):
    """S3FD + 2D-FAN-4, the official demos' detector (see :mod:`pasl.align.fan`).

    Args:
        weights_dir: folder(s) holding ``s3fd-619a316812.pth`` and
            ``2DFAN4-11f355bf06.pth.tar`` (searched recursively, so ``models/pasl`` finds
            ``models/pasl/face_alignment/``); ``$PASL_WEIGHTS`` and the pack's ``weights/``
            are searched after it.
        device, dtype: where the two networks are made. Later, :attr:`device` follows the
            networks, so a memory manager (ComfyUI's) may move them between calls.
        flip_input: add the mirrored image's heatmaps (official: True).
        integer_landmarks: truncate landmarks to integers like face_alignment (official:
            True); False keeps sub-pixel values (see :func:`pasl.align.fan.peaks_to_image`).
        max_side: run S3FD on a copy whose longer side is at most this (boxes are mapped
            back; FAN always crops the full image). ``None``: full resolution (official).
            Default :data:`DEFAULT_MAX_SIDE`, which leaves every official input untouched.
        score_threshold: S3FD probability a face must exceed (official 0.5).

    Raises:
        MissingWeightError: a file is missing: names both files, where to put them and
            where to get them.
    """

    name = "fan"

    def __init__(self, weights_dir=None, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 flip_input: bool = True, integer_landmarks: bool = True, max_side: int | None = DEFAULT_MAX_SIDE,
                 score_threshold: float | None = None) -> None:
        from . import fan

        folders = fan_folders(weights_dir)
        files = fan.find_fan_files(folders)
        missing = [name for name, path in files.items() if path is None]
        if missing:
            raise MissingWeightError(
                f"the 'fan' alignment backend needs {' and '.join(missing)}, not found in "
                f"{', '.join(str(f) for f in folders)}. Put {fan.S3FD_FILE} and {fan.FAN_FILE} in a "
                f"{FAN_SUBFOLDER}/ folder inside ComfyUI/models/pasl/ (or the pack's weights/); get them from "
                f"{fan.FAN_URL}{fan.S3FD_FILE} and {fan.FAN_URL}{fan.FAN_FILE} (face-alignment, BSD-3). "
                f"Or use backend='dlib' ({DLIB_INSTALL})."
            )
        self.dtype = dtype
        self.flip_input, self.integer_landmarks, self.max_side = flip_input, integer_landmarks, max_side
        self.score_threshold = fan.S3FD_SCORE_THRESHOLD if score_threshold is None else float(score_threshold)
        self.s3fd = fan.load_network(fan.S3FD(), files[fan.S3FD_FILE], "S3FD").to(torch.device(device), dtype)
        self.fan = fan.load_network(fan.FAN(), files[fan.FAN_FILE], "FAN").to(torch.device(device), dtype)
        self.files = files

    @property
    def device(self) -> torch.device:
        """Where the networks are now; inputs are sent there."""
        return next(self.s3fd.parameters()).device

    @torch.inference_mode()
    def boxes(self, image: np.ndarray) -> np.ndarray:
        """S3FD boxes ``(N, 5)`` ``[x1, y1, x2, y2, p]`` float32 in ``image`` pixels, after NMS and threshold."""
        from . import fan

        image = _check_image(image)
        factor = _shrink_factor(image, self.max_side)
        small = _shrink(image, factor)
        if min(small.shape[:2]) < fan.S3FD_MIN_SIDE:
            return np.zeros((0, 5), dtype=np.float32)
        outputs = self.s3fd(fan.s3fd_input(small, self.device, self.dtype))
        candidates = fan.s3fd_boxes(outputs)
        kept = candidates[fan.nms(candidates)] if len(candidates) else candidates
        kept = kept[kept[:, 4] > self.score_threshold]
        if factor < 1.0:
            kept = kept.copy()
            kept[:, :4] /= np.float32(factor)
        return kept

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """FAN on S3FD-style boxes, without S3FD (see :meth:`landmarks`)."""
        return self.landmarks(image, torch.as_tensor(boxes, dtype=torch.float32).numpy())

    def box_from_landmarks(self, landmarks: torch.Tensor) -> torch.Tensor:
        """The points' bounding box: face_alignment's crop rule (:func:`pasl.align.fan.fan_crop`: centre
        raised by 0.12 of the box height, side 200/195 of width + height) then frames the whole face
        with the margin FAN sees around an S3FD face box of about that extent. Not fitted to real S3FD
        boxes (their weights are not available here)."""
        return super().box_from_landmarks(landmarks)

    @torch.inference_mode()
    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        """FAN landmarks ``(N, 68, 2)`` float32 for ``boxes`` ``(N, >=4)`` in ``image``."""
        from . import fan

        image = _check_image(image)
        if len(boxes) == 0:
            return torch.zeros(0, NUM_LANDMARKS, 2)
        crops = [fan.fan_crop(image, box) for box in boxes]
        x = torch.from_numpy(np.stack([c.image for c in crops])).permute(0, 3, 1, 2)
        x = x.to(self.device, torch.float32).div(255.0).to(self.dtype)
        heatmaps = self.fan(x)
        if self.flip_input:
            heatmaps = heatmaps + fan.flip_heatmaps(self.fan(x.flip(-1)))
        peaks = fan.heatmap_peaks(heatmaps)
        return torch.stack([fan.peaks_to_image(peaks[i], crops[i], self.integer_landmarks) for i in range(len(crops))])

    def for_crop_landmarks(self) -> "FanDetector":
        """DECA's detector in the official code: ``FaceAlignment(_2D, flip_input=False)``; networks shared."""
        if not self.flip_input:
            return self
        second = copy.copy(self)
        second.flip_input = False
        return second

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _check_image(image)
        boxes = self.boxes(image)
        points = self.landmarks(image, boxes)
        return [Face(torch.from_numpy(boxes[i, :4].astype(np.float32)), float(boxes[i, 4]), points[i]) for i in range(len(boxes))]


# ---------------------------------------------------------------- factory and selection


def make_detector(backend: str = "auto", weights_dir=None, **options) -> Detector:
    """A reusable detector (models loaded once).

    Args:
        backend: ``"auto"`` (``fan`` if both of its files are found, else ``dlib``),
            ``"fan"``, ``"dlib"`` (CNN) or ``"dlib-hog"``.
        weights_dir: extra folder(s) searched for the FAN files (the ComfyUI node passes
            ``models/pasl``).
        options: passed to :class:`FanDetector` or :class:`DlibDetector` (``max_side``,
            ``upsample``, ``device``, ``integer_landmarks``...).

    Raises:
        ValueError: unknown backend. MissingWeightError / BackendUnavailableError: the
        backend cannot run here, with what to install or download.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if fan_files_present(weights_dir):
            return FanDetector(weights_dir, **options)
        if importlib.util.find_spec("dlib") is None or importlib.util.find_spec(DLIB_MODELS_PACKAGE) is None:
            from . import fan

            raise BackendUnavailableError(
                "no face-alignment backend is available: either put "
                f"{fan.S3FD_FILE} and {fan.FAN_FILE} (from {fan.FAN_URL}) in ComfyUI/models/pasl/{FAN_SUBFOLDER}/, "
                f"or install dlib: {DLIB_INSTALL}"
            )
        log.info("alignment backend 'auto': FAN weights not found, using dlib (CNN)")
        return DlibDetector("cnn", **{k: v for k, v in options.items() if k in ("upsample", "max_side", "models_folder")})
    if backend == "fan":
        return FanDetector(weights_dir, **options)
    return DlibDetector("cnn" if backend == "dlib" else "hog", **options)


def select_face(faces: Sequence[Face], rule: str | int, frame_size: tuple[int, int]) -> int | None:
    """Index into ``faces`` of the face to keep, or ``None``.

    Args:
        faces: one frame's detections.
        rule: ``"largest"`` (box area), ``"central"`` (box centre nearest the frame centre),
            ``"score"`` (the detector's first = most confident, what the official code
            does with ``preds[0]``), or an ``int`` i: the i-th face counted from the
            image-left by box centre (negative counts from the right).
        frame_size: ``(H, W)``.

    Returns:
        An index, or ``None`` when there is no face or ``i`` is out of range.

    Example:
        >>> box = lambda x0, w: Face(torch.tensor([x0, 0.0, x0 + w, w]), 1.0, torch.zeros(68, 2))
        >>> faces = [box(50.0, 10.0), box(0.0, 30.0), box(90.0, 20.0)]
        >>> select_face(faces, "largest", (100, 100)), select_face(faces, 0, (100, 100)), select_face(faces, -1, (100, 100))
        (1, 1, 2)
    """
    if not faces:
        return None
    if isinstance(rule, bool) or not isinstance(rule, (int, str)):
        raise TypeError(f"select must be one of {SELECT_RULES} or an int, got {rule!r}")
    if isinstance(rule, int):
        order = sorted(range(len(faces)), key=lambda i: faces[i].center[0])
        return order[rule] if -len(order) <= rule < len(order) else None
    if rule == "largest":
        return max(range(len(faces)), key=lambda i: faces[i].area)
    if rule == "central":
        cy, cx = (frame_size[0] - 1) / 2, (frame_size[1] - 1) / 2
        return min(range(len(faces)), key=lambda i: math.hypot(faces[i].center[0] - cx, faces[i].center[1] - cy))
    if rule == "score":
        return max(range(len(faces)), key=lambda i: faces[i].score)
    raise ValueError(f"select must be one of {SELECT_RULES} or an int, got {rule!r}")
