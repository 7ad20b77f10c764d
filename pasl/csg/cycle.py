"""Cycle consistency of the recomposed shape (the paper's L_cc; absent from the official code).

The paper renders the recomposed shape ``s_rc = (beta_s, psi_r, theta_r)``, re-encodes the
rendering with the shape encoder, and asks that the codes come back: the identity must
still be the source's and the motion still the driver's. Here:

* :func:`render_shape` draws a FLAME mesh the way DECA shows shapes: grey, lit by fixed
  white directional lights, in the 224 crop the encoder reads;
* :func:`cycle_check` re-encodes that drawing and reports per-frame errors in units a
  user can judge (millimetres of mesh, degrees of head rotation);
* :func:`cycle_loss` is the training loss: L1 between the meshes of
  ``(beta_rc, psi_s, theta_s)`` and ``(beta_s, psi_s, theta_s)``, as in the paper figure;
* :func:`refine_codes` optionally nudges the recomposed codes a few gradient steps so
  their re-encoding lands closer to the target (never worse; off by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry import DECA_CROP_SIZE
from ..raster import rasterize
from ..render import orthographic_project
from .codes import FlameCodes

GREY_ALBEDO = 180.0 / 255.0
"""DECA shows shapes in this grey."""
LIGHT_DIRECTIONS = ((-1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (-1.0, -1.0, 1.0), (1.0, -1.0, 1.0), (0.0, 0.0, 1.0))
"""Five white directional lights in front of the face (FLAME space: +y up, +z to the
camera), the set-up DECA uses for its shape images."""
LIGHT_INTENSITY = 1.7 / len(LIGHT_DIRECTIONS)
DEPTH_OFFSET = 10.0
"""Shift that keeps every vertex in front of the rasteriser's image plane (z >= 0)."""
METRES_TO_MM = 1000.0


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Args:
        vertices: ``(B, V, 3)``.
        faces: ``(F, 3)`` long; FLAME's winding makes ``(v1 - v0) x (v2 - v0)`` point outwards.

    Returns:
        ``(B, V, 3)`` unit normals (zero-length normals of unused vertices stay zero).
    """
    corners = vertices[:, faces]  # (B, F, 3 corners, xyz)
    face_normals = torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals = normals.index_add(1, faces[:, corner], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def render_shape(vertices: torch.Tensor, cam: torch.Tensor, faces: torch.Tensor, image_size: int = DECA_CROP_SIZE) -> torch.Tensor:
    """Grey shaded rendering of FLAME meshes in the DECA crop, as the encoder would see it.

    Args:
        vertices: ``(B, V, 3)`` FLAME-space vertices (metres).
        cam: ``(B, 3)`` DECA orthographic camera ``[s, tx, ty]``.
        faces: ``(F, 3)`` long topology.
        image_size: output side (224 = DECA crop).

    Returns:
        ``(B, 3, H, W)`` in [0, 1]; background black. Differentiable w.r.t. ``vertices``
        and ``cam`` through the barycentrics and the shading (not the visibility).
    """
    projected = orthographic_project(vertices, cam)  # DECA NDC: x right, y down, smaller z nearer
    depth = projected[..., 2:] - projected[..., 2:].amin(dim=1, keepdim=True) + DEPTH_OFFSET
    screen = torch.cat([-projected[..., :2], depth], dim=-1)  # pytorch3d NDC: x left, y up
    fragments = rasterize(screen, faces, image_size)

    lights = torch.tensor(LIGHT_DIRECTIONS, dtype=vertices.dtype, device=vertices.device)
    lights = torch.nn.functional.normalize(lights, dim=-1)
    shading = (vertex_normals(vertices, faces) @ lights.T).clamp_min(0).sum(-1) * LIGHT_INTENSITY  # (B, V)

    batch, height, width = fragments.pix_to_face.shape[:3]
    covered = fragments.pix_to_face[..., 0] >= 0  # (B, H, W)
    face_index = fragments.pix_to_face[..., 0].clamp_min(0) % faces.shape[0]
    corner_vertices = faces[face_index]  # (B, H, W, 3)
    corner_shading = torch.gather(shading, 1, corner_vertices.view(batch, -1)).view(batch, height, width, 3)
    value = (corner_shading * fragments.bary_coords[..., 0, :].to(shading.dtype)).sum(-1)
    image = torch.where(covered, (value * GREY_ALBEDO).clamp(0, 1), torch.zeros_like(value))
    return image.unsqueeze(1).expand(-1, 3, -1, -1)


def rotation_angle_deg(axis_angle_a: torch.Tensor, axis_angle_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle in degrees between two batches of axis-angle rotations ``(B, 3)``."""
    from ..lbs import batch_rodrigues

    relative = batch_rodrigues(axis_angle_a).transpose(1, 2) @ batch_rodrigues(axis_angle_b)
    cosine = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cosine))


