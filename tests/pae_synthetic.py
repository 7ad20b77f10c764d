"""Synthetic PAE / ArcFace files in the official format (face.evoLVe ``Backbone`` IR-50 state dicts).

Values come from numpy's legacy ``RandomState`` so the same seed gives the same file
everywhere (``tests/golden/pae_official.npz`` holds numbers computed once with the
official ``model_irse`` on these files). BatchNorm running statistics are non-trivial,
so a network that ignored them (or used batch statistics) would give other numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pasl.pae import IR50, OFFICIAL_EPOCHS, PAIR_KINDS


def ir50_state(seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.RandomState(seed)
    state = {}
    for key, tensor in IR50().state_dict().items():
        shape, leaf = tuple(tensor.shape), key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(1000, dtype=torch.long)
            continue
        if leaf == "running_var":
            value = rng.uniform(0.5, 1.5, size=shape)
        elif leaf == "running_mean" or leaf == "bias":
            value = 0.1 * rng.standard_normal(shape)
        elif len(shape) == 1:  # BN scales and PReLU slopes
            value = (0.25 if _is_prelu(key) else 1.0) + 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) * np.sqrt(1.0 / int(np.prod(shape[1:])))
        state[key] = torch.from_numpy(value.astype(np.float32))
    return state


def _is_prelu(key: str) -> bool:
    return key.startswith("input_layer.2.") or ".res_layer.2." in key


def write_ir50(path: Path, seed: int) -> Path:
    """A plain ``torch.save`` state dict, as face.evoLVe writes ``Backbone_IR_50_Epoch_*.pth``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ir50_state(seed), path)
    return path


def write_pae_folder(root: Path, seed: int = 10, kinds: tuple[str, ...] = PAIR_KINDS) -> Path:
    """``root/POE/{kind}/Backbone_IR_50_Epoch_{n}.pth`` for each kind (seed + index)."""
    for i, kind in enumerate(PAIR_KINDS):
        if kind in kinds:
            write_ir50(root / "POE" / kind / f"Backbone_IR_50_Epoch_{OFFICIAL_EPOCHS[kind]}.pth", seed + i)
    return root


def face_like_images(seed: int, batch: int, size: int = 256) -> torch.Tensor:
    """``(B, 3, size, size)`` smooth random images in [0, 1] (blobs, not white noise)."""
    rng = np.random.RandomState(seed)
    coarse = torch.from_numpy(rng.uniform(0.0, 1.0, size=(batch, 3, 16, 16)).astype(np.float32))
    fine = torch.from_numpy(rng.uniform(-0.05, 0.05, size=(batch, 3, size, size)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (smooth + fine).clamp(0, 1)


def link_pae_files(pae_root: Path, models_folder: Path) -> None:
    """Symlink ``pae_root``'s ``POE/<pair>/*.pth`` into ``models_folder`` (the six files hold 1 GB)."""
    for path in pae_root.rglob("*.pth"):
        link = models_folder / path.relative_to(pae_root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
