"""Tiny stand-ins for the AEG's four training networks, with the same call signatures.

The real generator has 69 M parameters and takes seconds per step on a CPU; these take
milliseconds, so the data path, the losses, checkpoints and multi-process runs can be
exercised quickly (``model: tiny`` in a config, and the tests). They learn nothing useful and
their checkpoints do not load as AEG files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..aeg import STYLE_DIM
from ..layers import AdaIN

WIDTH = 8
WORK_SIZE = 32
"""The stand-ins work at 32x32 (inputs average-pooled from 256, outputs upsampled back)."""
CAMERA_SCALE_INDEX = 206
"""The camera scale in the 236-d code vector (shape 100, tex 50, exp 50, pose 6, then cam)."""


class TinyStyleEncoder(nn.Module):
    """``(B, 3, 256, 256)`` -> ``(B, 128)``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, WIDTH, 3, 2, 1)
        self.fc = nn.Linear(WIDTH * (WORK_SIZE // 2) ** 2, STYLE_DIM)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(image, WORK_SIZE)
        return self.fc(F.leaky_relu(self.conv(x), 0.2).flatten(1))


class TinyGenerator(nn.Module):
    """``(depth, landmarks, style)`` -> ``(B, 3, 256, 256)`` in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.from_maps = nn.Conv2d(6, WIDTH, 3, 1, 1, bias=False)  # a bias before instance norm gets no gradient
        self.norm = AdaIN(STYLE_DIM, WIDTH)
        self.to_rgb = nn.Conv2d(WIDTH, 3, 3, 1, 1)

    def forward(self, depth: torch.Tensor, landmarks: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        size = depth.shape[-1]
        x = F.adaptive_avg_pool2d(torch.cat((depth, landmarks), dim=1), WORK_SIZE)
        x = F.leaky_relu(self.norm(self.from_maps(x), style.expand(depth.shape[0], -1)), 0.2)
        return torch.sigmoid(F.interpolate(self.to_rgb(x), size=size, mode="bilinear", align_corners=False))


class TinyDiscriminator(nn.Module):
    """``(image, depth, landmarks)`` -> ``(features, logits (B, 1))``; ``pool`` 2 pools the inputs first, as
    ``discriminator2``."""

    def __init__(self, pool: int = 1):
        super().__init__()
        self.pool = pool
        self.conv = nn.Conv2d(9, WIDTH, 3, 2, 1)
        self.fc = nn.Linear(WIDTH * (WORK_SIZE // 2) ** 2, 1)

    def forward(self, image: torch.Tensor, depth: torch.Tensor, landmarks: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = torch.cat((image, depth, landmarks), dim=1)
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        features = F.leaky_relu(self.conv(F.adaptive_avg_pool2d(x, WORK_SIZE)), 0.2)
        return [features], self.fc(features.flatten(1))


def tiny_nets() -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """``(generator, style_encoder, discriminator, discriminator2)``."""
    return TinyGenerator(), TinyStyleEncoder(), TinyDiscriminator(1), TinyDiscriminator(2)


class TinyFlameEncoder(nn.Module):
    """DECA's ``E_flame`` in miniature, for the CSG stage's smoke runs: ``(B, 3, 224, 224)`` -> the ``(B, 236)`` code
    vector (:meth:`regress`) or :class:`~pasl.csg.codes.FlameCodes` (``forward``). Its codes start near a neutral
    head in view (camera scale 8), so FLAME renders inside the crop."""

    def __init__(self):
        super().__init__()
        from ..csg.codes import NUM_CODE_PARAMS

        self.conv = nn.Conv2d(3, WIDTH, 3, 2, 1)
        self.fc = nn.Linear(WIDTH * (WORK_SIZE // 2) ** 2, NUM_CODE_PARAMS)
        with torch.no_grad():
            self.fc.weight.mul_(1e-2)
            self.fc.bias.zero_()
            self.fc.bias[CAMERA_SCALE_INDEX] = 8.0

    def regress(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(images.to(self.fc.weight.dtype), WORK_SIZE)
        return self.fc(F.leaky_relu(self.conv(x), 0.2).flatten(1))

    def forward(self, images: torch.Tensor):
        from ..csg.codes import FlameCodes

        return FlameCodes.from_vector(self.regress(images))