@dataclass(frozen=True)
class CycleReport:
    """Per-frame cycle errors of recomposed codes (all ``(B,)``).

    Attributes:
        shape_mm: mean vertex distance between the neutral heads of the re-encoded and
            the intended identity (FLAME at zero expression and pose), in millimetres.
        expression_mm: mean vertex distance between the re-encoded and intended
            expressions (incl. jaw) on the mean head, in millimetres.
        pose_deg: angle between the re-encoded and intended head rotations, in degrees.
        recoded: the codes read back from the rendering.
    """

    shape_mm: torch.Tensor
    expression_mm: torch.Tensor
    pose_deg: torch.Tensor
    recoded: FlameCodes

    @classmethod
    def cat(cls, reports: "list[CycleReport]") -> "CycleReport":
        return cls(
            torch.cat([r.shape_mm for r in reports]),
            torch.cat([r.expression_mm for r in reports]),
            torch.cat([r.pose_deg for r in reports]),
            FlameCodes.cat([r.recoded for r in reports]),
        )

    def without(self, skipped: torch.Tensor) -> "CycleReport":
        """The same report with NaN errors where ``skipped`` (``(B,)`` bool), e.g. frames without a face."""
        skipped = skipped.to(self.shape_mm.device).bool()
        nan = lambda t: t.masked_fill(skipped, float("nan"))  # noqa: E731
        return CycleReport(nan(self.shape_mm), nan(self.expression_mm), nan(self.pose_deg), self.recoded)

    def summary(self) -> str:
        counted = int((~self.shape_mm.isnan()).sum())
        if counted == 0:
            return f"cycle error: no frame to measure (0 of {self.shape_mm.numel()} frames have a face)"
        return (
            f"cycle error: shape {self.shape_mm.nanmean():.2f} mm, expression {self.expression_mm.nanmean():.2f} mm, "
            f"pose {self.pose_deg.nanmean():.2f} deg (mean of {counted} frames)"
        )


