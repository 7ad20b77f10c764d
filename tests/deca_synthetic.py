"""Synthetic DECA files and inputs in the official formats, made by the tests themselves.

``deca_model.tar`` is a torch-saved dict ``{'E_flame', 'E_detail', 'D_detail'}`` of state
dicts saved from CUDA. Here ``E_flame`` has the real keys and shapes with deterministic
values (numpy's frozen legacy ``RandomState``), scaled so the 50-layer network stays in a
sane range in eval mode: that is what lets ``tests/golden/deca_encoder_official.npz``
hold numbers computed once by the official ``ResnetEncoder`` on these exact weights.
``E_detail``/``D_detail`` are small placeholders with real key names (PASL ignores them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pasl.csg.encoder import FlameEncoder
from synthetic import save_official

RESIDUAL_GAIN = 0.5
"""Scale of each bottleneck's last BN: keeps the residual stream from growing 2x a block."""


def _value_for(key: str, shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, size=shape)
    if leaf == "running_mean":
        return 0.1 * rng.standard_normal(shape)
    if len(shape) == 1:
        if leaf == "bias":
            return 0.05 * rng.standard_normal(shape)
        gain = RESIDUAL_GAIN if ".bn3." in key or key.endswith("downsample.1.weight") else 1.0
        return gain * (1.0 + 0.1 * rng.standard_normal(shape))
    fan_in = int(np.prod(shape[1:]))
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)  # He init: ReLU keeps the scale


def eflame_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A full ``E_flame`` state dict (322 tensors, fp32, ``num_batches_tracked`` int64)."""
    rng = np.random.RandomState(seed)
    state = {}
    for key, tensor in FlameEncoder().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(int(rng.randint(1, 10**6)), dtype=torch.int64)
        else:
            state[key] = torch.from_numpy(_value_for(key, tuple(tensor.shape), rng).astype(np.float32))
    return state


def deca_checkpoint(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """The dict an official ``deca_model.tar`` holds."""
    g = torch.Generator().manual_seed(seed)
    return {
        "E_flame": eflame_state(seed),
        "E_detail": {
            "encoder.conv1.weight": torch.randn(64, 3, 7, 7, generator=g),
            "layers.2.weight": torch.randn(128, 1024, generator=g),
            "layers.2.bias": torch.randn(128, generator=g),
        },
        "D_detail": {
            "l1.0.bias": torch.randn(8192, generator=g),
            "conv_blocks.0.running_var": torch.rand(128, generator=g) + 0.5,
            "conv_blocks.18.weight": torch.randn(1, 16, 3, 3, generator=g),
        },
    }


def write_deca_model(path: Path, seed: int = 0, legacy_format: bool = False) -> Path:
    """An official-format ``deca_model.tar`` (tensors tagged as CUDA, like the authors' file).

    ``legacy_format`` writes the pre-1.6 non-zip pickle container, in case the release
    file predates torch's zip format.
    """
    if legacy_format:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(deca_checkpoint(seed), path, _use_new_zipfile_serialization=False)
        return path
    return save_official(deca_checkpoint(seed), path)


def crop_images(seed: int = 1, batch: int = 2) -> torch.Tensor:
    """``(batch, 3, 224, 224)`` float32 in [0, 1]: smooth gradients plus noise, like a photo crop."""
    rng = np.random.RandomState(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, 224), np.linspace(0, 1, 224), indexing="ij")
    images = []
    for _ in range(batch):
        phase = rng.uniform(0, 2 * np.pi, size=3)
        base = np.stack([0.5 + 0.3 * np.sin(4 * xx + 3 * yy + p) for p in phase])
        images.append(np.clip(base + 0.15 * rng.standard_normal(base.shape), 0.0, 1.0))
    return torch.from_numpy(np.stack(images).astype(np.float32))


def face_landmarks(seed: int, center: tuple[float, float], size: float, integer: bool = True) -> np.ndarray:
    """``(68, 2)`` float32 points scattered in a face-sized box, integer-valued like FAN's."""
    rng = np.random.RandomState(seed)
    points = np.asarray(center) + size * rng.uniform(-0.5, 0.5, size=(68, 2)) * np.array([0.9, 1.0])
    return (np.round(points) if integer else points).astype(np.float32)


def frame_image(seed: int, height: int = 256, width: int = 256, low: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB test frame: blocks plus noise, values in [low, 255]."""
    rng = np.random.RandomState(seed)
    blocks = rng.randint(low, 256, size=(height // 16 + 1, width // 16 + 1, 3)).repeat(16, 0).repeat(16, 1)
    noisy = blocks[:height, :width] + rng.randint(-20, 21, size=(height, width, 3))
    return np.clip(noisy, low, 255).astype(np.uint8)
