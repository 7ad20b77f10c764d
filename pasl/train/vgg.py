"""VGG19 perceptual loss of the AEG's training (``pasl-reference.md`` §5): L1 between VGG19 features.

The network is torchvision's ImageNet VGG19 (``vgg19-dcbb9e9d.pth``), rebuilt here layer for
layer (so torchvision is not needed) and read only from a local file: nothing is downloaded.
Features are compared after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1, i.e. the slices
``[0:2], [2:7], [7:12], [12:21], [21:30]`` of ``features``, with equal weights.

Input normalisation (:data:`NORMALIZATIONS`): ``"imagenet"`` maps our [0, 1] images with
ImageNet mean/std, as the network was trained; ``"official"`` first applies ``(x + 1) / 2``, as the
release does (its images are [0, 1], so this is a bug kept only to reproduce it).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingWeightError, WeightFileError
from ..weights import load_pickle_weights, sha256_of

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_SHA256_PREFIX = "dcbb9e9d"
"""torch hub names carry the first 8 hex digits of the file's sha256 (what ``torch.hub`` checks); the full
digest was not in any source we could read, so the prefix is what is checked."""
VGG19_SOURCE = f"torchvision's ImageNet VGG19: https://download.pytorch.org/models/{VGG19_FILE}"
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
"""torchvision's configuration "E" (VGG19): conv widths, ``M`` = 2x2 max pooling; each conv is followed by a ReLU."""
SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
"""``features`` index ranges ending at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1."""
NORMALIZATIONS = ("imagenet", "official")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    """torchvision's ``vgg19().features`` (37 layers, the same indices, so the same state-dict keys)."""
    layers: list[nn.Module] = []
    channels = 3
    for width in VGG19_CONFIG:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU()]
            channels = width
    return nn.Sequential(*layers)


def features_layout() -> dict[str, tuple[int, ...]]:
    """``features.{i}.weight/bias`` -> shape, as in ``vgg19-dcbb9e9d.pth`` (which also holds ``classifier.*``)."""
    return {f"features.{key}": tuple(t.shape) for key, t in vgg19_features().state_dict().items()}


class VGG19Perceptual(nn.Module):
    """``loss(fake, target)``: the sum over the five slices of the mean |VGG(fake) - VGG(target)|, a scalar.

    The network is frozen and in eval mode; gradients flow to ``fake`` only (the target's
    features are computed without a graph).

    Args:
        features_state: ``features.*`` tensors of torchvision's VGG19 (:func:`load_vgg19_state`).
        normalization: one of :data:`NORMALIZATIONS` (module docstring).
    """

    def __init__(self, features_state: dict[str, torch.Tensor], normalization: str = "imagenet"):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        features = vgg19_features()
        features.load_state_dict({k.removeprefix("features."): v for k, v in features_state.items()}, strict=True)
        self.slices = nn.ModuleList(features[a:b] for a, b in SLICES)  # layers past relu5_1 are dropped
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "VGG19Perceptual":
        return super().train(False)  # a fixed measuring network: never in training mode

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization == "official":
            x = (x + 1) / 2
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = self._normalize(x)
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def forward(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self._features(target)
        return sum(F.l1_loss(a, b) for a, b in zip(self._features(fake), wanted))


def load_vgg19_state(path: str | Path, check_hash: bool = True) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of ``vgg19-dcbb9e9d.pth`` (``path``: the file or its folder), checked.

    Raises:
        MissingWeightError: the file is not there (the message says where to get it).
        WeightFileError: its sha256 does not start with :data:`VGG19_SHA256_PREFIX` (when
            ``check_hash``), or its ``features`` keys or shapes are not VGG19's.
    """
    path = Path(path)
    if path.is_dir():
        path = path / VGG19_FILE
    if not path.is_file():
        raise MissingWeightError(
            f"VGG19 weights for the perceptual loss not found: {path}; put {VGG19_FILE} there (get it from {VGG19_SOURCE}) "
            f"or set lambda_vgg to 0."
        )
    if check_hash and not sha256_of(path).startswith(VGG19_SHA256_PREFIX):
        raise WeightFileError(f"{path} is not {VGG19_FILE}: its sha256 does not start with {VGG19_SHA256_PREFIX}.")
    state = load_pickle_weights(path, expected=VGG19_FILE)
    if not isinstance(state, dict):
        raise WeightFileError(f"{path} is not a VGG19 state dict (found {type(state).__name__}).")
    layout = features_layout()
    features = {str(k): v for k, v in state.items() if str(k).startswith("features.")}
    wrong = sorted(set(layout) ^ set(features)) or [
        k for k, shape in layout.items() if not torch.is_tensor(features[k]) or tuple(features[k].shape) != shape
    ]
    if wrong:
        raise WeightFileError(f"{path} does not hold torchvision's VGG19 features (first mismatching keys: {', '.join(wrong[:3])}).")
    return {k: features[k].float() for k in layout}


def read_vgg19(path: str | Path) -> dict[str, torch.Tensor]:
    """:func:`load_vgg19_state` without the hash check: the download's strict load (it checks the digest itself)."""
    return load_vgg19_state(path, check_hash=False)
