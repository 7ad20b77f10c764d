"""Temporal smoothing of landmarks and crop transforms for video, in streaming chunks.

Per-frame detection jitters: dlib and FAN landmarks are integers, and a 1-pixel wobble of
the eye corners turns the whole 256 crop by a fraction of a degree. Here two One-Euro
filters (Casiez, Roussel & Vogel, "1€ Filter", CHI 2012) run per clip:

1. over the 68 landmarks (light: expressions must survive), then the 5-point similarity is
   fitted to the smoothed landmarks;
2. over that similarity's parameters ``[log scale, rotation, centre x, centre y]``
   (stronger: the crop should hold still while the face moves inside it).

A One-Euro filter is a first-order low-pass whose cutoff rises with the signal's speed:
``cutoff = min_cutoff + beta * |speed|``, so slow drifts are smoothed hard and fast motion
passes with little lag. Speeds of positions are measured in crop pixels per second (frame
pixels times the crop scale), so the same settings suit small and large faces.

``lock_scale`` fixes the crop scale for the clip: the median over the frames with a face
of the first chunk that has any (the whole clip when it is one chunk), or a given value.

State lives in :class:`TemporalSmoother`; feed consecutive chunks to the same instance and
a 10-minute video never needs more than one chunk in memory. Frames without a face are
skipped (the time step grows across them); after ``max_gap_s`` without a face the filters
restart, as after a cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..geometry import transform_points
from .crop import alignment_transform, similarity_from_parameters, similarity_parameters

DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class OneEuroSettings:
    """Cutoffs in Hz at strength 1; ``beta`` per unit of speed (see :class:`TemporalSmoother`)."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0


LANDMARK_SETTINGS = OneEuroSettings(min_cutoff=2.0, beta=0.05)
"""Landmarks: speed in crop pixels per second (expressions move at ~100 px/s -> ~7 Hz)."""
SCALE_SETTINGS = OneEuroSettings(min_cutoff=0.3, beta=4.0)
"""log(scale): speed in 1/s."""
ANGLE_SETTINGS = OneEuroSettings(min_cutoff=0.3, beta=3.0)
"""Rotation: speed in radians per second."""
CENTRE_SETTINGS = OneEuroSettings(min_cutoff=0.3, beta=0.03)
"""Crop centre: speed in crop pixels per second."""


def _alpha(cutoff: torch.Tensor | float, dt: float) -> torch.Tensor | float:
    """Smoothing factor of a first-order low-pass with ``cutoff`` Hz over ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Streaming One-Euro filter over tensors of a fixed shape ``(..., D)``.

    Args:
        settings: cutoffs/beta at strength 1.
        strength: > 0; cutoffs and beta are divided by it (2 = smoother, 0.5 = lighter).
        vector: measure speed as the norm over the last axis (points) instead of per element.
    """

    def __init__(self, settings: OneEuroSettings, strength: float = 1.0, vector: bool = False) -> None:
        if strength <= 0:
            raise ValueError(f"strength must be > 0, got {strength}")
        self.min_cutoff = settings.min_cutoff / strength
        self.beta = settings.beta / strength
        self.d_cutoff = settings.d_cutoff
        self.vector = vector
        self.reset()

    def reset(self) -> None:
        self.value: torch.Tensor | None = None
        self.speed: torch.Tensor | None = None
        self.time: float | None = None

    def __call__(self, x: torch.Tensor, time: float, speed_scale: float = 1.0) -> torch.Tensor:
        """Filter one sample taken at ``time`` seconds; ``speed_scale`` converts speed units."""
        x = x.double()
        if self.value is None or self.time is None or time <= self.time:
            self.value, self.speed, self.time = x, torch.zeros_like(x), time
            return x
        dt = time - self.time
        speed = (x - self.value) / dt
        self.speed = self.speed + _alpha(self.d_cutoff, dt) * (speed - self.speed)
        magnitude = self.speed.norm(dim=-1, keepdim=True) if self.vector else self.speed.abs()
        cutoff = self.min_cutoff + self.beta * magnitude * speed_scale
        self.value = self.value + _alpha(cutoff, dt) * (x - self.value)
        self.time = time
        return self.value


