import numpy as np
import pytest
import torch

from pasl.imageops import to_uint8, to_uint8_hwc


class TestToUint8:
    def test_rounding_matches_torchvision_save_image(self):
        x = torch.linspace(0, 1, 10_001)
        expected = x.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)  # torchvision.utils.save_image
        assert torch.equal(to_uint8(x), expected)

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


class TestToUint8Hwc:
    """The former private copies, reproduced bit for bit by the one quantiser."""

    def test_the_former_align_and_pae_conversions(self):
        x = torch.rand(2, 3, 9, 7, dtype=torch.float64)
        former = x.detach().float().mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        np.testing.assert_array_equal(to_uint8_hwc(x), former)
        np.testing.assert_array_equal(to_uint8_hwc(x[0]), former[0])
        assert to_uint8_hwc(x).flags["C_CONTIGUOUS"] and to_uint8_hwc(x).dtype == np.uint8

    @pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
    def test_the_former_render_truncation(self, dtype):
        x = torch.rand(2, 3, 16, 16, dtype=dtype)
        former = (x.detach().float() * 255.0).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        np.testing.assert_array_equal(to_uint8_hwc(x.float(), "truncate"), former)

    def test_grey_channel_and_gradients(self):
        x = torch.full((1, 2, 2), 0.5, requires_grad=True)
        assert to_uint8_hwc(x).shape == (2, 2, 1) and to_uint8_hwc(x).flatten().tolist() == [128] * 4

    @pytest.mark.parametrize("shape", [(4, 4), (2, 5, 4, 4), (6, 4, 3), (1, 1, 3, 4, 4)])
    def test_shape(self, shape):
        with pytest.raises(ValueError, match=r"\(C, H, W\) or \(B, C, H, W\)"):
            to_uint8_hwc(torch.zeros(shape))
