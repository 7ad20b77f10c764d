"""Head rotations in the three forms an editor needs: FLAME's axis-angle, matrices, and degrees a user types.

FLAME (and DECA's ``pose[:, :3]``) stores the head's rotation as an axis-angle vector in radians;
users think in yaw / pitch / roll degrees; interpolation wants unit quaternions (slerp). The angles
follow the decomposition ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` so that :func:`matrix_to_angles`
gives exactly the yaw that :func:`pasl.lbs.yaw_from_rotation` (and with it the PAE encoder choice
and the dynamic jaw contour) reads: ``yaw = asin(-R[2, 0])``. In FLAME's camera frame (x right,
y up, z towards the camera) positive yaw turns the face towards the image's right, positive pitch
turns it down (the nose tip moves down), positive roll tilts the head counter-clockwise as seen in the image.

Everything is batched, differentiable and in the input's dtype (float64 where exactness matters:
the tests check round trips to 1e-12).
"""

from __future__ import annotations

import torch

from .lbs import batch_rodrigues

SMALL_ANGLE = 1e-7
"""Below this many radians the axis of a rotation is undefined; the axis-angle vector is then ~0."""


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` axis-angle (radians) -> ``(B, 3, 3)``: DECA's Rodrigues, the one FLAME itself applies."""
    return batch_rodrigues(rotvec)


def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` unit quaternions ``(w, x, y, z)`` -> ``(B, 3, 3)`` rotation matrices."""
    w, x, y, z = (quat / quat.norm(dim=-1, keepdim=True)).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*quat.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` rotations -> ``(B, 4)`` unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Shepperd's method: of the four ways to read a quaternion off a matrix, take the one with the
    largest denominator, so it stays exact near 180 degrees where the trace formula breaks down.
    """
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = (row.unbind(-1) for row in matrix.unbind(-2))
    trace = m00 + m11 + m22
    diagonal = torch.stack([1 + trace, 1 + 2 * m00 - trace, 1 + 2 * m11 - trace, 1 + 2 * m22 - trace], -1)
    candidates = torch.stack([  # candidate k is 4 * q_k * q
        torch.stack([diagonal[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, diagonal[..., 1], m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, diagonal[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, diagonal[..., 3]], -1),
    ], dim=-2)
    best = diagonal.argmax(-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = chosen / chosen.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` quaternions -> ``(B, 3)`` axis-angle with angle in ``[0, pi]``."""
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    vector = quat[..., 1:]
    sin_half = vector.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, quat[..., :1])
    # angle / sin(angle / 2) -> 2 as the angle -> 0 (first terms of its series keep full precision)
    safe = sin_half > SMALL_ANGLE
    factor = torch.where(safe, angle / sin_half.clamp(min=SMALL_ANGLE), 2 + angle * angle / 12)
    return vector * factor


def axis_angle_to_quaternion(rotvec: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` axis-angle -> ``(B, 4)`` unit quaternions ``(w, x, y, z)``."""
    angle = rotvec.norm(dim=-1, keepdim=True)
    half = angle / 2
    safe = angle > SMALL_ANGLE
    factor = torch.where(safe, torch.sin(half) / angle.clamp(min=SMALL_ANGLE), 0.5 - angle * angle / 48)
    return torch.cat([torch.cos(half), rotvec * factor], dim=-1)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` -> ``(B, 3)`` axis-angle, exact up to 180 degrees (through a quaternion)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def _axis_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


def angles_to_matrix(angles_deg: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` ``[yaw, pitch, roll]`` in degrees -> ``(B, 3, 3)`` ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``.

    Example:
        >>> matrix = angles_to_matrix(torch.tensor([[60.0, 0.0, 0.0]], dtype=torch.float64))
        >>> round(float(torch.rad2deg(torch.asin(-matrix[0, 2, 0]))), 6)
        60.0
    """
    yaw, pitch, roll = torch.deg2rad(angles_deg).unbind(-1)
    return _axis_rotation(roll, 2) @ _axis_rotation(yaw, 1) @ _axis_rotation(pitch, 0)


def matrix_to_angles(matrix: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` -> ``(B, 3)`` ``[yaw, pitch, roll]`` degrees, the inverse of :func:`angles_to_matrix`
    for ``|yaw| < 90`` (at exactly 90 degrees pitch and roll share one axis: roll is reported 0)."""
    yaw = torch.atan2(-matrix[..., 2, 0], torch.sqrt(matrix[..., 0, 0] ** 2 + matrix[..., 1, 0] ** 2))
    gimbal = torch.cos(yaw).abs() < 1e-9
    pitch = torch.where(gimbal, torch.atan2(-matrix[..., 1, 2], matrix[..., 1, 1]), torch.atan2(matrix[..., 2, 1], matrix[..., 2, 2]))
    roll = torch.where(gimbal, torch.zeros_like(yaw), torch.atan2(matrix[..., 1, 0], matrix[..., 0, 0]))
    return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


def axis_angle_to_angles(rotvec: torch.Tensor) -> torch.Tensor:
    """FLAME's head rotation ``(B, 3)`` -> ``[yaw, pitch, roll]`` degrees."""
    return matrix_to_angles(quaternion_to_matrix(axis_angle_to_quaternion(rotvec)))


def angles_to_axis_angle(angles_deg: torch.Tensor) -> torch.Tensor:
    """``[yaw, pitch, roll]`` degrees -> FLAME's axis-angle ``(B, 3)`` radians."""
    return matrix_to_axis_angle(angles_to_matrix(angles_deg))


def slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation of unit quaternions ``(..., 4)`` along the shorter arc; ``t`` in [0, 1]
    (values outside extrapolate). Exactly ``q0`` at ``t = 0`` and ``q1`` (up to sign) at ``t = 1``."""
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6  # nearly the same rotation: linear blend, then renormalise
    t = t.reshape(t.shape + (1,) * (q0.dim() - t.dim())) if t.dim() < q0.dim() else t
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * theta) / sin_theta.clamp(min=1e-12))
    w1 = torch.where(near, t, torch.sin(t * theta) / sin_theta.clamp(min=1e-12))
    out = w0 * q0 + w1 * q1
    return out / out.norm(dim=-1, keepdim=True)


def scale_rotation(rotvec: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
    """The rotation ``strength`` times as far about the same axis (0: none, 1: itself, 2: twice).

    On axis-angle this is just multiplication: the geodesic from the identity."""
    return rotvec * torch.as_tensor(strength, dtype=rotvec.dtype, device=rotvec.device)


__all__ = [
    "angles_to_axis_angle", "angles_to_matrix", "axis_angle_to_angles", "axis_angle_to_matrix", "axis_angle_to_quaternion",
    "matrix_to_angles", "matrix_to_axis_angle", "matrix_to_quaternion", "quaternion_to_axis_angle", "quaternion_to_matrix",
    "scale_rotation", "slerp",
]

