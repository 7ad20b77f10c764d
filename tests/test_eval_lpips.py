"""pasl.eval.lpips with synthetic weights: zero for identical images, a hand computation, local checked files only."""

from __future__ import annotations

import pytest
import torch

from pasl.errors import MissingWeightError, WeightFileError
from pasl.eval.lpips import LAYER_CHANNELS, load_lpips


def _files(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    net = alexnet(weights=None)
    torch.save(net.state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    weights = {f"lpips_weights.{i}.main.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LAYER_CHANNELS)}
    torch.save(weights, tmp_path / "lpips_weights.ckpt")
    return net, weights


def test_lpips_zero_for_identical_and_matches_a_hand_computation(tmp_path):
    net, weights = _files(tmp_path)
    model = load_lpips(tmp_path, tmp_path, check_hash=False)
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    assert torch.allclose(model(a, a), torch.zeros(2))
    with torch.no_grad():
        values = model(a, b)
        mu = torch.tensor([-0.03, -0.088, -0.188]).view(1, 3, 1, 1)
        sigma = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        expected = torch.zeros(2)
        xa, xb, k = (a * 2 - 1 - mu) / sigma, (b * 2 - 1 - mu) / sigma, 0
        for layer in net.features.eval():
            xa, xb = layer(xa), layer(xb)
            if isinstance(layer, torch.nn.ReLU):
                na = xa / (xa.pow(2).sum(1, keepdim=True) + 1e-10).sqrt()
                nb = xb / (xb.pow(2).sum(1, keepdim=True) + 1e-10).sqrt()
                w = weights[f"lpips_weights.{k}.main.1.weight"].view(1, -1, 1, 1)
                expected += ((na - nb) ** 2 * w).sum(1).mean(dim=(1, 2))
                k += 1
    assert k == 5
    assert (values > 0).all()
    assert torch.allclose(values, expected, rtol=1e-4, atol=1e-7)


def test_lpips_files_are_local_and_checked(tmp_path):
    with pytest.raises(MissingWeightError, match="alexnet-owt-7be5be79.pth"):
        load_lpips(tmp_path, tmp_path)
    _files(tmp_path)
    with pytest.raises(WeightFileError, match="sha256"):
        load_lpips(tmp_path, tmp_path)  # synthetic files do not carry the real hashes
    torch.save({"other": torch.zeros(1)}, tmp_path / "lpips_weights.ckpt")
    with pytest.raises(WeightFileError, match="lacks"):
        load_lpips(tmp_path, tmp_path, check_hash=False)
