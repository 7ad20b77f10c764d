"""Every file PASL can use: what it is for, how to recognise it, where to get it.

One table, read by error messages, ``python -m pasl doctor`` and ``install.py``, so the
advice a user gets is the same everywhere.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

PACK_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
WEIGHT_FOLDERS = "ComfyUI/models/pasl/ (inside ComfyUI) or the pack's weights/ folder"
ENV_WEIGHTS = "PASL_WEIGHTS"
"""Extra weight folders, ``os.pathsep``-separated."""


@dataclass(frozen=True)
class WeightFile:
    key: str
    patterns: tuple[str, ...]
    purpose: str
    source: str
    licence: str
    required: bool = True


CATALOG: tuple[WeightFile, ...] = (
    WeightFile(
        "aeg",
        ("*_nets_ema.ckpt", "*_nets.ckpt", "pasl_aeg*.safetensors"),
        "AEG generator + style encoder (204000 = demo model)",
        "https://drive.google.com/drive/folders/1yHrOIKB0cttrDxHeAN5Yh8KOjGy3CNHy (demo); "
        "test models via https://github.com/AvLab-CV/PASL#validation-pretrained-models",
        "authors' terms, non-commercial",
    ),
    WeightFile(
        "deca",
        ("deca_model.tar", "pasl_deca*.safetensors"),
        "CSG shape encoder (DECA E_flame)",
        "https://drive.google.com/file/d/1oMwg5xzkgPkYiZT_ZUCwk7CdttEbubkD/view (PASL 'DECA model'), or https://github.com/yfeng95/DECA",
        "DECA licence, non-commercial",
    ),
    WeightFile(
        "flame",
        ("generic_model.pkl", "pasl_flame*.npz", "pasl_flame*.safetensors"),
        "FLAME 2020 head model",
        "https://flame.is.tue.mpg.de (free registration; not redistributable)",
        "FLAME licence, non-commercial",
    ),
    WeightFile(
        "landmark_embedding",
        ("landmark_embedding.npy",),
        "FLAME 68-landmark embedding",
        "https://github.com/yfeng95/DECA/tree/master/data",
        "DECA licence",
    ),
    WeightFile(
        "head_template",
        ("head_template.obj",),
        "FLAME mesh topology for rendering",
        "https://github.com/yfeng95/DECA/tree/master/data",
        "DECA licence",
    ),
    WeightFile(
        "fan",
        ("2DFAN4-11f355bf06.pth.tar", "s3fd-619a316812.pth"),
        "FAN landmarks + S3FD detector (optional 'fan' alignment backend)",
        "https://www.adrianbulat.com/downloads/python-fan/ (put both files in a face_alignment/ sub-folder)",
        "BSD-3 (face-alignment)",
        required=False,
    ),
    WeightFile(
        "pae",
        ("Backbone_IR_50_Epoch_*.pth",),
        "PAE identity encoders (identity score; keep the POE/FF ... POE/PP folders)",
        "https://drive.google.com/file/d/1zU1YTRstgrdJ7hwjl9CVjgFnNAyNFLZS/view",
        "authors' terms",
        required=False,
    ),
    WeightFile(
        "arcface",
        ("backbone_ir50_ms1m_epoch*.pth", "Backbone_IR_50_MS1M*.pth"),
        "ArcFace IR-50 (one identity network for every pose; ArcFace-CSIM)",
        "face.evoLVe model zoo, IR-50 MS1M: https://github.com/ZhaoJ9014/face.evoLVe#model-zoo",
        "MIT code; weights trained on MS-Celeb-1M, research use",
        required=False,
    ),
)


def entry(key: str) -> WeightFile:
    for item in CATALOG:
        if item.key == key:
            return item
    raise KeyError(f"unknown weight kind {key!r}; known: {[c.key for c in CATALOG]}")


def where_to_get(key: str) -> str:
    """The sentence every 'file missing' message ends with."""
    item = entry(key)
    return f"Put it in {WEIGHT_FOLDERS}; get it from {item.source} (licence: {item.licence})."


def search_folders(extra: list[str | Path] | None = None) -> list[Path]:
    """Folders searched outside ComfyUI: ``extra``, then ``$PASL_WEIGHTS``, then the pack's ``weights/``."""
    folders = [Path(p) for p in (extra or [])]
    folders += [Path(p) for p in os.environ.get(ENV_WEIGHTS, "").split(os.pathsep) if p]
    folders.append(PACK_WEIGHTS)
    return folders


def find(key: str, folders: list[Path]) -> list[Path]:
    """Files of kind ``key`` under ``folders`` (recursive), in folder order."""
    patterns = entry(key).patterns
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in patterns):
                found.append(path)
    return found
