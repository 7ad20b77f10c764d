"""Synthetic S3FD / 2D-FAN-4 weight files in the official format (plain tensor state dicts).

The same seeds produce the same tensors everywhere, so golden numbers computed by running the
official face_alignment 1.1.1 code on these weights (``tests/golden/fan_official.npz``)
can be checked against ``pasl.align.fan`` without the real files. Magnitudes are chosen so
activations stay O(1) through the 4 hourglasses, and the S3FD face logits are shifted down
so that only a handful of boxes pass the 0.5 threshold.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pasl.align.fan import FAN, S3FD

S3FD_FACE_LOGIT_SHIFT = -2.5
"""Added to the face-class bias of every S3FD confidence head."""
S3FD_LOC_GAIN = 0.02
"""Scales the box-regression heads so decoded boxes stay near their anchors."""
S3FD_CONF_GAINS = {"conv3_3_norm": 60.0, "conv4_3_norm": 60.0, "conv5_3_norm": 50.0, "fc7": 0.04, "conv6_2": 0.05, "conv7_2": 0.03}
"""Per-head scale of the confidence weights (normalised heads see tiny inputs, the others large)."""
S3FD_SEED, FAN_SEED = 11, 12


def _randomise(module: torch.nn.Module, seed: int, gain: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue  # files saved before PyTorch 0.4.1 have none
        if name.endswith("running_mean") or (name.endswith(".bias") and tensor.ndim == 1):
            value = torch.randn(tensor.shape, generator=generator) * 0.05
        elif name.endswith("running_var"):
            value = torch.rand(tensor.shape, generator=generator) + 0.5
        elif tensor.ndim == 1:  # BatchNorm / L2Norm weights
            value = torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5
        else:
            fan_in = tensor[0].numel()
            value = torch.randn(tensor.shape, generator=generator) * (gain * math.sqrt(2.0 / fan_in))
        state[name] = value.to(tensor.dtype).contiguous()
    return state


def s3fd_state(seed: int = S3FD_SEED) -> dict[str, torch.Tensor]:
    state = _randomise(S3FD(), seed, gain=1.0)
    for name in state:
        if name.endswith("_mbox_conf.bias"):
            state[name] = state[name].clone()
            state[name][-1] += S3FD_FACE_LOGIT_SHIFT
        if "_mbox_loc." in name:  # boxes near their anchors, as a trained head gives
            state[name] = state[name] * S3FD_LOC_GAIN
        if name.endswith("_mbox_conf.weight"):  # face logits spread over a few units at every level
            state[name] = state[name] * S3FD_CONF_GAINS[name.split("_mbox")[0]]
    return state


def fan_state(seed: int = FAN_SEED) -> dict[str, torch.Tensor]:
    return _randomise(FAN(), seed, gain=0.6)


def write_fan_files(folder: Path, seed_s3fd: int = S3FD_SEED, seed_fan: int = FAN_SEED) -> Path:
    """Write ``s3fd-619a316812.pth`` and ``2DFAN4-11f355bf06.pth.tar`` into ``folder``/face_alignment."""
    target = Path(folder) / "face_alignment"
    target.mkdir(parents=True, exist_ok=True)
    torch.save(s3fd_state(seed_s3fd), target / "s3fd-619a316812.pth")
    torch.save(fan_state(seed_fan), target / "2DFAN4-11f355bf06.pth.tar")
    return target


def golden_image(height: int = 144, width: int = 176, seed: int = 5) -> torch.Tensor:
    """A smooth random ``(H, W, 3)`` uint8 test image (blobs at several scales), deterministic."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, height, width)
    for cells in (3, 6, 12, 24):
        noise = torch.rand(1, 3, cells, cells, generator=generator)
        out += torch.nn.functional.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False) / 4
    return (out[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8)
