"""DECA's coarse encoder ``E_flame``: a ResNet-50 regressing the 236 FLAME codes.

Architecture (``decalib/models/encoders.py`` ``ResnetEncoder(236)`` over
``decalib/models/resnet.py``): the torchvision ResNet-50 (Bottleneck blocks [3, 4, 6, 3],
stride on the 3x3 conv, batch norm, no ``fc``) followed by ``AvgPool2d(7, stride=1)`` to
2048 features and ``layers = Linear(2048, 1024) -> ReLU -> Linear(1024, 236)``. Module
names equal the official ones so ``deca_model.tar['E_flame']`` (322 tensors, batch-norm
running statistics included) loads with ``strict=True``.

Only ``E_flame`` matters to PASL: ``E_detail`` and ``D_detail`` in the same file feed
DECA's detail displacement, which none of PASL's conditioning images use.

Convention: the input is ``(B, 3, 224, 224)`` RGB in [0, 1], no mean/std normalisation,
cropped with :func:`pasl.csg.crop.deca_crop`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightFileError
from ..geometry import DECA_CROP_SIZE
from .codes import NUM_CODE_PARAMS, FlameCodes

log = logging.getLogger(__name__)

RESNET50_BLOCKS = (3, 4, 6, 3)
"""Bottleneck blocks per stage of ResNet-50."""
STAGE_WIDTHS = (64, 128, 256, 512)
"""Inner width of each stage; the block output is 4x this (``Bottleneck.expansion``)."""
EXPANSION = 4
FEATURE_DIM = STAGE_WIDTHS[-1] * EXPANSION  # 2048
HIDDEN_DIM = 1024
"""Width of the regressor's hidden layer (``ResnetEncoder.layers``)."""
FINAL_POOL = 7
"""``AvgPool2d(7, stride=1)``: layer4's 7x7 map of a 224 input becomes 1x1."""

DECA_FILE = "deca_model.tar"
DECA_SOURCE = (
    "the PASL README's \"DECA model\" Google Drive link "
    "https://drive.google.com/file/d/1oMwg5xzkgPkYiZT_ZUCwk7CdttEbubkD/view (unzip it; the file is data/deca_model.tar), "
    "or DECA's own release, see https://github.com/yfeng95/DECA"
)
SAFETENSORS_FORMAT = "pasl-deca-eflame"
"""``format`` metadata of our ``.safetensors`` conversion (``E_flame`` only)."""
DECA_PARTS = ("E_flame", "E_detail", "D_detail")
"""Entries of an official ``deca_model.tar``."""