class TemporalSmoother:
    """Carries smoothing state across consecutive chunks of one clip.

    Args:
        strength: 0 = off (only ``lock_scale`` applies), 1 = default, larger = smoother
            (all cutoffs divided by it).
        fps: frame rate, to express cutoffs in Hz (25 when unknown).
        lock_scale: ``False``; ``True`` = median crop scale of the first chunk with faces;
            or a number = that crop scale (crop pixels per frame pixel).
        max_gap_s: restart the filters after this long without a face.

    Example:
        >>> smoother = TemporalSmoother(strength=1.0)
        >>> lm = torch.rand(1, 68, 2) * 100 + 50
        >>> out, crop_from_frame = smoother(lm.expand(3, 68, 2), torch.ones(3, dtype=torch.bool))
        >>> bool(torch.allclose(out[2], lm[0], atol=1e-4)), tuple(crop_from_frame.shape)
        (True, (3, 3, 3))
    """

    def __init__(self, strength: float = 1.0, fps: float = DEFAULT_FPS, lock_scale: bool | float = False,
                 max_gap_s: float = 1.0) -> None:
        if strength < 0 or not math.isfinite(strength):
            raise ValueError(f"strength must be >= 0 (0 = off), got {strength}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not isinstance(lock_scale, bool) and not (isinstance(lock_scale, (int, float)) and lock_scale > 0):
            raise ValueError(f"lock_scale must be True, False or a positive crop scale, got {lock_scale!r}")
        self.strength, self.fps, self.max_gap_s = float(strength), float(fps), float(max_gap_s)
        self.lock_scale = lock_scale
        self.locked_log_scale: float | None = None if isinstance(lock_scale, bool) else math.log(lock_scale)
        self.frame = 0
        self.last_face_frame: int | None = None
        if self.strength > 0:
            self.points = OneEuroFilter(LANDMARK_SETTINGS, self.strength, vector=True)
            self.scale = OneEuroFilter(SCALE_SETTINGS, self.strength)
            self.angle = OneEuroFilter(ANGLE_SETTINGS, self.strength)
            self.centre = OneEuroFilter(CENTRE_SETTINGS, self.strength, vector=True)

    @property
    def filters(self) -> list[OneEuroFilter]:
        return [self.points, self.scale, self.angle, self.centre] if self.strength > 0 else []

    def reset(self) -> None:
        """Forget the clip (keeps a scale locked by value, forgets one locked by median)."""
        for f in self.filters:
            f.reset()
        self.frame, self.last_face_frame = 0, None
        if self.lock_scale is True:
            self.locked_log_scale = None

    def __call__(self, landmarks: torch.Tensor, has_face: torch.Tensor, template=None,
                 first_frame: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Smooth one chunk.

        Args:
            landmarks: ``(T, 68, 2)`` frame pixels, consecutive frames; rows where
                ``has_face`` is False are ignored.
            has_face: ``(T,)`` bool.
            template: alignment template (default PASL's), see
                :func:`~pasl.align.crop.alignment_transform`.
            first_frame: index in the clip of the chunk's first frame; default: right after the
                previous chunk. A face tracker that feeds each track's frames only passes it, so
                the time step spans the frames in which the track was absent.

        Returns:
            ``(landmarks (T, 68, 2) float32, crop_from_frame (T, 3, 3) float64)``, both NaN
            where ``has_face`` is False.
        """
        if landmarks.ndim != 3 or has_face.shape != landmarks.shape[:1]:
            raise ValueError(f"need landmarks (T, 68, 2) and has_face (T,), got {tuple(landmarks.shape)} and {tuple(has_face.shape)}")
        count = landmarks.shape[0]
        if first_frame is not None:
            self.frame = int(first_frame)
        out_points = torch.full(landmarks.shape, float("nan"), dtype=torch.float32)
        out_params = torch.full((count, 4), float("nan"), dtype=torch.float64)
        valid = has_face.cpu().bool()
        raw = landmarks.detach().cpu().double()
        if bool(valid.any()):
            raw_params = similarity_parameters(alignment_transform(raw[valid]))
            if self.lock_scale is not False and self.locked_log_scale is None:
                self.locked_log_scale = float(raw_params[:, 0].median())
        index = 0
        for t in range(count):
            frame = self.frame + t
            if not bool(valid[t]):
                continue
            if self.last_face_frame is not None and (frame - self.last_face_frame) / self.fps > self.max_gap_s:
                for f in self.filters:
                    f.reset()
            self.last_face_frame = frame
            time = frame / self.fps
            scale = math.exp(float(raw_params[index, 0]))
            index += 1
            points = self.points(raw[t], time, speed_scale=scale) if self.strength > 0 else raw[t]
            params = similarity_parameters(alignment_transform(points[None]))[0]
            if self.strength > 0:
                params = self._filter_params(params, time)
            if self.locked_log_scale is not None:
                params = params.clone()
                params[0] = self.locked_log_scale
            out_points[t] = points.float()
            out_params[t] = params
        self.frame += count
        crop_from_frame = similarity_from_parameters(out_params)
        return out_points.to(landmarks.device), crop_from_frame

    def _filter_params(self, params: torch.Tensor, time: float) -> torch.Tensor:
        """Filter ``[log s, theta, cx, cy]``; theta is unwrapped against the filter's last value."""
        theta = params[1:2]
        if self.angle.value is not None:
            previous = self.angle.value
            theta = previous + torch.remainder(theta - previous + math.pi, 2 * math.pi) - math.pi
        scale = math.exp(float(params[0]))
        return torch.cat([
            self.scale(params[0:1], time),
            self.angle(theta, time),
            self.centre(params[2:4], time, speed_scale=scale),
        ])


def jitter(landmarks: torch.Tensor, crop_from_frame: torch.Tensor) -> float:
    """Mean length of the second difference of the landmarks in crop pixels: how much the crop's content
    shakes from frame to frame (0 = steady or moving at constant speed). ``landmarks`` ``(T, 68, 2)`` frame
    pixels and ``crop_from_frame`` ``(T, 3, 3)`` of consecutive frames; triples with a faceless frame are skipped.

    Example:
        >>> steady = torch.arange(5.0)[:, None, None] * torch.ones(5, 68, 2)   # constant speed
        >>> jitter(steady, torch.eye(3).expand(5, 3, 3))
        0.0
    """
    crop = transform_points(crop_from_frame.double(), landmarks.double())
    second = (crop[2:] - 2 * crop[1:-1] + crop[:-2]).norm(dim=-1)
    return float(second.nanmean()) if second.numel() else math.nan
