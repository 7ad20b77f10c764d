"""Is a downloaded file the weight file it should be? Its checksum where one is known, then a strict load.

Each kind is opened by the project's own loader, exactly as a run opens it (pickles with
``weights_only=True``, FLAME's chumpy pickle through the allow-listed unpickler, every network
with strict keys), so a file that passes here loads later; a truncated download, an HTML page
saved under a weight's name or another checkpoint fails here and is not kept.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import WeightFileError
from .transfer import sha256_of


def check_digest(path: Path, expected: str | None) -> str:
    """The file's sha256; :class:`WeightFileError` when it does not start with ``expected``."""
    digest = sha256_of(path)
    if expected and not digest.startswith(expected):
        raise WeightFileError(f"its sha256 is {digest[:12]}…, expected {expected[:12]}…")
    return digest


STRICT_LOADERS = {
    "aeg": ("..aeg_files", "load_aeg"),
    "deca": ("..csg.encoder", "load_shape_encoder"),
    "flame": ("..flame_files", "read_generic_model"),  # the generic_model.pkl half of read_flame_arrays
    "landmark_embedding": ("..flame_files", "read_landmark_embedding"),
    "head_template": ("..flame_files", "read_head_template"),
    "pae": ("..pae", "load_ir50"),
    "fid_paper": ("..eval.weights", "read_fid_paper"),
    "fid_standard": ("..eval.weights", "read_fid_standard"),
    "lpips_alexnet": ("..eval.weights", "read_alexnet"),
    "lpips": ("..eval.lpips", "read_lpips_weights"),
    "vgg19": ("..train.vgg", "read_vgg19"),
}
"""Catalogue kind -> (module, function) of the loader a run uses; imported only when a file is checked."""


def strict_load(key: str, path: Path, name: str | None = None) -> None:
    """Load ``path`` (the file ``name`` once in place) as catalogue kind ``key`` with the loader a run uses;
    raise what that loader raises."""
    if key == "fan":
        from ..align.fan import FAN, S3FD, S3FD_FILE, load_network

        s3fd = (name or path.name).startswith(S3FD_FILE.split("-")[0])
        load_network(S3FD() if s3fd else FAN(), path, "S3FD" if s3fd else "2D-FAN-4")
        return
    if key not in STRICT_LOADERS:
        raise ValueError(f"no check for weight kind {key!r}")
    module, function = STRICT_LOADERS[key]
    getattr(importlib.import_module(module, __package__), function)(path)
