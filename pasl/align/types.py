"""Result types of the alignment stage (its errors are in :mod:`pasl.errors`).

Convention (every coordinate in ``pasl.align``): OpenCV pixel coordinates ``(x, y)``,
x to the right, y down, the centre of the top-left pixel at ``(0, 0)``, so pixel
``[row i, column j]`` sits at ``(j, i)``. Affines are ``(3, 3)`` homogeneous matrices acting
on column vectors ``[x, y, 1]`` and are named after their frames: ``crop_from_frame`` takes
a frame pixel to a crop pixel and its first two rows are exactly the ``M`` of
``cv2.warpAffine(frame, M, (256, 256))``; ``frame_from_crop`` is its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class Face:
    """One face found by a detector in one frame.

    Attributes:
        box: ``(4,)`` float32 ``[x0, y0, x1, y1]`` in frame pixels; ``x1 - x0`` is the width.
            Detector-specific extent (dlib: brows to chin; S3FD: a looser square), may
            extend past the frame border.
        score: detector confidence, larger is surer; its scale depends on the backend
            (dlib CNN: MMOD confidence, about 1 for clear faces; dlib HOG: SVM margin;
            S3FD: probability in (0.5, 1]).
        landmarks: ``(68, 2)`` float32 ``(x, y)`` in frame pixels, iBUG 68-point order.
    """

    box: torch.Tensor
    score: float
    landmarks: torch.Tensor

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        x0, y0, x1, y1 = self.box.tolist()
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)`` in frame pixels."""
        x0, y0, x1, y1 = self.box.tolist()
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class AlignedFace:
    """One frame of a :class:`FaceAlignment` (see there for the fields)."""

    crop: torch.Tensor
    crop_from_frame: torch.Tensor
    frame_from_crop: torch.Tensor
    landmarks: torch.Tensor
    landmarks_crop: torch.Tensor
    score: float
    face_count: int
    has_face: bool
    frame_size: tuple[int, int]
    track_id: int = -1