class Bottleneck(nn.Module):
    """torchvision's ResNet-v1.5 bottleneck: 1x1 -> 3x3 (strided) -> 1x1 (x4), plus shortcut.

    ``out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`` where the
    shortcut is ``downsample`` (1x1 strided conv + BN) when the shape changes, else ``x``.
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50Features(nn.Module):
    """ResNet-50 trunk: ``(B, 3, 224, 224)`` -> ``(B, 2048)`` average-pooled features."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        in_channels = STAGE_WIDTHS[0]
        for stage, (width, blocks) in enumerate(zip(STAGE_WIDTHS, RESNET50_BLOCKS), start=1):
            stride = 1 if stage == 1 else 2
            layer = []
            for k in range(blocks):
                layer.append(Bottleneck(in_channels, width, stride if k == 0 else 1))
                in_channels = width * EXPANSION
            self.add_module(f"layer{stage}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # the official AvgPool2d(7, stride=1), not a global mean: same value, same rounding
        return F.avg_pool2d(x, FINAL_POOL, stride=1).flatten(1)


class FlameEncoder(nn.Module):
    """DECA ``E_flame``: face crop ``(B, 3, 224, 224)`` in [0, 1] -> :class:`FlameCodes`.

    Runs on whatever device/dtype it was moved to; inputs are cast to its dtype.
    Use :func:`load_shape_encoder` to get one with weights.
    """

    def __init__(self):
        super().__init__()
        self.encoder = ResNet50Features()
        self.layers = nn.Sequential(nn.Linear(FEATURE_DIM, HIDDEN_DIM), nn.ReLU(), nn.Linear(HIDDEN_DIM, NUM_CODE_PARAMS))
        self.source: str = ""

    def regress(self, images: torch.Tensor) -> torch.Tensor:
        """The raw ``(B, 236)`` code vector (DECA's ``parameters``)."""
        if not torch.is_tensor(images):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (DECA_CROP_SIZE, DECA_CROP_SIZE):
            hint = " (channels-last? use images.movedim(-1, 1))" if images.ndim == 4 and images.shape[-1] == 3 else ""
            raise ValueError(
                f"images must be DECA crops of shape (B, 3, {DECA_CROP_SIZE}, {DECA_CROP_SIZE}), got {tuple(images.shape)}{hint}; "
                f"crop with pasl.csg.deca_crop"
            )
        weight = self.layers[0].weight
        if images.device != weight.device:
            raise ValueError(f"images are on {images.device} but the encoder is on {weight.device}")
        images = images.to(weight.dtype)
        if images.shape[0] == 0:
            return images.new_zeros(0, NUM_CODE_PARAMS)
        return self.layers(self.encoder(images))

    def forward(self, images: torch.Tensor) -> FlameCodes:
        return FlameCodes.from_vector(self.regress(images))

    def extra_repr(self) -> str:
        return f"source={self.source!r}"


def _looks_like_bare_encoder(obj: object) -> bool:
    return isinstance(obj, dict) and "encoder.conv1.weight" in obj and "layers.2.weight" in obj


def read_deca_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``E_flame`` state dict of a DECA weight file.

    Accepts an official ``deca_model.tar`` (a torch pickle dict with ``E_flame``,
    ``E_detail`` and ``D_detail``; only ``E_flame`` is read), a bare ``E_flame`` state
    dict, or our ``.safetensors`` conversion. Pickles are read with ``weights_only=True``.

    Raises:
        MissingWeightError: no file at ``path`` (the message says where to get it).
        WeightFileError: corrupt, unsafe or another kind of file.
    """
    from ..aeg_files import SAFETENSORS_FORMAT as AEG_FORMAT
    from ..weights import describe_foreign_checkpoint, load_pickle_weights, read_safetensors, require_file

    path = require_file(path, f"DECA model ({DECA_FILE})", DECA_SOURCE)
    if path.suffix == ".safetensors":
        flat, metadata = read_safetensors(path)
        fmt = metadata.get("format")
        if fmt == SAFETENSORS_FORMAT:
            return flat
        what = "a PASL AEG conversion" if fmt == AEG_FORMAT else f"a .safetensors file of format {fmt!r}"
        raise WeightFileError(
            f"{path} looks like {what}, not a DECA E_flame conversion; "
            f"make one from {DECA_FILE} with pasl.csg.convert_deca_to_safetensors"
        )

    obj = load_pickle_weights(path, expected=f"the DECA model ({DECA_FILE})")
    if isinstance(obj, dict) and isinstance(obj.get("E_flame"), dict):
        ignored = sorted(set(map(str, obj)) - {"E_flame"})
        if ignored:
            log.info("%s: ignoring %s (DECA detail networks, unused by PASL)", path.name, ", ".join(ignored))
        return obj["E_flame"]
    if _looks_like_bare_encoder(obj):
        log.info("%s: a bare E_flame state dict", path.name)
        return obj
    kind = describe_foreign_checkpoint(obj, "deca")
    if kind:
        raise WeightFileError(f"{path} looks like {kind}, not the DECA model ({DECA_FILE}).")
    found = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
    raise WeightFileError(f"{path} is not the DECA model ({DECA_FILE}): expected a dict with an 'E_flame' entry, found {found}.")


def build_shape_encoder(state: dict[str, torch.Tensor], source: str | Path) -> FlameEncoder:
    """An fp32 CPU :class:`FlameEncoder` filled strictly from an ``E_flame`` state dict."""
    from ..weights import strict_load

    model = FlameEncoder()
    strict_load(model, state, source, "E_flame")
    model.source = str(source)
    return model


def load_shape_encoder(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> FlameEncoder:
    """Load DECA's ``E_flame`` strictly, in eval mode, on ``device`` in ``dtype``.

    ``path`` is an official ``deca_model.tar`` or its ``.safetensors`` conversion
    (:func:`convert_deca_to_safetensors`).

    Raises:
        MissingWeightError: the file does not exist (the message says where to get it).
        WeightFileError: the file is corrupt, unsafe, of another kind, or its keys or
            shapes do not match ``E_flame``.
    """
    model = build_shape_encoder(read_deca_state(path), path)
    log.info("loaded DECA E_flame from %s", path)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def convert_deca_to_safetensors(src: str | Path, dst: str | Path) -> dict[str, str]:
    """Write ``E_flame`` of a ``deca_model.tar`` to ``.safetensors``; return the metadata.

    The metadata (:func:`pasl.weights.save_converted`) records the source file name and
    sha256, so the conversion can be traced back to the download it came from. The file is
    validated (strict load) before anything is written.
    """
    from ..weights import check_destination, save_converted

    src, dst = Path(src), check_destination(dst)
    state = read_deca_state(src)
    build_shape_encoder(state, src)
    return save_converted(state, dst, format=SAFETENSORS_FORMAT, sources=src, extra={"content": "E_flame"})
