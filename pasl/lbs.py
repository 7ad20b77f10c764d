"""Pure functions of the FLAME body model: blend shapes, Rodrigues, skinning, landmarks.

Every function takes all the tensors it needs as arguments (no module state), works on
any device/dtype the inputs share, and never modifies its inputs, so each can be tested
on toy tensors without the licensed FLAME file.

The arithmetic follows DECA's ``decalib/models/lbs.py`` and ``FLAME.py`` operation by
operation (same einsum/matmul decomposition and the same order of additions), so the
FLAME layer built on it reproduces the official numbers bit for bit in float32.

Conventions: axis-angle vectors are in radians (direction = axis, norm = angle);
rotation matrices act on column vectors (``x' = R @ x``); FLAME's model space is metres,
+y up, +z towards the viewer, so a positive rotation about +y turns the face to its
left (the viewer's right).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "batch_rigid_transform",
    "batch_rodrigues",
    "blend_shapes",
    "contour_rows_from_yaw",
    "dynamic_contour_rows",
    "lbs",
    "relative_head_rotation",
    "vertices2joints",
    "vertices2landmarks",
    "yaw_from_rotation",
]

RODRIGUES_NORM_OFFSET = 1e-8
"""Added to every component before taking the norm in :func:`batch_rodrigues` (DECA lbs.py),
so the zero rotation gives an exact identity instead of 0/0."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)
"""Dtypes in which the 1e-8 offset underflows (fp16) or angles are too coarse: Rodrigues and the
contour choice run in float32 for them, so zero rotations stay exact and rows match float32."""

CONTOUR_MAX_YAW_DEG = 39
"""Largest |yaw| in whole degrees with its own row in DECA's dynamic-contour table
(``landmark_embedding.npy``: 79 rows = yaw 0..39 then -1..-39)."""
CONTOUR_ROWS = 2 * CONTOUR_MAX_YAW_DEG + 1
"""Number of rows of the dynamic-contour tables (79)."""


def blend_shapes(betas: torch.Tensor, shape_disps: torch.Tensor) -> torch.Tensor:
    """Per-vertex displacement of a linear blend-shape basis.

    Args:
        betas: ``(B, K)`` coefficients.
        shape_disps: ``(V, 3, K)`` basis (one ``(V, 3)`` displacement field per coefficient).

    Returns:
        ``(B, V, 3)``: ``out[b, v, c] = sum_k betas[b, k] * shape_disps[v, c, k]``.
    """
    # b: batch, l: coefficient, m: vertex, k: coordinate
    return torch.einsum("bl,mkl->bmk", [betas, shape_disps])


