"""LPIPS as StarGAN v2's ``metrics/lpips.py`` (shipped in the PASL release) computes it.

AlexNet's ``features`` (torchvision ImageNet weights) are read after each of its five ReLUs, each
map is normalised to unit length over channels (``x / sqrt(sum x^2 + 1e-10)``), the squared
difference of the two images' maps is weighted by a learned 1x1 convolution
(``lpips_weights.ckpt``), averaged over space and summed over layers. Inputs are shifted and scaled
by ``mu = (-0.03, -0.088, -0.188)``, ``sigma = (0.458, 0.448, 0.450)``, which assumes ``[-1, 1]``
images, so our ``[0, 1]`` images are mapped to ``2x - 1`` first. The release averages over the
whole batch and uses LPIPS only as a diversity score (never called by PASL code); here it returns
one distance per image pair.

Both files come from disk only (nothing is downloaded) and are checked by sha256.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MissingWeightError, PASLError, WeightFileError
from .metrics import _sha256

ALEXNET_FILE = {
    "file": "alexnet-owt-7be5be79.pth",
    "sha256_prefix": "7be5be79",  # torch hub naming: the name carries the first 8 hex digits of the sha256
    "source": "torchvision's ImageNet AlexNet: https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}
LPIPS_FILE = {
    "file": "lpips_weights.ckpt",
    "sha256": "8b641b3c88a60383027f5e3d9b14d0e8687a1b09aeeb4950ec5951813954a36a",  # the file committed in AvLab-CV/PASL
    "source": "metrics/lpips_weights.ckpt in the PASL (AvLab-CV/PASL) or StarGAN v2 (clovaai/stargan-v2) repository",
}
LPIPS_MU = (-0.03, -0.088, -0.188)
LPIPS_SIGMA = (0.458, 0.448, 0.450)
LAYER_CHANNELS = (64, 192, 384, 256, 256)


def _checked(path: Path, spec: dict, check_hash: bool) -> Path:
    if path.is_dir():
        path = path / spec["file"]
    if not path.is_file():
        raise MissingWeightError(
            f"LPIPS weight file not found: {path}. Put {spec['file']} there (or pass its path); get it from {spec['source']}."
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


def load_lpips(alexnet_path: str | Path, lpips_path: str | Path, check_hash: bool = True) -> StarganLPIPS:
    """The release's LPIPS from two local files (a folder holding them works for either argument)."""
    from ..weights import load_pickle_weights

    alex = _checked(Path(alexnet_path), ALEXNET_FILE, check_hash)
    lp = _checked(Path(lpips_path), LPIPS_FILE, check_hash)
    lpips_state = load_pickle_weights(lp, expected=LPIPS_FILE["file"])
    missing = [f"lpips_weights.{i}.main.1.weight" for i in range(5) if f"lpips_weights.{i}.main.1.weight" not in lpips_state]
    if missing:
        raise WeightFileError(f"{lp} is not {LPIPS_FILE['file']}: it lacks {missing[0]}.")
    try:
        return StarganLPIPS(load_pickle_weights(alex, expected=ALEXNET_FILE["file"]), lpips_state).eval()
    except RuntimeError as err:
        raise WeightFileError(f"{alex} or {lp} does not fit AlexNet / LPIPS: {str(err).splitlines()[0][:200]}") from None
