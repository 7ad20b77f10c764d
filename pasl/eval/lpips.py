"""LPIPS as StarGAN v2's ``metrics/lpips.py`` (shipped in the PASL release) computes it.

AlexNet's ``features`` (torchvision ImageNet weights) are read after each of its five ReLUs, each
map is normalised to unit length over channels (``x / sqrt(sum x^2 + 1e-10)``), the squared
difference of the two images' maps is weighted by a learned 1x1 convolution
(``lpips_weights.ckpt``), averaged over space and summed over layers. Inputs are shifted and scaled
by ``mu = (-0.03, -0.088, -0.188)``, ``sigma = (0.458, 0.448, 0.450)``, which assumes ``[-1, 1]``
images, so our ``[0, 1]`` images are mapped to ``2x - 1`` first. The release averages over the
whole batch and uses LPIPS only as a diversity score (never called by PASL code); here it returns
one distance per image pair.

Both files come from disk only (nothing is downloaded) and are checked by sha256; their names,
sources and digests are the catalogue's (:mod:`pasl.catalog`, ``lpips_alexnet`` and ``lpips``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..catalog import download_command, entry
from ..errors import MissingWeightError, PASLError, WeightFileError
from .metrics import _sha256

ALEXNET_FILE = {
    "file": entry("lpips_alexnet").patterns[0],
    "sha256_prefix": entry("lpips_alexnet").sha256,  # torch hub naming: the name carries the first 8 hex digits of the sha256
    "source": entry("lpips_alexnet").source,
}
LPIPS_FILE = {
    "file": entry("lpips").patterns[0],
    "sha256": entry("lpips").sha256,  # the file committed in clovaai/stargan-v2 (and AvLab-CV/PASL)
    "source": entry("lpips").source,
}
LPIPS_MU = (-0.03, -0.088, -0.188)
LPIPS_SIGMA = (0.458, 0.448, 0.450)
LAYER_CHANNELS = (64, 192, 384, 256, 256)


def _checked(path: Path, spec: dict, check_hash: bool) -> Path:
    if path.is_dir():
        path = path / spec["file"]
    if not path.is_file():
        raise MissingWeightError(
            f"LPIPS weight file not found: {path}. Put {spec['file']} there (or pass its path); get it from {spec['source']}, "
            f"or run `{download_command('lpips')}`."
        )
    if check_hash:
        digest = _sha256(path)
        expected = spec.get("sha256") or spec["sha256_prefix"]
        if not digest.startswith(expected):
            raise WeightFileError(f"{path} is not {spec['file']}: its sha256 is {digest}, expected {expected}.")
    return path


class StarganLPIPS(torch.nn.Module):
    """AlexNet features plus the five learned 1x1 weights; call ``model(a, b)`` on ``[0, 1]`` images -> ``(B,)``."""

    def __init__(self, alexnet_state: dict | None = None, lpips_state: dict | None = None):
        super().__init__()
        from torchvision.models import alexnet

        net = alexnet(weights=None)
        if alexnet_state is not None:
            net.load_state_dict(alexnet_state)
        self.features = net.features.eval()
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(1, c, 1, 1) / c) for c in LAYER_CHANNELS])
        if lpips_state is not None:
            for i, param in enumerate(self.weights):
                param.data.copy_(lpips_state[f"lpips_weights.{i}.main.1.weight"])
        self.register_buffer("mu", torch.tensor(LPIPS_MU).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor(LPIPS_SIGMA).view(1, 3, 1, 1))
        self.requires_grad_(False)  # a metric: no gradients kept

    def _maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1) - self.mu) / self.sigma
        maps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, torch.nn.ReLU):
                maps.append(x * torch.rsqrt((x * x).sum(dim=1, keepdim=True) + 1e-10))
        return maps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise PASLError(f"LPIPS needs two (B, 3, H, W) image batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
        total = a.new_zeros(a.shape[0])
        for fa, fb, w in zip(self._maps(a), self._maps(b), self.weights):
            total = total + torch.nn.functional.conv2d((fa - fb) ** 2, w).mean(dim=(1, 2, 3))
        return total


def read_lpips_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The five learned layer weights of ``lpips_weights.ckpt`` at ``path``, each checked for its ``(1, C, 1, 1)`` shape
    (a wrong shape would otherwise broadcast silently)."""
    path = Path(path)
    from ..weights import load_pickle_weights

    state = load_pickle_weights(path, expected=LPIPS_FILE["file"])
    if not isinstance(state, dict):
        raise WeightFileError(f"{path} is not {LPIPS_FILE['file']}: it holds a {type(state).__name__}, not a state dict.")
    for i, channels in enumerate(LAYER_CHANNELS):
        key = f"lpips_weights.{i}.main.1.weight"
        if key not in state:
            raise WeightFileError(f"{path} is not {LPIPS_FILE['file']}: it lacks {key}.")
        shape = tuple(state[key].shape) if torch.is_tensor(state[key]) else None
        if shape != (1, channels, 1, 1):
            raise WeightFileError(f"{path} is not {LPIPS_FILE['file']}: its {key} has shape {shape}, expected (1, {channels}, 1, 1).")
    return state


def build_lpips(alexnet_path: str | Path, lpips_state: dict | None = None) -> StarganLPIPS:
    """The LPIPS network with AlexNet's features from the file ``alexnet_path`` (strict keys and shapes) and, when
    given, the layer weights of :func:`read_lpips_weights`; no checksum is checked here."""
    from ..weights import load_pickle_weights

    path = Path(alexnet_path)
    try:
        return StarganLPIPS(load_pickle_weights(path, expected=ALEXNET_FILE["file"]), lpips_state).eval()
    except (RuntimeError, TypeError, AttributeError) as err:
        raise WeightFileError(f"{path} does not hold torchvision's AlexNet weights: {str(err).splitlines()[0][:200]}") from None


def load_lpips(alexnet_path: str | Path, lpips_path: str | Path, check_hash: bool = True) -> StarganLPIPS:
    """The release's LPIPS from two local files (a folder holding them works for either argument)."""
    alex = _checked(Path(alexnet_path), ALEXNET_FILE, check_hash)
    lp = _checked(Path(lpips_path), LPIPS_FILE, check_hash)
    return build_lpips(alex, read_lpips_weights(lp))
