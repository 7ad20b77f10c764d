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

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect(image)

    def for_crop_landmarks(self) -> "Detector":
        """The detector for DECA's own landmark pass on the aligned crops (see
        :func:`pasl.shape.detect_crop_landmarks`): the same one, unless a backend differs there."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


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
        else:
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
        """The 68-point shape predictor in each ``[x0, y0, x1, y1]`` box (exclusive right/bottom), ~2 ms a face."""
        image = _check_image(image)
        boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, torch.as_tensor(boxes).shape[-1])
        out = torch.zeros(len(boxes), NUM_LANDMARKS, 2)
        for i, (x0, y0, x1, y1) in enumerate(boxes[:, :4].tolist()):
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
        found = [([v / factor for v in box], score) for box, score in self._boxes(small)]
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
        device, dtype: where the two networks run.
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
        self.device, self.dtype = torch.device(device), dtype
        self.flip_input, self.integer_landmarks, self.max_side = flip_input, integer_landmarks, max_side
        self.score_threshold = fan.S3FD_SCORE_THRESHOLD if score_threshold is None else float(score_threshold)
        self.s3fd = fan.load_network(fan.S3FD(), files[fan.S3FD_FILE], "S3FD").to(self.device, dtype)
        self.fan = fan.load_network(fan.FAN(), files[fan.FAN_FILE], "FAN").to(self.device, dtype)
        self.files = files

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
