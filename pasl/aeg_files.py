"""The AEG's weight files: reading official checkpoints and our conversions, and converting.

Kept apart from :mod:`pasl.aeg` (the networks) so the networks need no file formats and the
generic :mod:`pasl.weights` needs no networks; this module sits on top of both.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .aeg import AEG, build_aeg, detect_variant, place_aeg
from .catalog import entry
from .errors import WeightFileError
from .weights import (
    check_destination,
    checkpoint_kind,
    describe_foreign_checkpoint,
    load_pickle_weights,
    read_safetensors,
    require_file,
    save_converted,
)

log = logging.getLogger(__name__)

AEG_PARTS = ("generator", "style_encoder")
"""Top-level entries of an official ``{step}_nets_ema.ckpt``."""
SAFETENSORS_FORMAT = "pasl-aeg"
"""``format`` metadata of our own AEG conversion."""

AEG_SOURCE = entry("aeg").source


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

    obj = load_pickle_weights(path, expected="an AEG checkpoint")
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


def load_aeg(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> AEG:
    """Load an AEG checkpoint, strictly, into eval mode on ``device`` in ``dtype``.

    ``path`` may be an official ``{step}_nets_ema.ckpt``, a training ``{step}_nets.ckpt``
    (its discriminators are ignored) or a ``.safetensors`` made by
    ``python -m pasl convert-weights``. Pickles are read with ``weights_only=True``.

    Raises:
        MissingWeightError: the file does not exist (the message says where to get it).
        WeightFileError: the file is corrupt, unsafe, of another kind, or its keys or
            shapes do not match the architecture.
    """
    model = build_aeg(read_aeg_state(path), path)
    log.info("loaded AEG %s (%s)", path, detect_variant(model.style_encoder.state_dict()).name)
    return place_aeg(model, device, dtype)


def convert_aeg_to_safetensors(src: str | Path, dst: str | Path) -> dict[str, str]:
    """Convert an AEG checkpoint to ``.safetensors``; return the metadata written.

    The metadata (:func:`pasl.weights.save_converted`) records the source file name and
    sha256 and the style-encoder ``variant``, so a converted file can always be traced back
    to the download it came from. The file is validated (strict load) before anything is written.
    """
    src, dst = Path(src), check_destination(dst)
    states = read_aeg_state(src)
    build_aeg(states, src)
    flat = {f"{part}.{key}": tensor for part in AEG_PARTS for key, tensor in states[part].items()}
    variant = detect_variant(states["style_encoder"]).name
    return save_converted(flat, dst, format=SAFETENSORS_FORMAT, sources=src, extra={"variant": variant})
