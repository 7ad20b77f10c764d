"""The FLAME head model as DECA (and so PASL's CSG) uses it: the layer and its maths.

``FLAME`` turns DECA codes (100 shape, 50 expression, 6 pose) into a 5023-vertex head and
68 landmarks, number for number like DECA's ``decalib/models/FLAME.py``:

* blend-shape basis = FLAME's first 100 identity components followed by its first 50
  expression components (``shapedirs[:, :, :100]`` and ``shapedirs[:, :, 300:350]``);
* full pose = ``[global (3), neck = 0 (3), jaw (3), eyes = 0 (6)]``, axis-angle radians;
* linear blend skinning as in :mod:`pasl.lbs`;
* ``landmarks2d`` = 17 jaw-contour points whose triangles depend on the head yaw (a
  79-row table, see :func:`pasl.lbs.contour_rows_from_yaw`) then 51 fixed points, in
  iBUG-68 order; ``landmarks3d`` = the fixed "full" 68-point embedding. Both are 3-D
  points in model space (metres), despite the name ``landmarks2d``.

The maths lives in :mod:`pasl.lbs`; this module keeps every array as a buffer (so ``.to()``
moves all of it) and checks inputs. Reading and converting the FLAME files (and DECA's head
template) is :mod:`pasl.flame_files`, so this layer needs no file format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import lbs as L
from .errors import WeightFileError

__all__ = ["BUFFER_NAMES", "FLAME", "FlameOutput"]

N_SHAPE = 100
"""Identity coefficients of a DECA code (``cfg.model.n_shape``)."""
N_EXP = 50
"""Expression coefficients of a DECA code (``cfg.model.n_exp``)."""
N_POSE = 6
"""DECA pose code: global axis-angle (3) then jaw axis-angle (3), radians."""
NUM_JOINTS = 5
"""FLAME joints: global (root), neck, jaw, left eye, right eye."""
NECK_JOINT = 1
"""Joint whose chain up to the root gives the head rotation for the dynamic contour."""
NUM_CONTOUR = 17
"""Dynamic jaw-contour landmarks (iBUG points 0..16)."""
NUM_STATIC = 51
"""Fixed landmarks (iBUG points 17..67)."""
NUM_LANDMARKS = NUM_CONTOUR + NUM_STATIC

_FLOAT_BUFFERS = (
    "v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights",
    "static_lmk_bary_coords", "dynamic_lmk_bary_coords", "full_lmk_bary_coords",
)
_LONG_BUFFERS = (
    "faces", "parents", "static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx",
)
BUFFER_NAMES = _FLOAT_BUFFERS + _LONG_BUFFERS
"""Every array of a FLAME layer (and of a converted file)."""


@dataclass(frozen=True)
class FlameOutput:
    """What :class:`FLAME` returns; unpacks like DECA's tuple: ``v, lmk2d, lmk3d = flame(...)``.

    Attributes:
        vertices: ``(B, 5023, 3)`` posed mesh, model space (metres, +y up, +z to the viewer).
        landmarks2d: ``(B, 68, 3)`` iBUG-68 landmarks with the yaw-dependent jaw contour
            (3-D points; DECA projects them to 2-D later).
        landmarks3d: ``(B, 68, 3)`` iBUG-68 landmarks from the fixed embedding.
    """

    vertices: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.vertices, self.landmarks2d, self.landmarks3d))


def _check_code(name: str, x: object, width: int) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name} must have shape (B, {width}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


class FLAME(nn.Module):
    """DECA's FLAME layer: codes -> vertices and landmarks (see the module docstring).

    Args:
        arrays: the arrays named in :data:`BUFFER_NAMES`, as produced by
            :func:`pasl.flame_files.read_flame_arrays` (numpy or torch; copied into float32/int64 buffers).
        source: a name for error messages.

    Every array is a buffer (nothing is trainable); ``.to(device, dtype)`` moves all of them
    and ``forward`` computes on the buffers' device and dtype. float32 is the parity dtype
    (DECA runs FLAME in float32); float16/bfloat16 work, with about 1e-3 (fp16) to 3e-3
    (bf16) model units of error.
    """

    def __init__(self, arrays: Mapping[str, object], source: str = "FLAME arrays"):
        super().__init__()
        tensors = _check_arrays(arrays, source)
        for name in BUFFER_NAMES:
            self.register_buffer(name, tensors[name])
        chain = [NECK_JOINT]
        while tensors["parents"][chain[-1]] != -1:
            chain.append(int(tensors["parents"][chain[-1]]))
        self.register_buffer("neck_kin_chain", torch.tensor(chain, dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"vertices={self.v_template.shape[0]}, faces={self.faces.shape[0]}, "
            f"n_shape={N_SHAPE}, n_exp={N_EXP}, landmarks={NUM_LANDMARKS}"
        )

    def forward(
        self, shape_params: torch.Tensor, expression_params: torch.Tensor, pose_params: torch.Tensor
    ) -> FlameOutput:
        """Posed head and landmarks for a batch of DECA codes.

        Args:
            shape_params: ``(B, 100)`` identity coefficients.
            expression_params: ``(B, 50)`` expression coefficients.
            pose_params: ``(B, 6)`` global then jaw axis-angle, radians.

        Returns:
            :class:`FlameOutput` on the buffers' device/dtype (codes are cast to that dtype;
            they must already be on the buffers' device).
        """
        shape = _check_code("shape_params", shape_params, N_SHAPE)
        expression = _check_code("expression_params", expression_params, N_EXP)
        pose = _check_code("pose_params", pose_params, N_POSE)
        batch = shape.shape[0]
        if expression.shape[0] != batch or pose.shape[0] != batch:
            raise ValueError(
                f"shape_params, expression_params and pose_params must have the same batch size, got "
                f"{batch}, {expression.shape[0]} and {pose.shape[0]}"
            )
        dtype, device = self.v_template.dtype, self.v_template.device
        for name, code in (("shape_params", shape), ("expression_params", expression), ("pose_params", pose)):
            if code.device != device:
                raise ValueError(f"{name} is on {code.device} but the FLAME layer is on {device}; move one of them")
        shape, expression, pose = (code.to(dtype) for code in (shape, expression, pose))

        betas = torch.cat([shape, expression], dim=1)
        neck = pose.new_zeros(batch, 3)
        eyes = pose.new_zeros(batch, 6)
        full_pose = torch.cat([pose[:, :3], neck, pose[:, 3:], eyes], dim=1)  # (B, 15): global, neck, jaw, eyes
        template = self.v_template.unsqueeze(0).expand(batch, -1, -1)
        vertices, _ = L.lbs(
            betas, full_pose, template, self.shapedirs, self.posedirs, self.J_regressor, self.parents,
            self.lbs_weights,
        )

        rows = L.dynamic_contour_rows(full_pose, self.neck_kin_chain)  # (B,)
        contour_idx = torch.index_select(self.dynamic_lmk_faces_idx, 0, rows)  # (B, 17)
        contour_bary = torch.index_select(self.dynamic_lmk_bary_coords, 0, rows)  # (B, 17, 3)
        lmk_idx = torch.cat([contour_idx, self.static_lmk_faces_idx.unsqueeze(0).expand(batch, -1)], 1)
        lmk_bary = torch.cat([contour_bary, self.static_lmk_bary_coords.unsqueeze(0).expand(batch, -1, -1)], 1)
        landmarks2d = L.vertices2landmarks(vertices, self.faces, lmk_idx, lmk_bary)
        landmarks3d = L.vertices2landmarks(
            vertices, self.faces,
            self.full_lmk_faces_idx.unsqueeze(0).repeat(batch, 1),
            self.full_lmk_bary_coords.unsqueeze(0).repeat(batch, 1, 1),
        )
        return FlameOutput(vertices=vertices, landmarks2d=landmarks2d, landmarks3d=landmarks3d)


# --------------------------------------------------------------------------- array checks


def _check_arrays(arrays: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    """Validate shapes/ranges of the FLAME arrays; return float32/int64 CPU tensors."""
    missing = [name for name in BUFFER_NAMES if name not in arrays]
    if missing:
        raise WeightFileError(f"{source} lacks the FLAME arrays {', '.join(missing)}.")
    out: dict[str, torch.Tensor] = {}
    for name in BUFFER_NAMES:
        value = arrays[name]
        try:
            tensor = value.detach().cpu() if torch.is_tensor(value) else torch.from_numpy(np.asarray(value))
        except TypeError as err:
            raise WeightFileError(f"{source}: the FLAME array {name} is not numeric ({err}).") from None
        out[name] = tensor.to(torch.float32 if name in _FLOAT_BUFFERS else torch.long).contiguous()

    num_verts = out["v_template"].shape[0]
    num_faces = out["faces"].shape[0]
    expected = {
        "v_template": (num_verts, 3),
        "shapedirs": (num_verts, 3, N_SHAPE + N_EXP),
        "posedirs": ((NUM_JOINTS - 1) * 9, num_verts * 3),
        "J_regressor": (NUM_JOINTS, num_verts),
        "lbs_weights": (num_verts, NUM_JOINTS),
        "faces": (num_faces, 3),
        "parents": (NUM_JOINTS,),
        "static_lmk_faces_idx": (NUM_STATIC,),
        "static_lmk_bary_coords": (NUM_STATIC, 3),
        "dynamic_lmk_faces_idx": (L.CONTOUR_ROWS, NUM_CONTOUR),
        "dynamic_lmk_bary_coords": (L.CONTOUR_ROWS, NUM_CONTOUR, 3),
        "full_lmk_faces_idx": (NUM_LANDMARKS,),
        "full_lmk_bary_coords": (NUM_LANDMARKS, 3),
    }
    wrong = [f"{name} {tuple(out[name].shape)} (expected {shape})" for name, shape in expected.items()
             if tuple(out[name].shape) != shape]
    if wrong:
        raise WeightFileError(f"{source}: FLAME arrays with the wrong shape: {'; '.join(wrong)}.")
    faces = out["faces"]
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_verts):
        raise WeightFileError(f"{source}: FLAME faces index vertices outside 0..{num_verts - 1}.")
    for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
        idx = out[name]
        if int(idx.min()) < 0 or int(idx.max()) >= num_faces:
            raise WeightFileError(f"{source}: the landmark embedding ({name}) indexes triangles outside 0..{num_faces - 1}.")
    parents = out["parents"].tolist()
    if parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i > 0):
        raise WeightFileError(f"{source}: the FLAME kinematic tree {parents} is not a tree rooted at joint 0.")
    return out
