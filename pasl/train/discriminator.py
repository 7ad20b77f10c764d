"""The two training discriminators of the AEG (``discriminator`` and ``discriminator2``).

Both judge a face together with the maps it was drawn from: their input is
``cat(image, depth, landmarks)``, 9 channels. The first sees the 256 crop, the second the
same three tensors average-pooled to 128; the training losses add their logits before the
BCE (``pasl-reference.md`` §2.4, §5). They exist only in training checkpoints
(``{step}_nets.ckpt``); sub-module names are the official ones, so those files load strictly
(key list in ``pasl-reference.md`` Appendix C).

Convention: images and maps are ``(B, 3, 256, 256)`` in [0, 1], as everywhere in :mod:`pasl`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import ALIGNED_SIZE
from ..layers import LEAKY_SLOPE, ResBlock, SelfAttention2d

BASE_CHANNELS = 64
MAX_CHANNELS = 512
INPUT_CHANNELS = 9
"""image (3) + depth (3) + landmarks (3)."""
ATTENTION_AFTER = 4
"""The SAGAN block follows the fourth down-block (at 16x16 for the 256 input, 8x8 for the 128 one)."""
DOWN_BLOCKS = 6
"""Halvings before the output conv: 256 -> 4 (kernel 4) and 128 -> 2 (kernel 2)."""


class Discriminator(nn.Module):
    """``(image, depth, landmarks)`` -> ``(features, logits)``: a StarGAN-v2 discriminator on 9 channels.

    Layout: ``input`` conv 3x3 (9 -> 64); ``blocks``: six down-sampling :class:`~pasl.layers.ResBlock`
    (64 -> 128 -> 256 -> 512 -> 512 -> 512 -> 512, no normalisation) with a
    :class:`~pasl.layers.SelfAttention2d` after the fourth; ``output``: LReLU, conv over the
    remaining square (512 -> 512), LReLU, 1x1 conv (512 -> 1).

    Args:
        pool: ``1`` for ``discriminator`` (the 256 crop), ``2`` for ``discriminator2`` (all three
            inputs average-pooled by 2 first, so its output conv is 2x2).
        base_channels, max_channels: widths (64 and 512 in the official networks; other widths with
            ``max_channels == 8 * base_channels`` keep the key names).
    """

    def __init__(self, pool: int = 1, base_channels: int = BASE_CHANNELS, max_channels: int = MAX_CHANNELS):
        super().__init__()
        if pool not in (1, 2):
            raise ValueError(f"pool must be 1 or 2, got {pool!r}")
        self.pool = pool
        self.input = nn.Conv2d(INPUT_CHANNELS, base_channels, 3, 1, 1)
        blocks: list[nn.Module] = []
        dim_in = base_channels
        for i in range(DOWN_BLOCKS):
            if i == ATTENTION_AFTER:
                blocks.append(SelfAttention2d(dim_in))
            dim_out = min(dim_in * 2, max_channels)
            blocks.append(ResBlock(dim_in, dim_out, downsample=True))
            dim_in = dim_out
        self.blocks = nn.ModuleList(blocks)
        side = ALIGNED_SIZE // pool // 2**DOWN_BLOCKS
        self.output = nn.Sequential(
            nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(dim_in, dim_in, side, 1, 0), nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(dim_in, 1, 1, 1, 0)
        )

    def forward(
        self, image: torch.Tensor, depth: torch.Tensor, landmarks: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns ``(features, logits)``: the output of each block (for feature matching) and ``(B, 1)`` logits."""
        x = torch.cat((image, depth, landmarks), dim=1)
        if x.ndim != 4 or x.shape[1] != INPUT_CHANNELS or x.shape[-2:] != (ALIGNED_SIZE, ALIGNED_SIZE):
            raise ValueError(
                f"the discriminator takes (B, 3, {ALIGNED_SIZE}, {ALIGNED_SIZE}) image, depth and landmarks, "
                f"got {tuple(x.shape)} concatenated"
            )
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        x = self.input(x)
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features, self.output(x).flatten(1)


def discriminators(base_channels: int = BASE_CHANNELS, max_channels: int = MAX_CHANNELS) -> tuple[Discriminator, Discriminator]:
    """``(discriminator, discriminator2)``: the 256 and the pooled-128 network (fp32, CPU, PyTorch's default init)."""
    return Discriminator(1, base_channels, max_channels), Discriminator(2, base_channels, max_channels)


def summed_logits(
    nets: tuple[nn.Module, nn.Module], image: torch.Tensor, depth: torch.Tensor, landmarks: torch.Tensor
) -> torch.Tensor:
    """``D1(x) + D2(x)``, ``(B, 1)``: the official multi-discriminator adds logits before the loss."""
    return nets[0](image, depth, landmarks)[1] + nets[1](image, depth, landmarks)[1]