def _neutral_zeros(codes: FlameCodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.zeros_like(codes.shape), torch.zeros_like(codes.exp), torch.zeros_like(codes.pose)


def cycle_check(codes: FlameCodes, encoder, flame, faces: torch.Tensor) -> CycleReport:
    """Render ``codes`` (recomposed), re-encode them, and measure how far they came back.

    Args:
        codes: the recomposed codes (identity of the source, motion of the driver).
        encoder: a :class:`pasl.csg.encoder.FlameEncoder` (or anything mapping
            ``(B, 3, 224, 224)`` images to :class:`FlameCodes`).
        flame: a :class:`pasl.flame.FLAME` layer.
        faces: ``(F, 3)`` long topology.
    """
    vertices = flame(codes.shape, codes.exp, codes.pose).vertices
    recoded = encoder(render_shape(vertices, codes.cam, faces))
    zero_shape, zero_exp, zero_pose = _neutral_zeros(codes)
    jaw_only = lambda pose: torch.cat([torch.zeros_like(pose[:, :3]), pose[:, 3:]], 1)  # noqa: E731
    # each side through FLAME on its own (not one concatenated batch): BLAS may round the rows of
    # one batch differently, and a fixed point must come back with exactly zero error
    identity = [flame(shape, zero_exp, zero_pose).vertices for shape in (codes.shape, recoded.shape)]
    motion = [flame(zero_shape, c.exp, jaw_only(c.pose)).vertices for c in (codes, recoded)]
    distance = lambda pair: (pair[0] - pair[1]).norm(dim=-1).mean(-1) * METRES_TO_MM  # noqa: E731
    return CycleReport(
        shape_mm=distance(identity),
        expression_mm=distance(motion),
        pose_deg=rotation_angle_deg(codes.pose[:, :3], recoded.pose[:, :3]),
        recoded=recoded,
    )


def cycle_loss(source: FlameCodes, recoded: FlameCodes, flame) -> torch.Tensor:
    """The paper's L_cc: mean L1 between the meshes ``s_o = (beta_rc, psi_s, theta_s)`` and
    ``s_s = (beta_s, psi_s, theta_s)``, where ``beta_rc`` was re-encoded from the
    recomposed rendering. Differentiable; a scalar."""
    both = flame(
        torch.cat([recoded.shape, source.shape]), torch.cat([source.exp, source.exp]), torch.cat([source.pose, source.pose])
    ).vertices
    batch = source.batch_size
    return (both[:batch] - both[batch:]).abs().mean()


REFINED_FIELDS = ("shape", "exp", "pose")
BACKTRACKING_TRIES = 4


def _recoding_error(codes: FlameCodes, target: FlameCodes, encoder, flame, faces: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the re-encoding of ``codes`` and ``target`` (a scalar)."""
    recoded = encoder(render_shape(flame(codes.shape, codes.exp, codes.pose).vertices, codes.cam, faces))
    return sum((getattr(recoded, k) - getattr(target, k)).abs().mean() for k in REFINED_FIELDS)


def refine_codes(
    codes: FlameCodes, encoder, flame, faces: torch.Tensor, steps: int = 3, step_size: float = 0.01
) -> FlameCodes:
    """Nudge ``shape``/``exp``/``pose`` so that re-encoding their rendering returns ``codes``.

    Gradient descent with backtracking: each step moves ``step_size`` (Euclidean norm in
    code space) against the gradient of the re-encoding error, and is only taken if the
    error really drops; otherwise the step is quartered (up to 4 times) and, failing that,
    the refinement stops. So the result is never worse than the input. Backtracking is
    needed because the rasteriser's gradient ignores visibility changes (as pytorch3d's
    hard rasteriser does): it is right for small moves only.

    Gradients are switched on locally, so this also works for callers inside
    ``torch.inference_mode`` such as ComfyUI. Returns new codes; ``codes`` is unchanged.
    """
    if steps <= 0:
        return codes
    with torch.inference_mode(False), torch.enable_grad():
        target = FlameCodes(**{k: v.clone() for k, v in codes.items()})
        current = target
        for _ in range(steps):
            variables = {k: getattr(current, k).detach().requires_grad_(True) for k in REFINED_FIELDS}
            error = _recoding_error(current.replace(**variables), target, encoder, flame, faces)
            gradients = torch.autograd.grad(error, list(variables.values()))
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in gradients)).item()
            if norm == 0:
                break
            accepted = False
            for _ in range(BACKTRACKING_TRIES):
                trial = current.replace(
                    **{k: (v - step_size / norm * g).detach() for (k, v), g in zip(variables.items(), gradients)}
                )
                with torch.no_grad():
                    if _recoding_error(trial, target, encoder, flame, faces) < error:
                        current, accepted = trial, True
                        break
                step_size /= 4
            if not accepted:
                break
    return current
