"""A complete synthetic weights folder for end-to-end runs, and a scripted face detector.

The DECA encoder is synthetic but *steered*: its last layer is nearly flat around a bias
that decodes to a plausible head (neutral codes, camera scale 8, no offset), so FLAME
lands inside the crop and the depth/landmark maps look like a face, whatever the
input. With ``../shared`` present the real FLAME topology, template mesh and landmark
embedding are used; without it, synthetic ones of the same format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import flame_synthetic as fs
from deca_synthetic import deca_checkpoint
from pasl.align.crop import PASL_TEMPLATE_256
from pasl.align.detect import Detector
from pasl.align.types import Face
from synthetic import save_official, write_nets_ema

SHARED_FLAME = Path(__file__).resolve().parents[2] / "shared" / "assets" / "flame"
HEAD_CAMERA_SCALE = 8.0


POSE_YAW_INDEX = 201
"""Index of the global rotation's y component in the 236-d code (shape 100, tex 50, exp 50, pose 6)."""


def steered_deca(path: Path, seed: int = 0, yaw_deg: float = 0.0) -> Path:
    """``yaw_deg`` turns every head it reads (for pose-dependent paths such as the PAE choice)."""
    checkpoint = deca_checkpoint(seed)
    state = checkpoint["E_flame"]
    bias = torch.zeros(236)
    bias[206] = HEAD_CAMERA_SCALE
    bias[POSE_YAW_INDEX] = float(np.deg2rad(yaw_deg))
    state["layers.2.weight"] = state["layers.2.weight"] * 1e-3
    state["layers.2.bias"] = bias
    return save_official(checkpoint, path)


def yaw_following_deca(path: Path, seed: int = 0, gain: float = 6.0, center_deg: float = 58.0) -> Path:
    """A steered DECA whose yaw depends on the picture: the yaw row keeps its random weights, times
    ``gain``, around ``center_deg`` (this seed's mean over the shared photos), so a folder of real photos
    spreads over the pose bins (seed 0 on ``../shared`` photos: roughly -30 to +90 degrees)."""
    checkpoint = deca_checkpoint(seed)
    state = checkpoint["E_flame"]
    yaw_row = state["layers.2.weight"][POSE_YAW_INDEX].clone()
    bias = torch.zeros(236)
    bias[206] = HEAD_CAMERA_SCALE
    bias[POSE_YAW_INDEX] = -gain * float(np.deg2rad(center_deg))
    state["layers.2.weight"] = state["layers.2.weight"] * 1e-3
    state["layers.2.weight"][POSE_YAW_INDEX] = gain * yaw_row
    state["layers.2.bias"] = bias
    return save_official(checkpoint, path)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def weights_folder(folder: Path) -> Path:
    """``folder`` filled with every file PASL needs, in the official formats."""
    folder.mkdir(parents=True, exist_ok=True)
    write_nets_ema(folder / "204000_nets_ema.ckpt", seed=0)
    steered_deca(folder / "deca_model.tar")
    if (SHARED_FLAME / "head_template.obj").exists():
        fs.write_head_model(folder / "generic_model.pkl", SHARED_FLAME / "head_template.obj")
        (folder / "landmark_embedding.npy").write_bytes((SHARED_FLAME / "landmark_embedding.npy").read_bytes())
        (folder / "head_template.obj").write_bytes((SHARED_FLAME / "head_template.obj").read_bytes())
    else:  # an ellipsoid head of the same format
        vertices, faces = fs.ellipsoid_mesh()
        fs.write_head_model(folder / "generic_model.pkl", None)
        fs.write_landmark_embedding(folder / "landmark_embedding.npy")
        write_obj(folder / "head_template.obj", vertices, faces)
    return folder


def face_landmarks(center: tuple[float, float], size: float) -> np.ndarray:
    """68 points of a frontal face of width ``size`` px at ``center``: the 5 alignment points
    at the ArcFace template's positions, the rest on an ellipse around them."""
    template = np.asarray(PASL_TEMPLATE_256, dtype=np.float64)
    scale = size / 128.0
    points = np.zeros((68, 2))
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points[:, 0] = 128 + 64 * np.cos(angles)
    points[:, 1] = 140 + 80 * np.sin(angles)
    points[[36, 39]] = template[0] + [[-8, 0], [8, 0]]
    points[[42, 45]] = template[1] + [[-8, 0], [8, 0]]
    points[30], points[48], points[54] = template[2], template[3], template[4]
    return ((points - 128) * scale + np.asarray(center)).astype(np.float32)


class ScriptedDetector(Detector):
    """Finds one face per frame where a script says, or none (frames listed in ``faceless``)."""

    name = "scripted"

    def __init__(self, faceless_means_dark: bool = True):
        self.faceless_means_dark = faceless_means_dark

    def detect(self, image: np.ndarray) -> list[Face]:
        if self.faceless_means_dark and image.mean() < 8:
            return []
        h, w = image.shape[:2]
        size = min(h, w) * 0.45
        landmarks = torch.from_numpy(face_landmarks((w / 2, h / 2), size))
        box = torch.tensor([w / 2 - size / 2, h / 2 - size / 2, w / 2 + size / 2, h / 2 + size / 2], dtype=torch.float32)
        return [Face(box=box, score=1.0, landmarks=landmarks)]
