import io

import numpy as np
import pytest
import torch
from PIL import Image

from pasl.imageops import to_uint8


class TestToUint8:
    def test_rounding_matches_torchvision_save_image(self):
        utils = pytest.importorskip("torchvision.utils")
        x = torch.linspace(0, 1, 10_001).reshape(1, 1, -1).expand(3, 1, -1).contiguous()
        x[1] = x[1].flip(-1)  # a different ramp per channel, so channel order counts too
        x[2] = torch.linspace(-0.25, 1.25, 10_001)  # and out-of-range values
        png = io.BytesIO()
        utils.save_image(x, png, format="png")
        saved = torch.from_numpy(np.asarray(Image.open(io.BytesIO(png.getvalue())).convert("RGB")).copy()).permute(2, 0, 1)
        assert torch.equal(to_uint8(x), saved)

    def test_truncation_matches_the_official_demo(self):
        x = torch.rand(2, 3, 8, 8, dtype=torch.float16)
        assert torch.equal(to_uint8(x, mode="truncate"), x.mul(255).byte())

    def test_rounding_is_unbiased_and_truncation_is_not(self):
        x = torch.rand(100_000)
        assert abs(to_uint8(x).float().mean() / 255 - x.mean()) < 1e-3
        assert to_uint8(x, mode="truncate").float().mean() / 255 < x.mean() - 1.5e-3

    def test_out_of_range_is_clamped(self):
        assert to_uint8(torch.tensor([-0.5, 1.5])).tolist() == [0, 255]

    def test_unknown_mode(self):
        with pytest.raises(ValueError, match="mode must be one of"):
            to_uint8(torch.zeros(1), mode="floor")

    def test_integer_input(self):
        with pytest.raises(TypeError, match="floating point"):
            to_uint8(torch.zeros(1, dtype=torch.uint8))
