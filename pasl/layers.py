"""Convolutional building blocks of the AEG (StarGAN-v2 lineage).

Attribute names (``conv1``, ``norm1``, ``conv1x1``, ``fc``, ``query_conv`` ...) are the
official ones: they are the state-dict keys of the released checkpoints, so they must
not be renamed. Everything here is stateless apart from its parameters and runs in any
device/dtype the module is moved to.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
"""Negative slope of every LeakyReLU in the AEG."""

_SQRT2 = math.sqrt(2.0)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


class ResBlock(nn.Module):
    """Pre-activation residual block, optionally instance-normalised and downsampling.

    ``out = (shortcut(x) + residual(x)) / sqrt(2)`` where the shortcut is a bias-free 1x1
    conv (only when the width changes) then 2x2 average pooling (only when downsampling),
    and the residual is ``[IN] -> LReLU -> conv3x3 -> [avgpool] -> [IN] -> LReLU -> conv3x3``.

    Args:
        dim_in, dim_out: channel counts.
        normalize: use affine ``InstanceNorm2d`` before each activation (generator encoder).
        downsample: halve H and W.
    """

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False):
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        if dim_in != dim_out:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv1x1"):
            x = self.conv1x1(x)
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        return x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(_leaky(x))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(_leaky(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / _SQRT2


class AdaIN(nn.Module):
    """Adaptive instance norm: ``(1 + gamma(s)) * IN(x) + beta(s)``.

    ``fc`` maps the style code ``s`` (B, style_dim) to ``[gamma | beta]`` (B, 2C).
    A style batch of 1 broadcasts over any feature batch.
    """

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdaINResBlock(nn.Module):
    """Style-modulated decoder block.

    Residual: ``AdaIN -> LReLU -> [nearest x2] -> conv3x3 -> AdaIN -> LReLU -> conv3x3``.
    With ``w_hpf > 0`` (every released PASL model) the block returns the residual alone;
    ``conv1x1`` then exists only so that the official checkpoints load strictly.
    With ``w_hpf == 0`` it adds the (upsampled, projected) shortcut and divides by sqrt(2).
    """

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, w_hpf: float = 1.0, upsample: bool = False):
        super().__init__()
        self.w_hpf = w_hpf
        self.upsample = upsample
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        if dim_in != dim_out:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if hasattr(self, "conv1x1"):
            x = self.conv1x1(x)
        return x

    def _residual(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = _leaky(self.norm1(x, s))
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv1(x)
        return self.conv2(_leaky(self.norm2(x, s)))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = self._residual(x, s)
        if self.w_hpf == 0:
            out = (out + self._shortcut(x)) / _SQRT2
        return out


class SelfAttention2d(nn.Module):
    """SAGAN self-attention over the H*W positions of a feature map.

    ``A = softmax(Q^T K)`` over keys (no 1/sqrt(d) scaling, as trained), ``out = V A^T``,
    returned as ``gamma * out + x``. Positions are flattened row-major (h * W + w).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).flatten(2).transpose(1, 2)  # (B, N, C/8)
        key = self.key_conv(x).flatten(2)  # (B, C/8, N)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # (B, N_query, N_key)
        value = self.value_conv(x).flatten(2)  # (B, C, N)
        out = torch.bmm(value, attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class HighPass(nn.Module):
    """Depth-wise 3x3 Laplacian high-pass divided by ``w_hpf``.

    Only used by the (disabled in every release) mask skip connections; the kernel is a
    non-persistent buffer so ``.to()``/``.half()`` move it without touching state dicts.
    """

    def __init__(self, w_hpf: float):
        super().__init__()
        kernel = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]) / w_hpf
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=channels)