@dataclass(frozen=True)
class FaceAlignment:
    """Aligned 256x256 crops of a batch of frames, with the transforms to undo them.

    Attributes:
        crops: ``(B, 3, 256, 256)`` float32 RGB in [0, 1]. A frame without a face gets the
            whole frame letterboxed (aspect kept, black bars) in ``mode="align"``, the
            stretched frame in ``mode="resize"``.
        crop_from_frame: ``(B, 3, 3)`` float64 (float32 on MPS); frame pixel -> crop pixel. For frames
            without a face: the letterbox (``align``) or stretch (``resize``) affine, so
            ``crops`` is always the warp of the frame by this matrix.
        frame_from_crop: ``(B, 3, 3)`` float64, the inverse (for paste-back).
        landmarks: ``(B, 68, 2)`` float32 frame pixels (after temporal smoothing when it
            was asked for); NaN where ``has_face`` is False.
        landmarks_crop: ``(B, 68, 2)`` float32, the same points in crop pixels.
        scores: ``(B,)`` float32 detector score of the chosen face, NaN without one.
        face_counts: ``(B,)`` int64 faces the detector found in each frame (-1: detection
            was skipped, ``backend="none"``).
        has_face: ``(B,)`` bool, a face was chosen in this frame.
        frame_sizes: ``(B, 2)`` int64 ``(H, W)`` of each input frame.
        mode: ``"align"`` (5-point similarity) or ``"resize"`` (whole frame to 256).
        backend: name of the detector that produced the landmarks.
        track_ids: ``(B,)`` int64 id of the chosen face's track (:class:`pasl.align.track.FaceTracker`),
            -1 without a face; None when the frames were not tracked.
        detected: ``(B,)`` bool, the face detector ran on this frame (tracked frames only ran the
            landmark stage); None when the frames were not tracked (every frame was detected).
        frame_index: ``(B,)`` int64, with ``select="all"``: the input frame of each row (rows are then
            faces: several rows share a frame, a frame without a face has one faceless row; every
            per-row field above describes that row's face). None: row ``i`` is frame ``i``.
    """

    crops: torch.Tensor
    crop_from_frame: torch.Tensor
    frame_from_crop: torch.Tensor
    landmarks: torch.Tensor
    landmarks_crop: torch.Tensor
    scores: torch.Tensor
    face_counts: torch.Tensor
    has_face: torch.Tensor
    frame_sizes: torch.Tensor
    mode: str = "align"
    backend: str = ""
    track_ids: torch.Tensor | None = None
    detected: torch.Tensor | None = None
    frame_index: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def __getitem__(self, index: int) -> AlignedFace:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame index {index} out of range for {len(self)} frames")
        return AlignedFace(
            crop=self.crops[index],
            crop_from_frame=self.crop_from_frame[index],
            frame_from_crop=self.frame_from_crop[index],
            landmarks=self.landmarks[index],
            landmarks_crop=self.landmarks_crop[index],
            score=float(self.scores[index]),
            face_count=int(self.face_counts[index]),
            has_face=bool(self.has_face[index]),
            frame_size=(int(self.frame_sizes[index, 0]), int(self.frame_sizes[index, 1])),
            track_id=-1 if self.track_ids is None else int(self.track_ids[index]),
        )

    @property
    def frame_count(self) -> int:
        """Input frames (rows, unless ``frame_index`` makes rows faces)."""
        return len(self) if self.frame_index is None else int(self.frame_index.max()) + 1 if len(self) else 0

    @property
    def faceless_frames(self) -> list[int]:
        """Indices of the frames in which no face was chosen."""
        rows = torch.nonzero(~self.has_face.cpu()).flatten()
        return (rows if self.frame_index is None else self.frame_index.cpu()[rows]).tolist()

    def summary(self) -> str:
        """One line for logs and UIs, naming the frames without a face.

        Example:
            >>> n = 3
            >>> result = FaceAlignment(
            ...     crops=torch.zeros(n, 3, 256, 256), crop_from_frame=torch.eye(3).expand(n, 3, 3),
            ...     frame_from_crop=torch.eye(3).expand(n, 3, 3), landmarks=torch.zeros(n, 68, 2),
            ...     landmarks_crop=torch.zeros(n, 68, 2), scores=torch.ones(n), face_counts=torch.tensor([1, 0, 2]),
            ...     has_face=torch.tensor([True, False, True]), frame_sizes=torch.tensor([[360, 640]] * n),
            ...     backend="dlib-hog")
            >>> result.summary()
            'align (dlib-hog): face in 2 of 3 frames; no face in frame 1; several faces in frame 2'
        """
        total = self.frame_count
        found = total - len(self.faceless_frames)
        text = f"{self.mode} ({self.backend or 'no detector'}): face in {found} of {total} frames"
        if self.frame_index is not None:
            text += f" ({int(self.has_face.sum())} faces, every face kept)"
        missing = self.faceless_frames
        if missing:
            text += f"; no face in frame{'s' if len(missing) > 1 else ''} {_ranges(missing)}"
        several = torch.nonzero(self.face_counts.cpu() > 1).flatten()
        several = sorted(set((several if self.frame_index is None else self.frame_index.cpu()[several]).tolist()))
        if several:
            text += f"; several faces in frame{'s' if len(several) > 1 else ''} {_ranges(several)}"
        if self.detected is not None and self.track_ids is not None:
            tracks = len(set(self.track_ids[self.track_ids >= 0].tolist()))
            ran = int(self.detected.sum()) if self.frame_index is None else len(set(self.frame_index[self.detected].tolist()))
            if ran < total:  # silent when tracking saved nothing (one photo, a detector without a landmark stage)
                text += f"; tracked ({tracks} track{'' if tracks == 1 else 's'}), detector ran on {ran} of {total} frames"
        return text

    def to(self, device: torch.device | str) -> FaceAlignment:
        """A copy with every tensor on ``device``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return FaceAlignment(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in values.items()})

    @classmethod
    def cat(cls, parts: list[FaceAlignment]) -> FaceAlignment:
        """Join the results of consecutive chunks (same mode) into one."""
        if not parts:
            raise ValueError("FaceAlignment.cat needs at least one part, got an empty list")
        modes = {p.mode for p in parts}
        if len(modes) != 1:
            raise ValueError(f"cannot join results of different modes {sorted(modes)}")
        optional = {"track_ids": -1, "detected": True}  # fill for untracked parts (every frame detected)
        tensors = {f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)
                   if f.name not in ("mode", "backend", "frame_index", *optional)}
        if any(p.frame_index is not None for p in parts):
            offsets, indices = 0, []
            for p in parts:
                own = p.frame_index if p.frame_index is not None else torch.arange(len(p), device=p.has_face.device)
                indices.append(own + offsets)
                offsets += p.frame_count
            tensors["frame_index"] = torch.cat(indices)
        for name, fill in optional.items():
            values = [getattr(p, name) for p in parts]
            if any(v is not None for v in values):
                tensors[name] = torch.cat([
                    v if v is not None else torch.full((len(p),), fill, device=p.has_face.device,
                                                       dtype=torch.int64 if name == "track_ids" else torch.bool)
                    for p, v in zip(parts, values)
                ])
        backends = sorted({p.backend for p in parts if p.backend})
        return cls(**tensors, mode=parts[0].mode, backend="+".join(backends))


def _ranges(indices: list[int], limit: int = 12) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``'0-2, 5, 7-8'``; long lists are cut after ``limit`` runs."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (f" (+{len(runs) - limit} more runs)" if len(runs) > limit else "")
