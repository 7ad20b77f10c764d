"""Head pose, expression and landmarks of face images, read the one way the package reads faces.

The benchmarks need the same measurement on three kinds of picture: photos (to bin them by yaw when
composing pairs), aligned crops (sources and drivers) and generated faces. All of them go through
DECA (:func:`pasl.shape.shape_codes`), so a pose error compares like with like:

* an aligned 256 crop gets DECA's own landmark pass (the detector's first face on the crop, as the
  official ``get_depth_render``); where the detector finds no face (a poor fake, a full profile),
  DECA reads the whole crop (its own fallback) and the face is flagged ``found=False``;
* a photo is aligned first (:func:`pasl.align.align_faces`, largest face); a photo without a face
  has no measurement.

Angles are ``[yaw, pitch, roll]`` degrees from FLAME's head rotation
(:func:`pasl.rotations.axis_angle_to_angles`); yaw is :func:`pasl.shape.face_yaw`, the value that
picks a PAE network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..csg.codes import FlameCodes
from ..geometry import ALIGNED_SIZE
from ..imageops import resize_square
from ..rotations import axis_angle_to_angles
from ..shape import detect_crop_landmarks, face_yaw, shape_codes


@dataclass(frozen=True)
class FaceMeasures:
    """Per-face measurements, all on the CPU.

    Attributes:
        codes: FLAME codes of batch B (float32).
        angles: ``(B, 3)`` ``[yaw, pitch, roll]`` degrees (float64).
        landmarks: ``(B, 68, 2)`` the detector's 68 points in 256-crop pixels; NaN where not found.
        found: ``(B,)`` bool, the detector found a face (else DECA read the whole crop).
    """

    codes: FlameCodes
    angles: torch.Tensor
    landmarks: torch.Tensor
    found: torch.Tensor

    @property
    def yaw(self) -> torch.Tensor:
        return self.angles[:, 0]

    @property
    def pitch(self) -> torch.Tensor:
        return self.angles[:, 1]

    def __len__(self) -> int:
        return self.found.shape[0]

    @classmethod
    def cat(cls, parts: "list[FaceMeasures]") -> "FaceMeasures":
        return cls(FlameCodes.cat([p.codes for p in parts]), torch.cat([p.angles for p in parts]),
                   torch.cat([p.landmarks for p in parts]), torch.cat([p.found for p in parts]))


def measure_crops(shape_encoder, detector, crops: torch.Tensor) -> FaceMeasures:
    """Measure face crops ``(B, 3, H, W)`` in [0, 1] (resized to 256 when H, W differ).

    ``detector`` (a :class:`pasl.align.Detector`) gives the landmark pass; the codes are then exactly
    ``shape_codes(..., crop_landmarks="redetect", detector=detector)``'s.
    """
    crops = resize_square(crops.detach().float(), ALIGNED_SIZE)
    landmarks, found = detect_crop_landmarks(detector, crops)
    with torch.inference_mode():
        shapes = shape_codes(shape_encoder, crops, landmarks, found, crop_landmarks="mapped")
    codes = shapes.codes.to("cpu")
    angles = axis_angle_to_angles(codes.pose[:, :3].double())
    angles[:, 0] = face_yaw(shapes).double()  # the same numbers, by the one definition
    points = torch.where(found[:, None, None], landmarks, torch.full_like(landmarks, float("nan")))
    return FaceMeasures(codes, angles, points, found)


def measure_photos(shape_encoder, detector, images: list) -> tuple[FaceMeasures, torch.Tensor]:
    """Measure the largest face of each photo: aligned as the pipeline aligns drivers, then
    :func:`measure_crops`. Returns the measures (rows of faceless photos included, meaningless) and
    ``(B,)`` bool, which photos had a face."""
    from ..align import align_faces

    alignment = align_faces(images, select="largest", detector=detector, require_face=False)
    return measure_crops(shape_encoder, detector, alignment.crops), alignment.has_face.cpu().bool()


def find_shape_encoder(folders: list | None = None, device: str | torch.device = "cpu"):
    """DECA's encoder alone (measuring faces needs nothing else), found like every weight file."""
    from ..catalog import find_one
    from ..csg.encoder import load_shape_encoder

    return load_shape_encoder(find_one("deca", folders, "deca_model.tar"), device=device)
