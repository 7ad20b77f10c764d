"""Synthetic weight files in the exact official formats, made by the tests themselves.

The real checkpoints are licence-gated downloads, so tests build files with the same
keys, shapes, dtypes and container layout. Values come from numpy's legacy
``RandomState`` (a frozen stream), scaled like a trained network's so activations
neither vanish nor saturate: the same seed gives the same file on any machine, which
is what lets ``tests/golden`` hold numbers computed once with the official code.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from pasl.aeg import AEG


def _value_for(key: str, shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "gamma":  # SAGAN residual weight: large enough that attention matters
        return np.full(shape, 0.5)
    if len(shape) == 1:
        is_norm_scale = leaf == "weight"  # 1-d weights are Instance/LayerNorm scales
        return (1.0 if is_norm_scale else 0.0) + 0.1 * rng.standard_normal(shape)
    fan_in = int(np.prod(shape[1:]))
    return rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)


def random_state_dict(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A float32 state dict for ``module`` with deterministic, well-scaled values."""
    rng = np.random.RandomState(seed)
    return {
        key: torch.from_numpy(_value_for(key, tuple(t.shape), rng).astype(np.float32))
        for key, t in module.state_dict().items()
    }


def aeg_states(seed: int = 0, self_attention: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """``{'generator': ..., 'style_encoder': ...}`` as in an official ``_nets_ema.ckpt``."""
    model = AEG(self_attention=self_attention)
    return {
        "generator": random_state_dict(model.generator, seed),
        "style_encoder": random_state_dict(model.style_encoder, seed + 1),
    }


@contextlib.contextmanager
def _tensors_tagged_as_cuda():
    """Make ``torch.save`` record storages as ``cuda:0`` (as on the authors' machines)."""
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        yield
    finally:
        torch.serialization.location_tag = original


def save_official(obj: object, path: Path, as_cuda: bool = True) -> Path:
    """``torch.save`` like the official ``CheckpointIO.save``: tensors tagged as CUDA."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _tensors_tagged_as_cuda() if as_cuda else contextlib.nullcontext():
        torch.save(obj, path)
    return path


def write_nets_ema(path: Path, seed: int = 0, self_attention: bool = True) -> Path:
    """An official-format ``{step}_nets_ema.ckpt``."""
    return save_official(aeg_states(seed, self_attention), path)


def aeg_inputs(seed: int, batch: int) -> dict[str, torch.Tensor]:
    """Source image, depth map and landmark drawing of the AEG's input ranges."""
    rng = np.random.RandomState(seed)
    size = (batch, 3, 256, 256)
    depth = rng.uniform(0.0, 1.0, size=(batch, 1, 256, 256)).repeat(3, axis=1)
    landmarks = (rng.uniform(size=(batch, 1, 256, 256)) < 0.05).astype(np.float64).repeat(3, axis=1)
    return {
        "source": torch.from_numpy(rng.uniform(0.0, 1.0, size=size).astype(np.float32)),
        "depth": torch.from_numpy(depth.astype(np.float32)),
        "landmarks": torch.from_numpy(landmarks.astype(np.float32)),
    }
