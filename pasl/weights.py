"""Weight files of any kind: reading them safely, recognising what they are, converting them.

Everything here is generic; what a particular file holds (the AEG, DECA, FLAME) lives next to
its network (:mod:`pasl.aeg_files`, :mod:`pasl.csg.encoder`, :mod:`pasl.flame_files`), which
imports this module and never the other way round.

Rules: pickles are opened with ``torch.load(weights_only=True, map_location="cpu")`` so a
weight file can never execute code (the official files were saved on CUDA); every failure
becomes one sentence that names the file and what is wrong with it; every conversion is
written by :func:`save_converted`, atomically, with the sha256 of each file it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_output
from .catalog import WEIGHT_FOLDERS
from .errors import MissingWeightError, WeightFileError

CONVERTED_SUFFIXES = (".safetensors", ".npz")
"""File formats :func:`save_converted` writes, picked by the destination's suffix."""
NPZ_METADATA_KEY = "__metadata__"
"""In a ``.npz`` conversion, the array holding the metadata as a JSON string."""


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: str | Path, what: str, where_to_get: str) -> Path:
    """Return ``path`` as a Path, or raise :class:`MissingWeightError` saying where to get it."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightError(
            f"{what} not found: {path}. Put the file in {WEIGHT_FOLDERS}; get it from {where_to_get}."
        )
    return path


def load_pickle_weights(path: Path, expected: str = "a weight file") -> object:
    """``torch.load`` with ``weights_only=True``; turn every failure into :class:`WeightFileError`.

    ``expected`` names what the caller wanted, for the message about a FLAME pickle.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "chumpy" in text:
            raise WeightFileError(f"{path} looks like the FLAME model (generic_model.pkl), not {expected}.") from None
        raise WeightFileError(
            f"{path} was refused: it contains Python objects other than tensors (a pickle that could run code), "
            f"so it is not loaded. Official PASL and DECA weights hold only tensors. Detail: {text.splitlines()[0][:300]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as err:
        raise WeightFileError(
            f"{path} could not be read as a PyTorch checkpoint: it is truncated or corrupt "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'no detail'}). "
            f"Download it again and compare its sha256 with weights/README.md."
        ) from None


def read_safetensors(
    path: Path, redo: str = "Convert the original checkpoint again."
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file, or :class:`WeightFileError` ending in ``redo``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightFileError(f"{path} is not a valid .safetensors file ({err}). {redo}") from None
    return tensors, metadata


def read_npz(path: Path, redo: str = "Convert the original files again.") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of a ``.npz`` written by :func:`save_converted` (no pickles are read).

    A ``.npz`` without (valid) metadata reads with empty metadata, for the caller to refuse.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError) as err:
        raise WeightFileError(f"{path} is not a valid .npz conversion ({err}). {redo}") from None
    raw = arrays.pop(NPZ_METADATA_KEY, None)
    try:
        metadata = json.loads(str(raw[()])) if raw is not None else {}
    except (ValueError, TypeError):
        metadata = {}
    return arrays, metadata if isinstance(metadata, dict) else {}


KIND_DESCRIPTIONS = {
    "optimiser": "an optimiser state file ({step}_optims.ckpt); use {step}_nets_ema.ckpt instead",
    "aeg": "a PASL AEG checkpoint ({step}_nets_ema.ckpt)",
    "deca": "a DECA/CSG file (deca_model.tar)",
    "ir50": "an IR-50 face-recognition backbone (PAE/ArcFace Backbone_IR_50_*.pth)",
    "fan": "a face-alignment model (FAN or S3FD)",
    "bare_generator": "a bare generator state dict without its style encoder",
}


def checkpoint_kind(obj: object) -> str | None:
    """Which known weight file a loaded pickle is, from its keys (a key of :data:`KIND_DESCRIPTIONS`)."""
    if not isinstance(obj, dict):
        return None
    keys = set(map(str, obj.keys()))
    if any(isinstance(v, dict) and {"state", "param_groups"} <= set(v) for v in obj.values()):
        return "optimiser"
    if all(isinstance(obj.get(part), dict) for part in ("generator", "style_encoder")):  # pasl.aeg_files.AEG_PARTS
        return "aeg"
    if {"E_flame", "E_detail", "D_detail"} & keys:
        return "deca"
    if any(k.startswith("input_layer.") for k in keys) and any(k.startswith("body.") for k in keys):
        return "ir50"
    if any(k.startswith(("m0.", "conv1_1.")) for k in keys):
        return "fan"
    if any(k.startswith("from_rgb.") for k in keys):
        return "bare_generator"
    return None


