"""AEG: the attention-embedded generator and its style encoder.

The generator turns the two shape renderings of the CSG (a depth map and a landmark
line drawing) into a face; the source person's appearance reaches it only through a
128-d style code, via a transformer query and the AdaIN layers of the decoder.

Sub-module names equal the official ones so ``{step}_nets_ema.ckpt`` loads with
``strict=True`` (see ``docs/official-code.md`` §2, key layout in §2.5); reading and
converting those files is :mod:`pasl.aeg_files`.

Convention: every image tensor here is ``(B, 3, 256, 256)`` RGB in [0, 1] with no
mean/std normalisation, on whatever device/dtype the module lives on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .geometry import ALIGNED_SIZE
from .layers import LEAKY_SLOPE, AdaINResBlock, HighPass, ResBlock, SelfAttention2d
from .transformer import Decoder, Encoder
from .weights import strict_load

IMAGE_SIZE = ALIGNED_SIZE
"""Side of every AEG image: source, depth, landmarks, output (the aligned crop's)."""
STYLE_DIM = 128
"""Length of the style code."""
BASE_CHANNELS = 2**14 // IMAGE_SIZE  # 64, the StarGAN-v2 width rule
MAX_CHANNELS = 512
TOKEN_DIM = 512
"""Transformer width: the bottleneck feature depth."""
TRANSFORMER_HEADS = 8
TRANSFORMER_FEEDFORWARD = 512
TRANSFORMER_LAYERS = 3
QUERY_TOKENS = (4, 2)
"""The decoder's single output token is projected to 8 tokens laid out as a 4x2 grid ..."""
BOTTLENECK_PADDING = (2, 3)
"""... which a 1x1 conv with this zero padding places in the middle of the 8x8 bottleneck."""
W_HPF = 1.0
"""High-pass weight of every released model; > 0 also means 'decoder blocks have no shortcut'."""

log = logging.getLogger(__name__)


class _Autocast:
    """Mixin: when ``autocast_dtype`` is set (:func:`place_aeg`), ``forward`` runs under
    ``torch.autocast`` in that dtype with float32 weights; unset (the default) it is the plain
    float32/float16 forward, operation for operation."""

    autocast_dtype: torch.dtype | None = None

    def __call__(self, *args, **kwargs):
        if self.autocast_dtype is None:
            return super().__call__(*args, **kwargs)
        with torch.autocast(self.autocast_device, dtype=self.autocast_dtype):
            return super().__call__(*args, **kwargs)

    @property
    def autocast_device(self) -> str:
        return next(self.parameters()).device.type


def _check_images(name: str, x: torch.Tensor) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        hint = " (this looks like a channels-last ComfyUI IMAGE; use image.movedim(-1, 1))" if x.ndim == 4 and x.shape[-1] == 3 else ""
        raise ValueError(f"{name} must have shape (B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), got {tuple(x.shape)}{hint}")


class StyleEncoder(_Autocast, nn.Module):
    """Source image ``(B, 3, 256, 256)`` in [0, 1] -> style code ``(B, 128)`` (not normalised).

    Args:
        self_attention: insert a SAGAN block after the fourth down-block (the demo and
            test checkpoints; recognisable by the key ``shared.5.gamma``). Without it the
            encoder has six plain down-blocks.
    """

    def __init__(self, self_attention: bool = True):
        super().__init__()
        self.self_attention = self_attention
        widths = [BASE_CHANNELS]
        for _ in range(int(math.log2(IMAGE_SIZE)) - 2):  # six halvings: 256 -> 4
            widths.append(min(widths[-1] * 2, MAX_CHANNELS))
        blocks: list[nn.Module] = [nn.Conv2d(3, BASE_CHANNELS, 3, 1, 1)]
        for i, (dim_in, dim_out) in enumerate(zip(widths[:-1], widths[1:])):
            if self_attention and i == 4:
                blocks.append(SelfAttention2d(dim_in))
            blocks.append(ResBlock(dim_in, dim_out, downsample=True))
        blocks += [nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(MAX_CHANNELS, MAX_CHANNELS, 4, 1, 0), nn.LeakyReLU(LEAKY_SLOPE)]
        self.shared = nn.Sequential(*blocks)
        self.fc = nn.Linear(MAX_CHANNELS, STYLE_DIM)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_images("image", image)
        if image.shape[0] == 0:  # instance norm and attention reject empty batches
            return image.new_zeros(0, STYLE_DIM)
        return self.fc(self.shared(image).flatten(1))


class Generator(_Autocast, nn.Module):
    """(depth, landmarks, style) -> face ``(B, 3, 256, 256)`` in [0, 1].

    Encoder: 5 instance-normed down-blocks (256 -> 8) and 3 more at 8x8. The 64 bottleneck
    tokens go through a 3-layer transformer encoder; a 3-layer decoder with one query
    (the projected style code) attends to them. Its output becomes a 4x2 grid of 512-d
    features placed in an 8x8 map (every other cell holds the conv bias), which 8
    AdaIN blocks decode back to 256x256.
    """

    def __init__(self):
        super().__init__()
        self.from_rgb = nn.Conv2d(6, BASE_CHANNELS, 3, 1, 1)
        self.encode = nn.ModuleList()
        self.decode = nn.ModuleList()
        dim_in = BASE_CHANNELS
        for _ in range(int(math.log2(IMAGE_SIZE)) - 4 + 1):  # +1 because w_hpf > 0
            dim_out = min(dim_in * 2, MAX_CHANNELS)
            self.encode.append(ResBlock(dim_in, dim_out, normalize=True, downsample=True))
            self.decode.insert(0, AdaINResBlock(dim_out, dim_in, STYLE_DIM, W_HPF, upsample=True))
            dim_in = dim_out
        for _ in range(3):
            self.encode.append(ResBlock(dim_in, dim_in, normalize=True))
            self.decode.insert(0, AdaINResBlock(dim_in, dim_in, STYLE_DIM, W_HPF))
        args = (TRANSFORMER_LAYERS, TOKEN_DIM, TRANSFORMER_HEADS, TRANSFORMER_FEEDFORWARD)
        self.trands_encoder = Encoder(*args)  # sic: the official key spelling
        self.query_embed = nn.Linear(STYLE_DIM, TOKEN_DIM)
        self.trans_decoder = Decoder(*args)
        self.linear_q = nn.Linear(TOKEN_DIM, TOKEN_DIM * QUERY_TOKENS[0] * QUERY_TOKENS[1])
        self.conv = nn.Conv2d(TOKEN_DIM, TOKEN_DIM, 1, 1, BOTTLENECK_PADDING)
        self.to_rgb = nn.Sequential(
            nn.InstanceNorm2d(BASE_CHANNELS, affine=True), nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(BASE_CHANNELS, 3, 1, 1, 0)
        )
        # Trained but never used by the official forward; kept so checkpoints load strictly.
        self.to_rgb_lm = nn.Sequential(
            nn.InstanceNorm2d(BASE_CHANNELS, affine=True), nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(BASE_CHANNELS, 4, 1, 1, 0)
        )
        self.hpf = HighPass(W_HPF)

    def forward(
        self,
        depth: torch.Tensor,
        landmarks: torch.Tensor,
        style: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args:
            depth: ``(B, 3, 256, 256)`` in [0, 1], the normalised depth map (1 = nearest).
            landmarks: ``(B, 3, 256, 256)`` in {0, 1}, white landmark lines on black.
            style: ``(B, 128)``, or ``(1, 128)`` to drive all B frames with one source.
            masks: optional ``(B, 1, 256, 256)`` face masks for the StarGAN-v2 high-pass
                skips; ``None`` in every released PASL setting.

        Returns:
            ``(B, 3, 256, 256)`` in [0, 1] (a sigmoid output).
        """
        _check_images("depth", depth)
        _check_images("landmarks", landmarks)
        batch = depth.shape[0]
        if landmarks.shape[0] != batch:
            raise ValueError(f"depth and landmarks must have the same batch size, got {batch} and {landmarks.shape[0]}")
        if style.ndim != 2 or style.shape[1] != STYLE_DIM or style.shape[0] not in (1, batch):
            raise ValueError(f"style must have shape ({batch}, {STYLE_DIM}) or (1, {STYLE_DIM}), got {tuple(style.shape)}")
        style = style.expand(batch, -1)
        if batch == 0:
            return depth.new_zeros(depth.shape)

        x = self.from_rgb(torch.cat((depth, landmarks), dim=1))
        skips = {}
        for block in self.encode:
            if masks is not None and x.shape[2] in (32, 64, 128):
                skips[x.shape[2]] = x
            x = block(x)

        memory = self.trands_encoder(x.flatten(2).permute(2, 0, 1))  # (64, B, 512), raster order
        query_pos = self.query_embed(style).unsqueeze(0)  # (1, B, 512)
        token = self.trans_decoder(torch.zeros_like(query_pos), memory, query_pos)[0]  # (B, 512)
        rows, cols = QUERY_TOKENS
        grid = self.linear_q(token).view(batch, cols, rows, TOKEN_DIM).permute(0, 3, 2, 1)  # (B, 512, 4, 2)
        x = self.conv(grid)  # (B, 512, 8, 8)

        for block in self.decode:
            x = block(x, style)
            if masks is not None and x.shape[2] in (32, 64, 128):
                mask = F.interpolate(masks[:, :1], size=x.shape[2], mode="bilinear")
                x = x + self.hpf(mask * skips[x.shape[2]])
        return torch.sigmoid(self.to_rgb(x))


class AEG(nn.Module):
    """The pair of networks a checkpoint holds, plus where they came from."""

    def __init__(self, self_attention: bool = True):
        super().__init__()
        self.generator = Generator()
        self.style_encoder = StyleEncoder(self_attention=self_attention)
        self.source: str = ""

    def extra_repr(self) -> str:
        return f"self_attention={self.style_encoder.self_attention}, source={self.source!r}"


@dataclass(frozen=True)
class AEGVariant:
    """What a checkpoint's keys say about the architecture."""

    self_attention: bool

    @property
    def name(self) -> str:
        return "self_att" if self.self_attention else "no_self_att"


def detect_variant(style_encoder_state: dict) -> AEGVariant:
    """``shared.5.gamma`` exists only in the self-attention style encoder."""
    return AEGVariant(self_attention="shared.5.gamma" in style_encoder_state)


AUTOCAST_ON = {"cpu": (torch.bfloat16,)}
"""Where a reduced precision runs as autocast over float32 weights rather than as cast weights:
bfloat16 on the CPU, where oneDNN's bf16 kernels under autocast beat bf16 weights
(``python -m pasl.bench pipeline --precision bf16`` measures both)."""


def place_aeg(aeg: AEG, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> AEG:
    """Move ``aeg`` to ``device`` to run in ``dtype``, in eval mode without gradients.

    float32 (and float16) weights are cast, as before; bfloat16 on the CPU keeps float32
    weights and runs both networks under ``torch.autocast`` (:data:`AUTOCAST_ON`).
    """
    device = torch.device(device)
    if device.type == "cpu" and dtype == torch.float16:
        log.warning("float16 on the CPU has no fast kernels (minutes per face): use float32 or bfloat16 there")
    autocast = dtype in AUTOCAST_ON.get(device.type, ())
    aeg = aeg.to(device=device, dtype=torch.float32 if autocast else dtype)
    for network in (aeg.generator, aeg.style_encoder):
        network.autocast_dtype = dtype if autocast else None
    return aeg.eval().requires_grad_(False)


def build_aeg(states: dict[str, dict[str, torch.Tensor]], source: str | Path) -> AEG:
    """An fp32 CPU :class:`AEG` filled strictly from ``generator``/``style_encoder`` state dicts."""
    model = AEG(self_attention=detect_variant(states["style_encoder"]).self_attention)
    strict_load(model.generator, states["generator"], source, "generator")
    strict_load(model.style_encoder, states["style_encoder"], source, "style_encoder")
    model.source = str(source)
    return model
