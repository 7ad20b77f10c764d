"""Reading weight files safely, recognising what they are, and converting them.

Rules: pickles are opened with ``torch.load(weights_only=True, map_location="cpu")`` so a
weight file can never execute code (the official files were saved on CUDA); every failure
becomes one sentence that names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .catalog import WEIGHT_FOLDERS, entry
from .errors import MissingWeightError, WeightFileError

log = logging.getLogger(__name__)

AEG_PARTS = ("generator", "style_encoder")
"""Top-level entries of an official ``{step}_nets_ema.ckpt``."""
SAFETENSORS_FORMAT = "pasl-aeg"
"""``format`` metadata of our own AEG conversion."""

AEG_SOURCE = entry("aeg").source


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


def load_pickle_weights(path: Path, expected: str = "an AEG checkpoint") -> object:
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


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file, or :class:`WeightFileError`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightFileError(f"{path} is not a valid .safetensors file ({err}). Convert the original checkpoint again.") from None
    return tensors, metadata


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
    if all(isinstance(obj.get(part), dict) for part in AEG_PARTS):
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


def read_aeg_state(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The ``generator`` and ``style_encoder`` state dicts of an AEG weight file.

    Accepts an official ``{step}_nets_ema.ckpt``, a ``{step}_nets.ckpt`` (extra
    discriminator entries are ignored) or our ``.safetensors`` conversion.
    """
    path = require_file(path, "AEG checkpoint", AEG_SOURCE)
    if path.suffix == ".safetensors":
        flat, metadata = read_safetensors(path)
        if metadata.get("format") != SAFETENSORS_FORMAT:
            raise WeightFileError(
                f"{path} is a .safetensors file but not a PASL AEG conversion (format={metadata.get('format')!r}); "
                f"make one with: python -m pasl convert-weights SRC.ckpt DST.safetensors"
            )
        states: dict[str, dict[str, torch.Tensor]] = {part: {} for part in AEG_PARTS}
        for key, tensor in flat.items():
            part, _, name = key.partition(".")
            if part in states:
                states[part][name] = tensor
        return states

    obj = load_pickle_weights(path)
    kind = describe_foreign_checkpoint(obj, "aeg")
    if kind:
        raise WeightFileError(f"{path} looks like {kind}, not an AEG checkpoint ({{step}}_nets_ema.ckpt).")
    if checkpoint_kind(obj) == "aeg":
        ignored = sorted(set(map(str, obj)) - set(AEG_PARTS))
        if ignored:
            log.info("%s: ignoring entries %s (training-only networks)", path.name, ", ".join(ignored))
        return {part: obj[part] for part in AEG_PARTS}
    found = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
    raise WeightFileError(
        f"{path} is not an AEG checkpoint: expected a dict with 'generator' and 'style_encoder' entries, found {found}."
    )


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


def convert_aeg_to_safetensors(src: str | Path, dst: str | Path) -> dict[str, str]:
    """Convert an AEG checkpoint to ``.safetensors``; return the metadata written.

    The metadata records the source file name and sha256 and the style-encoder variant,
    so a converted file can always be traced back to the download it came from.
    """
    from safetensors.torch import save_file

    from . import __version__
    from .aeg import build_aeg

    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"the destination must end in .safetensors, got {dst}")
    states = read_aeg_state(src)
    model = build_aeg(states, src)  # validates the file strictly before anything is written
    flat = {f"{part}.{key}": tensor.contiguous() for part in AEG_PARTS for key, tensor in states[part].items()}
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "variant": "self_att" if model.style_encoder.self_attention else "no_self_att",
        "source_file": src.name,
        "source_sha256": sha256_of(src),
        "converted_by": f"pasl {__version__}",
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(dst), metadata=metadata)
    return metadata
