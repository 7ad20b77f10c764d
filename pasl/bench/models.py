"""The networks a benchmark runs: the real files when they are all found, else synthetic ones.

Speed does not depend on the values of the weights, so the benchmarks run without the
licence-gated downloads: the AEG and DECA's ``E_flame`` get random weights scaled like a
trained network's (activations neither vanish nor saturate, so precision errors are
representative), DECA's last layer is steered to a neutral head that lands inside the crop
(so the maps are drawn and the generator runs on every frame), and FLAME is the real model
when found, else the template-only layer of the render benchmark (same size, same cost).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..models import PASLModels

CAMERA_SCALE_INDEX = 206
"""Index of DECA's orthographic camera scale in its 236-d code (shape 100, tex 50, exp 50, pose 6, cam 3)."""
NEUTRAL_CAMERA_SCALE = 8.0
"""The camera scale of a head that fills DECA's 224 crop."""


def well_scaled_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fill ``module`` in place with deterministic random weights of a trained network's scale.

    Matrices and kernels: normal with variance 2 / fan-in (He); norm scales near 1, biases
    near 0; BatchNorm statistics near (0, 1); attention ``gamma`` 0.5 so attention matters.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            leaf = key.rsplit(".", 1)[-1]
            shape = tuple(tensor.shape)
            if leaf == "gamma":
                value = torch.full(shape, 0.5)
            elif leaf == "running_var":
                value = 0.5 + torch.rand(shape, generator=generator)
            elif leaf == "running_mean" or (len(shape) == 1 and leaf == "bias") or len(shape) == 0:
                value = 0.05 * torch.randn(shape, generator=generator)
            elif len(shape) == 1:
                value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
            else:
                fan_in = math.prod(shape[1:])
                value = torch.randn(shape, generator=generator) * math.sqrt(1.0 / fan_in)
            tensor.copy_(value.to(tensor.dtype))
    return module


def synthetic_models(folders: list[str | Path], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                     seed: int = 0) -> tuple[PASLModels, str]:
    """Synthetic AEG and DECA, and FLAME from ``folders`` (real, or template-only), set up like :func:`load_models`."""
    from ..aeg import AEG, place_aeg
    from ..csg.encoder import FlameEncoder
    from . import common as bench

    device = torch.device(device)
    aeg = AEG()
    well_scaled_(aeg.generator, seed)
    well_scaled_(aeg.style_encoder, seed + 1)
    aeg.source = "synthetic"
    encoder = well_scaled_(FlameEncoder(), seed + 2)
    with torch.no_grad():
        last = encoder.layers[2]
        last.weight.mul_(1e-3)  # nearly the same neutral head whatever the crop shows
        last.bias.zero_()
        last.bias[CAMERA_SCALE_INDEX] = NEUTRAL_CAMERA_SCALE
    encoder.source = "synthetic"
    flame, faces, which = bench._flame_for_bench([str(f) for f in folders])
    models = PASLModels(
        aeg=place_aeg(aeg, device, dtype),
        shape_encoder=encoder.to(device).eval().requires_grad_(False),
        flame=flame.to(device),
        faces=faces.to(device),
        device=device,
        dtype=dtype,
    )
    return models, f"synthetic AEG and DECA (seed {seed}), {which}"


def bench_models(folders: list[str | Path], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 synthetic: bool | None = None) -> tuple[PASLModels, str]:
    """The real files when every one is found in ``folders`` (and ``synthetic`` is not True), else :func:`synthetic_models`.

    Returns the models and a phrase saying which weights they are.
    """
    from ..errors import MissingWeightError
    from ..models import check_weights, load_models

    if not synthetic:
        try:
            check_weights(folders)
        except MissingWeightError:
            if synthetic is False:
                raise
        else:
            return load_models(folders, device=device, dtype=dtype), "real weight files"
    return synthetic_models(folders, device, dtype)
