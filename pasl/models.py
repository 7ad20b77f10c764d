"""All PASL networks and assets of one run, found by file name and loaded once.

The pipeline, the CLI and the ComfyUI loader node share :func:`load_models`, so the same
files are found (and the same advice given when one is missing) everywhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .catalog import DEMO_STEP, check_weights, entry, find, resolve_weights, where_to_get
from .errors import MissingWeightError

__all__ = ["DEMO_STEP", "PASLModels", "check_weights", "load_models"]

log = logging.getLogger(__name__)


@dataclass
class PASLModels:
    """Networks on ``device``. The AEG runs in ``dtype``; DECA and FLAME stay float32 as in
    the official code (their codes feed a rasteriser, where fp16 would move pixels).

    ``shape_encoder``/``flame``/``faces`` are ``None`` when their files were not found:
    the generator then needs maps from elsewhere (see :meth:`require_shape_stage`).
    """

    aeg: torch.nn.Module
    shape_encoder: torch.nn.Module | None
    flame: torch.nn.Module | None
    faces: torch.Tensor | None
    device: torch.device
    dtype: torch.dtype
    missing: tuple[str, ...] = ()
    pae: torch.nn.Module | None = None
    """:class:`pasl.pae.PoseAdaptedEncoders` (float32), when identity encoders were asked for and found."""

    def require_shape_stage(self) -> None:
        if self.shape_encoder is None or self.flame is None or self.faces is None:
            advice = " ".join(f"{entry(k).purpose} ({' or '.join(entry(k).patterns)}): {where_to_get(k)}" for k in self.missing)
            raise MissingWeightError(f"the shape stage (DECA + FLAME) needs files that were not found. {advice}")

    def require_identity(self) -> None:
        if self.pae is None:
            raise MissingWeightError(
                "identity scores need the PAE networks (POE/FF ... POE/PP/Backbone_IR_50_Epoch_*.pth) or an ArcFace "
                f"IR-50, loaded with identity='auto'. {where_to_get('pae')}"
            )


def _load_identity(identity: str | Path | None, folders: list[Path], device: torch.device):
    from .pae import PAIR_KINDS, find_pae_files, load_pae

    if identity is None or identity == "none":
        return None
    if identity not in ("auto", "pae"):
        return load_pae(arcface=identity, device=device)
    if identity == "pae" or len(find_pae_files(folders)) == len(PAIR_KINDS):
        return load_pae(folders, device=device)
    arcface = find("arcface", folders)
    if arcface:
        return load_pae(arcface=arcface[0], device=device)
    log.info("identity='auto': no PAE or ArcFace files found, identity scores are off")
    return None


def auto_device(name: str) -> torch.device:
    """``"auto"``: CUDA, else Apple's MPS, else the CPU; any other name as given (``"cpu"``, ``"cuda:1"``)."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


def load_models(
    folders: list[str | Path] | None = None,
    *,
    aeg: str | Path | None = None,
    deca: str | Path | None = None,
    flame: str | Path | None = None,
    landmark_embedding: str | Path | None = None,
    head_template: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    require_shape_stage: bool = True,
    identity: str | Path | None = None,
) -> PASLModels:
    """Load the AEG, DECA's encoder, FLAME and the rendering topology.

    Each file may be given explicitly; otherwise it is found by name in ``folders``,
    ``$PASL_WEIGHTS`` and the default folders (:func:`pasl.catalog.search_folders`); an official
    pickle gives way to its verified ``.safetensors`` twin (:func:`pasl.catalog.prefer_twins`).
    Every file is resolved (:func:`pasl.catalog.resolve_weights`) and all missing ones reported before anything is loaded.

    ``identity`` loads identity encoders for :mod:`pasl.identity`: ``None`` (default) none,
    ``"auto"`` the six PAE networks when all are found, else an ArcFace IR-50 when found,
    else none; ``"pae"`` the six PAE networks or an error; a path: that ArcFace IR-50 file.

    Raises:
        MissingWeightError: the AEG is missing, or (with ``require_shape_stage``) a DECA or
            FLAME file is, or ``identity="pae"`` and a PAE file is; the message names every
            missing file and where to get it.
    """
    from .aeg_files import load_aeg
    from .csg.encoder import load_shape_encoder
    from .flame_files import load_flame, load_head_template

    files = resolve_weights(folders, aeg=aeg, deca=deca, flame=flame, landmark_embedding=landmark_embedding,
                            head_template=head_template, require_shape_stage=require_shape_stage, identity=identity)
    files.require()  # every missing file at once, before loading
    searched, device, missing = files.searched, torch.device(device), files.shape_missing
    aeg_path, deca_path, flame_path, embedding_path, template_path = (
        files.aeg, files.deca, files.flame, files.landmark_embedding, files.head_template)
    models = PASLModels(
        aeg=load_aeg(aeg_path, device=device, dtype=dtype),
        shape_encoder=load_shape_encoder(deca_path, device=device) if deca_path else None,
        flame=load_flame(flame_path, embedding_path).to(device) if flame_path and "landmark_embedding" not in missing else None,
        faces=load_head_template(template_path).to(device) if template_path else None,
        device=device,
        dtype=dtype,
        missing=missing,
        pae=_load_identity(identity, searched, device),
    )
    if require_shape_stage:
        models.require_shape_stage()
    log.info("PASL models: AEG %s, DECA %s, FLAME %s, topology %s, identity %s", aeg_path, deca_path, flame_path, template_path,
             "off" if models.pae is None else ("ArcFace" if models.pae.single else "PAE"))
    return models
