"""Does the result still look like the source? Pose-adapted identity scores of faces.

Glue between the PAE networks (:mod:`pasl.pae`) and the shape stage, which gives every
face its yaw: the paper's PAE-CSIM picks its network by the yaws of the two faces it
compares (pasl-reference §6), measured here on the faces themselves with DECA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .imageops import resize_square
from .models import PASLModels
from .pae import IdentityReference, Protocol, cosine_similarity, head_yaw_degrees, identity_reference, pair_kind, pose_bin
from .shape import ALIGNED_SIZE, encode_shapes


def face_yaw(
    models: PASLModels, crops: torch.Tensor, landmarks_crop: torch.Tensor | None = None, has_face: torch.Tensor | None = None
) -> torch.Tensor:
    """Head yaw in degrees of aligned face crops ``(B, 3, H, W)``, from DECA's pose code.

    Without landmarks DECA crops around the whole image (its no-face fallback), which is
    what an aligned crop needs anyway.
    """
    models.require_shape_stage()
    crops = resize_square(crops.float(), ALIGNED_SIZE)
    count = crops.shape[0]
    if landmarks_crop is None:
        landmarks_crop = torch.zeros(count, 68, 2)
        has_face = torch.zeros(count, dtype=torch.bool)
    shapes = encode_shapes(models.shape_encoder, crops.to(models.device), landmarks_crop.to(models.device), has_face)
    return head_yaw_degrees(shapes.codes.pose).cpu()


def encode_identity(
    models: PASLModels, crops: torch.Tensor, landmarks_crop: torch.Tensor | None = None, has_face: torch.Tensor | None = None
) -> IdentityReference:
    """The ``PASL_IDENTITY`` of source crops: their yaw and an embedding by every PAE network."""
    models.require_identity()
    return identity_reference(models.pae, crops.to(models.device), face_yaw(models, crops, landmarks_crop, has_face))


@dataclass(frozen=True)
class IdentityScores:
    """Per-face identity similarity to the source.

    Attributes:
        csim: ``(B,)`` cosine similarity in [-1, 1]; NaN for skipped (blank) faces.
        yaw: ``(B,)`` measured yaw of each face, degrees.
        kinds: the PAE network that judged each face (``None`` where skipped).
        source_yaw: the source's yaw, degrees.
    """

    csim: torch.Tensor
    yaw: torch.Tensor
    kinds: list[str | None]
    source_yaw: float

    @classmethod
    def cat(cls, parts: "list[IdentityScores]") -> "IdentityScores":
        """Scores of consecutive chunks as one (the source is the same in all)."""
        if not parts:
            raise ValueError("IdentityScores.cat needs at least one part")
        kinds = [k for p in parts for k in p.kinds]
        return cls(torch.cat([p.csim for p in parts]), torch.cat([p.yaw for p in parts]), kinds, parts[0].source_yaw)

    @property
    def mean(self) -> float:
        """Mean CSIM over the scored faces (NaN when none was)."""
        scored = self.csim[~self.csim.isnan()]
        return float(scored.mean()) if scored.numel() else math.nan

    def summary(self) -> str:
        lines = [
            f"identity (PAE-CSIM to the source, pose bin {pose_bin(self.source_yaw)}, yaw {self.source_yaw:+.1f}): "
            f"mean {self.mean:.4f} over {int((~self.csim.isnan()).sum())} of {len(self.kinds)} faces"
        ]
        for i, (value, yaw, kind) in enumerate(zip(self.csim.tolist(), self.yaw.tolist(), self.kinds)):
            lines.append(f"  face {i}: " + ("no face, skipped" if kind is None else f"{value:.4f} ({kind}, yaw {yaw:+.1f})"))
        return "\n".join(lines)


def is_blank(faces: torch.Tensor) -> torch.Tensor:
    """``(B,)`` True for all-black faces: PASL Generate's output for frames without a face."""
    return faces.reshape(faces.shape[0], -1).amax(dim=1) <= 0


def score_identity(
    models: PASLModels,
    reference: IdentityReference,
    faces: torch.Tensor,
    protocol: Protocol = "fixed",
    source_index: int = 0,
    skip: torch.Tensor | None = None,
) -> IdentityScores:
    """PAE-CSIM between face crops ``(B, 3, H, W)`` (e.g. generated faces) and one source face.

    The network of each pair follows the two measured yaws (:func:`pasl.pae.pair_kind`).
    With ``protocol="fixed"`` the source's stored embeddings are reused; ``"official"``
    re-embeds both faces with ``mean_pae_csim.py``'s input recipe and its PP->SS routing.
    Blank faces, and those where ``skip`` (``(B,)`` bool) is True, get NaN.
    """
    models.require_identity()
    count = faces.shape[0]
    csim = torch.full((count,), math.nan)
    yaw = torch.full((count,), math.nan)
    kinds: list[str | None] = [None] * count
    source_yaw = float(reference.yaw[source_index])
    ignored = is_blank(faces) if skip is None else is_blank(faces) | skip.cpu().bool()
    keep = (~ignored).nonzero().flatten()
    if keep.numel():
        picked = faces[keep].float()
        yaw[keep] = face_yaw(models, picked)
        picked_kinds = [pair_kind(source_yaw, y) for y in yaw[keep].tolist()]
        if protocol == "fixed":  # stored with the source
            by_kind = {k: reference.embeddings[k][source_index : source_index + 1] for k in set(picked_kinds)}
        else:  # the source again through the official recipe, once per pair kind used
            source_face = reference.faces[source_index : source_index + 1].to(models.device)
            by_kind = {k: models.pae.embed(source_face, [k], protocol).cpu() for k in set(picked_kinds)}
        embedded = models.pae.embed(picked.to(models.device), picked_kinds, protocol).cpu()
        csim[keep] = cosine_similarity(embedded, torch.cat([by_kind[k] for k in picked_kinds]))
        for i, kind in zip(keep.tolist(), picked_kinds):
            kinds[i] = kind
    return IdentityScores(csim, yaw, kinds, source_yaw)
