"""Does the result still look like the source? Pose-adapted identity scores of faces.

Glue between the PAE networks (:mod:`pasl.pae`) and the shape stage, which gives every
face its yaw: the paper's PAE-CSIM picks its network by the yaws of the two faces it
compares (``docs/official-code.md`` §6.2), measured here on the faces themselves with DECA
(:func:`pasl.shape.face_yaw` of :func:`pasl.shape.shape_codes`, the one definition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .geometry import ALIGNED_SIZE
from .imageops import resize_square
from .models import PASLModels
from .pae import IdentityReference, Protocol, cosine_similarity, identity_reference, pair_kind, pose_bin
from .shape import ShapeCodes, face_yaw, shape_codes


def encode_identity(models: PASLModels, crops: torch.Tensor, shapes: ShapeCodes) -> IdentityReference:
    """The ``PASL_IDENTITY`` of source crops ``(B, 3, H, W)``: an embedding by every PAE network,
    and the yaw of their :func:`pasl.shape.shape_codes` (read once, by the caller, for both uses)."""
    models.require_identity()
    return identity_reference(models.pae, crops.to(models.device), face_yaw(shapes))


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
    *,
    crop_landmarks: str = "mapped",
    detector=None,
) -> IdentityScores:
    """PAE-CSIM between face crops ``(B, 3, H, W)`` (e.g. generated faces) and one source face.

    The network of each pair follows the two measured yaws (:func:`pasl.pae.pair_kind`).
    With ``protocol="fixed"`` the source's stored embeddings are reused; ``"official"``
    re-embeds both faces with ``mean_pae_csim.py``'s input recipe and its PP->SS routing.
    Blank faces, and those where ``skip`` (``(B,)`` bool) is True, get NaN. Each face's yaw
    is :func:`pasl.shape.face_yaw` of its shape codes; generated faces come without
    landmarks, so DECA crops the whole face crop unless ``crop_landmarks="redetect"`` with a
    ``detector`` asks for the official landmark pass on them.
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
        models.require_shape_stage()
        crops = resize_square(picked, ALIGNED_SIZE).to(models.device)
        yaw[keep] = face_yaw(shape_codes(models.shape_encoder, crops, crop_landmarks=crop_landmarks, detector=detector))
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