def vertices2joints(j_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint locations regressed from the vertices.

    Args:
        j_regressor: ``(J, V)`` regression weights.
        vertices: ``(B, V, 3)``.

    Returns:
        ``(B, J, 3)``: ``out[b, j] = sum_v j_regressor[j, v] * vertices[b, v]``.
    """
    # b: batch, i: vertex, k: coordinate, j: joint
    return torch.einsum("bik,ji->bjk", [vertices, j_regressor])


def batch_rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of axis-angle vectors (Rodrigues' formula), DECA's variant.

    ``angle = ||rot_vecs + 1e-8||`` (the offset goes *inside* the norm, per component), then
    ``R = I + sin(angle) K + (1 - cos(angle)) K @ K`` with ``K`` the cross-product matrix of
    ``rot_vecs / angle``. A zero vector gives exactly the identity.

    Args:
        rot_vecs: ``(N, 3)`` axis-angle vectors in radians.

    Returns:
        ``(N, 3, 3)`` rotation matrices, same dtype/device as ``rot_vecs`` (float16/bfloat16
        inputs are computed in float32: 1e-8 underflows to 0 in float16 and 0/0 would give NaN).

    Example:
        >>> batch_rodrigues(torch.zeros(1, 3)).squeeze(0)
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """
    if rot_vecs.dtype in _LOW_PRECISION:
        return batch_rodrigues(rot_vecs.float()).to(rot_vecs.dtype)
    n = rot_vecs.shape[0]
    dtype, device = rot_vecs.dtype, rot_vecs.device
    angle = torch.norm(rot_vecs + RODRIGUES_NORM_OFFSET, dim=1, keepdim=True)  # (N, 1)
    axis = rot_vecs / angle
    cos = torch.unsqueeze(torch.cos(angle), dim=1)  # (N, 1, 1)
    sin = torch.unsqueeze(torch.sin(angle), dim=1)
    ax, ay, az = torch.split(axis, 1, dim=1)  # each (N, 1)
    zeros = torch.zeros((n, 1), dtype=dtype, device=device)
    cross = torch.cat([zeros, -az, ay, az, zeros, -ax, -ay, ax, zeros], dim=1).view((n, 3, 3))
    identity = torch.eye(3, dtype=dtype, device=device).unsqueeze(dim=0)
    return identity + sin * cross + (1 - cos) * torch.bmm(cross, cross)


def _homogeneous(rotations: torch.Tensor, translations: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` and ``(N, 3, 1)`` -> ``(N, 4, 4)`` rigid transforms with last row ``[0, 0, 0, 1]``."""
    return torch.cat([F.pad(rotations, [0, 0, 0, 1]), F.pad(translations, [0, 0, 0, 1], value=1)], dim=2)


def batch_rigid_transform(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics of a joint tree.

    Args:
        rot_mats: ``(B, J, 3, 3)`` local rotation of every joint.
        joints: ``(B, J, 3)`` rest-pose joint locations.
        parents: ``(J,)`` long, parent index of each joint; ``parents[0]`` is the root (-1)
            and every parent precedes its child.

    Returns:
        ``posed_joints (B, J, 3)`` and ``rel_transforms (B, J, 4, 4)``: the world transform
        of each joint with the rest-pose joint location removed, i.e. the transform to
        apply to rest-pose points skinned to that joint.
    """
    num_joints = joints.shape[1]
    joints = torch.unsqueeze(joints, dim=-1)  # (B, J, 3, 1)
    offsets = joints.clone()
    offsets[:, 1:] -= joints[:, parents[1:]]  # each joint relative to its parent
    local = _homogeneous(rot_mats.view(-1, 3, 3), offsets.reshape(-1, 3, 1)).reshape(-1, num_joints, 4, 4)

    parent_list = parents.tolist()
    chain = [local[:, 0]]
    for i in range(1, len(parent_list)):
        chain.append(torch.matmul(chain[parent_list[i]], local[:, i]))
    world = torch.stack(chain, dim=1)  # (B, J, 4, 4)

    posed_joints = world[:, :, :3, 3]
    rest_homogeneous = F.pad(joints, [0, 0, 0, 1])  # (B, J, 4, 1) with w = 0
    rel_transforms = world - F.pad(torch.matmul(world, rest_homogeneous), [3, 0, 0, 0, 0, 0, 0, 0])
    return posed_joints, rel_transforms


def lbs(
    betas: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    j_regressor: torch.Tensor,
    parents: torch.Tensor,
    lbs_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning with shape and pose-corrective blend shapes.

    Args:
        betas: ``(B, K)`` blend-shape coefficients (FLAME: 100 shape then 50 expression).
        pose: ``(B, J*3)`` axis-angle rotation of every joint, radians (FLAME: global, neck,
            jaw, left eye, right eye).
        v_template: ``(B, V, 3)`` rest template (may be an expanded view).
        shapedirs: ``(V, 3, K)`` blend-shape basis.
        posedirs: ``(P, V*3)`` pose-corrective basis, ``P = (J-1)*9``.
        j_regressor: ``(J, V)``.
        parents: ``(J,)`` long kinematic tree (see :func:`batch_rigid_transform`).
        lbs_weights: ``(V, J)`` skinning weights.

    Returns:
        ``vertices (B, V, 3)`` and ``joints (B, J, 3)`` (posed).
    """
    batch = max(betas.shape[0], pose.shape[0])
    dtype, device = betas.dtype, betas.device

    v_shaped = v_template + blend_shapes(betas, shapedirs)
    joints = vertices2joints(j_regressor, v_shaped)

    identity = torch.eye(3, dtype=dtype, device=device)
    rot_mats = batch_rodrigues(pose.view(-1, 3)).view([batch, -1, 3, 3])
    pose_feature = (rot_mats[:, 1:, :, :] - identity).view([batch, -1])  # (B, P): the root is excluded
    pose_offsets = torch.matmul(pose_feature, posedirs).view(batch, -1, 3)
    v_posed = pose_offsets + v_shaped

    posed_joints, rel_transforms = batch_rigid_transform(rot_mats, joints, parents)

    num_joints = j_regressor.shape[0]
    weights = lbs_weights.unsqueeze(dim=0).expand([batch, -1, -1])  # (B, V, J)
    per_vertex = torch.matmul(weights, rel_transforms.view(batch, num_joints, 16)).view(batch, -1, 4, 4)
    ones = torch.ones([batch, v_posed.shape[1], 1], dtype=dtype, device=device)
    v_posed_homogeneous = torch.cat([v_posed, ones], dim=2)
    v_homogeneous = torch.matmul(per_vertex, torch.unsqueeze(v_posed_homogeneous, dim=-1))  # (B, V, 4, 1)
    return v_homogeneous[:, :, :3, 0], posed_joints


def vertices2landmarks(
    vertices: torch.Tensor, faces: torch.Tensor, lmk_faces_idx: torch.Tensor, lmk_bary_coords: torch.Tensor
) -> torch.Tensor:
    """Landmarks as barycentric combinations of mesh triangles.

    Args:
        vertices: ``(B, V, 3)``.
        faces: ``(F, 3)`` long vertex indices of every triangle.
        lmk_faces_idx: ``(B, L)`` long, the triangle of each landmark.
        lmk_bary_coords: ``(B, L, 3)`` barycentric weights on that triangle's three corners.

    Returns:
        ``(B, L, 3)``: ``out[b, l] = sum_f bary[b, l, f] * vertices[b, faces[idx[b, l], f]]``.
    """
    batch, num_verts = vertices.shape[:2]
    corners = torch.index_select(faces, 0, lmk_faces_idx.reshape(-1)).view(batch, -1, 3)  # (B, L, 3)
    corners = corners + torch.arange(batch, dtype=torch.long, device=vertices.device).view(-1, 1, 1) * num_verts
    corner_xyz = vertices.reshape(-1, 3)[corners].view(batch, -1, 3, 3)  # (B, L, corner, xyz)
    # b: batch, l: landmark, f: corner, i: coordinate
    return torch.einsum("blfi,blf->bli", [corner_xyz, lmk_bary_coords])


def relative_head_rotation(full_pose: torch.Tensor, kin_chain: torch.Tensor) -> torch.Tensor:
    """Rotation of the head relative to the model frame, composed along a kinematic chain.

    Args:
        full_pose: ``(B, J*3)`` axis-angle pose, radians.
        kin_chain: ``(C,)`` long joint indices from the head joint up to the root (FLAME:
            ``[neck, global]``).

    Returns:
        ``(B, 3, 3)``: ``R[kin_chain[-1]] @ ... @ R[kin_chain[0]]``.
    """
    batch = full_pose.shape[0]
    chain_pose = torch.index_select(full_pose.view(batch, -1, 3), 1, kin_chain)
    rot_mats = batch_rodrigues(chain_pose.view(-1, 3)).view(batch, -1, 3, 3)
    rel = torch.eye(3, device=full_pose.device, dtype=full_pose.dtype).unsqueeze_(dim=0).expand(batch, -1, -1)
    for idx in range(kin_chain.shape[0]):
        rel = torch.bmm(rot_mats[:, idx], rel)
    return rel


def yaw_from_rotation(rot_mats: torch.Tensor) -> torch.Tensor:
    """Yaw (rotation about +y) of rotation matrices, radians: ``atan2(-R[2,0], sqrt(R[0,0]^2 + R[1,0]^2))``.

    Args:
        rot_mats: ``(B, 3, 3)``.

    Returns:
        ``(B,)`` in ``[-pi/2, pi/2]``; equals ``theta`` for a pure rotation by ``theta`` about +y.
    """
    cos_pitch = torch.sqrt(rot_mats[:, 0, 0] * rot_mats[:, 0, 0] + rot_mats[:, 1, 0] * rot_mats[:, 1, 0])
    return torch.atan2(-rot_mats[:, 2, 0], cos_pitch)


def contour_rows_from_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """Row of DECA's dynamic-contour table for each head yaw.

    ``a = round(min(degrees(yaw), 39))`` (round half to even, as ``torch.round``); the row is
    ``a`` for ``a >= 0``, ``39 - a`` for ``-39 <= a < 0`` (rows 40..78) and ``78`` below -39.

    Args:
        yaw: ``(B,)`` radians.

    Returns:
        ``(B,)`` long in ``[0, 78]``.

    Example:
        >>> contour_rows_from_yaw(torch.deg2rad(torch.tensor([0.0, 20.0, 50.0, -1.0, -39.0, -60.0])))
        tensor([ 0, 20, 39, 40, 78, 78])
    """
    degrees = torch.round(torch.clamp(yaw * 180.0 / math.pi, max=CONTOUR_MAX_YAW_DEG)).to(dtype=torch.long)
    negative = degrees.lt(0).to(dtype=torch.long)
    beyond = degrees.lt(-CONTOUR_MAX_YAW_DEG).to(dtype=torch.long)
    negative_rows = beyond * (CONTOUR_ROWS - 1) + (1 - beyond) * (CONTOUR_MAX_YAW_DEG - degrees)
    return negative * negative_rows + (1 - negative) * degrees


def dynamic_contour_rows(full_pose: torch.Tensor, kin_chain: torch.Tensor) -> torch.Tensor:
    """Dynamic-contour table row chosen from the head yaw of each pose (DECA ``FLAME.py``).

    Args:
        full_pose: ``(B, J*3)`` axis-angle pose, radians.
        kin_chain: ``(C,)`` long, see :func:`relative_head_rotation`.

    Returns:
        ``(B,)`` long rows in ``[0, 78]`` (float16/bfloat16 poses are evaluated in float32).
    """
    if full_pose.dtype in _LOW_PRECISION:
        full_pose = full_pose.float()
    return contour_rows_from_yaw(yaw_from_rotation(relative_head_rotation(full_pose, kin_chain)))