def describe_foreign_checkpoint(obj: object, expected: str) -> str | None:
    """How to name ``obj`` to a user who passed it where a ``expected`` file belongs; ``None`` if it is one."""
    kind = checkpoint_kind(obj)
    return None if kind in (None, expected) else KIND_DESCRIPTIONS[kind]


def _preview(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def strict_load(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, part: str) -> None:
    """``load_state_dict(strict=True)`` with a one-sentence summary instead of a traceback."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_preview(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_preview(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (file vs model: {_preview(mismatched, 2)})")
    if problems:
        raise WeightFileError(f"{path}: the '{part}' weights do not fit the PASL architecture: " + "; ".join(problems) + ".")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise WeightFileError(f"{path}: '{part}' entries are not tensors: {_preview(bad)}.")
    module.load_state_dict(state, strict=True)


def check_destination(dst: str | Path, suffixes: tuple[str, ...] = (".safetensors",)) -> Path:
    """``dst`` as a Path, or ``ValueError`` when its suffix is not one of ``suffixes``."""
    dst = Path(dst)
    if dst.suffix not in suffixes:
        raise ValueError(f"the destination must end in {' or '.join(suffixes)}, got {dst}")
    return dst


def provenance(
    *,
    format: str,
    sources: Mapping[str, str | Path] | str | Path,
    format_version: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The metadata of a conversion: what it is and exactly which downloads it came from.

    Keys: ``format``, ``format_version`` (when given), ``{role}_file`` and ``{role}_sha256`` for
    each ``role -> path`` of ``sources`` (a single path has the role ``source``), then ``extra``,
    then ``converted_by`` (``"pasl <version>"``).
    """
    from . import __version__

    if not isinstance(sources, Mapping):
        sources = {"source": sources}
    metadata = {"format": format}
    if format_version is not None:
        metadata["format_version"] = format_version
    for role, path in sources.items():
        metadata[f"{role}_file"] = Path(path).name
        metadata[f"{role}_sha256"] = sha256_of(path)
    metadata.update({str(k): str(v) for k, v in (extra or {}).items()})
    metadata["converted_by"] = f"pasl {__version__}"
    return metadata


def _umask() -> int:
    """The process umask: from /proc on Linux (setting it to read it races with other threads), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_converted(
    tensors: Mapping[str, torch.Tensor],
    dst: str | Path,
    *,
    format: str,
    sources: Mapping[str, str | Path] | str | Path,
    format_version: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write ``tensors`` with their :func:`provenance` to ``dst``; return the metadata written.

    The suffix picks the file format: ``.safetensors`` (metadata in its header) or ``.npz``
    (metadata as JSON in the ``__metadata__`` array; read with ``allow_pickle=False``). The
    file appears only once complete (:func:`pasl.atomic.atomic_output`),
    so an interrupted conversion never leaves a truncated file that looks converted.

    Args:
        tensors: name -> CPU tensor; written contiguous, dtype and shape unchanged.
        dst: destination path; its folder is created.
        format: the ``format`` metadata a reader checks (e.g. ``"pasl-aeg"``).
        sources: the file converted, or ``role -> file`` when there are several.
        format_version: optional ``format_version`` metadata.
        extra: further str -> str metadata (e.g. the architecture variant).
    """
    dst = check_destination(dst, CONVERTED_SUFFIXES)
    metadata = provenance(format=format, sources=sources, format_version=format_version, extra=extra)
    flat = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    with atomic_output(dst) as tmp:
        if dst.suffix == ".npz":
            arrays = {name: tensor.numpy() for name, tensor in flat.items()}
            with open(tmp, "wb") as handle:  # an open handle keeps np.savez from appending ".npz"
                np.savez(handle, **{NPZ_METADATA_KEY: np.array(json.dumps(metadata, sort_keys=True))}, **arrays)
        else:
            from safetensors.torch import save_file

            save_file(flat, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # a new file's usual mode: safetensors writes 0600
    return metadata
