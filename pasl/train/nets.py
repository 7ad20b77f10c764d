"""The networks a training run holds: four trained ones and the two EMA copies, and their initialisation.

As in the release (``pasl-reference.md`` §2, §5): ``nets`` = generator, style_encoder,
discriminator, discriminator2, He-initialised; ``nets_ema`` = generator and style_encoder,
copies of the first two, moved towards them after every step
(``ema <- lerp(param, ema, beta)``, parameters only). Fine-tuning starts the generator and
style encoder (both copies) from a released checkpoint instead.

``kind="tiny"`` builds stand-in networks with the same call signatures (:mod:`pasl.train.tiny`)
for smoke runs of the data path and the distributed set-up; their checkpoints are not AEG files.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from ..aeg import AEG
from .discriminator import discriminators

NET_NAMES = ("generator", "style_encoder", "discriminator", "discriminator2")
"""Entries of ``{step}_nets.ckpt`` and ``{step}_optims.ckpt``, in the official order."""
EMA_NAMES = ("generator", "style_encoder")
"""Entries of ``{step}_nets_ema.ckpt``."""
NET_KINDS = ("official", "tiny")
UNUSED_GENERATOR_PARAMETERS = re.compile(r"^(to_rgb_lm\.|decode\.\d+\.conv1x1\.)")
"""Generator parameters the official forward never uses (``pasl.aeg.Generator``): they stay in the checkpoints
and the optimiser's list, never receive a gradient, so they are frozen (DDP requires every trained parameter
to get one)."""


def he_init(module: nn.Module) -> None:
    """StarGAN v2's ``he_init``: Kaiming-normal (fan_in, ReLU gain) weights and zero biases for every Conv2d and
    Linear (attention output projections included; ``nn.MultiheadAttention``'s packed input projection keeps
    PyTorch's init). Use with ``net.apply(he_init)``."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@torch.no_grad()
def ema_update(net: nn.Module, ema: nn.Module, beta: float) -> None:
    """``ema <- lerp(param, ema, beta)`` for every parameter (buffers are not averaged), as the release's
    ``moving_average``."""
    for param, average in zip(net.parameters(), ema.parameters()):
        average.copy_(torch.lerp(param.detach(), average, beta))


def freeze_unused(generator: nn.Module) -> list[str]:
    """Stop gradients of :data:`UNUSED_GENERATOR_PARAMETERS`; return their names."""
    names = [name for name, _ in generator.named_parameters() if UNUSED_GENERATOR_PARAMETERS.match(name)]
    for name, param in generator.named_parameters():
        if name in names:
            param.requires_grad_(False)
    return names


def build_nets(kind: str = "official") -> tuple[nn.ModuleDict, nn.ModuleDict]:
    """``(nets, nets_ema)`` on the CPU in float32: He-initialised nets and EMA copies of G and E_s.

    Seed ``torch`` first for reproducible weights.
    """
    if kind == "official":
        aeg = AEG(self_attention=True)
        generator, style_encoder = aeg.generator, aeg.style_encoder
        discriminator, discriminator2 = discriminators()
    elif kind == "tiny":
        from .tiny import tiny_nets

        generator, style_encoder, discriminator, discriminator2 = tiny_nets()
    else:
        raise ValueError(f"kind must be one of {NET_KINDS}, got {kind!r}")
    nets = nn.ModuleDict(dict(zip(NET_NAMES, (generator, style_encoder, discriminator, discriminator2))))
    for net in nets.values():
        net.apply(he_init)
    freeze_unused(nets["generator"])
    ema = nn.ModuleDict({name: copy.deepcopy(nets[name]) for name in EMA_NAMES})
    ema.requires_grad_(False)
    return nets, ema
