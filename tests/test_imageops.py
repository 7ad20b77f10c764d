import io

import numpy as np
import pytest
import torch
from PIL import Image

from pasl.imageops import pil_to_rgb, read_image, to_uint8, to_uint8_hwc


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


class TestReadImage:
    def _roundtrip(self, tmp_path, image, name="image.png"):
        image.save(tmp_path / name)
        return read_image(tmp_path / name)

    def test_rgb(self, tmp_path):
        rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
        out = self._roundtrip(tmp_path, Image.fromarray(rgb))
        assert out.dtype == np.uint8 and out.flags["WRITEABLE"]
        np.testing.assert_array_equal(out, rgb)

    def test_grey(self, tmp_path):
        grey = np.arange(35, dtype=np.uint8).reshape(5, 7)
        np.testing.assert_array_equal(self._roundtrip(tmp_path, Image.fromarray(grey, mode="L")), np.repeat(grey[..., None], 3, 2))

    def test_rgba_drops_alpha(self, tmp_path):
        rgba = np.random.default_rng(1).integers(0, 256, (4, 6, 4), dtype=np.uint8)
        rgba[0, 0, 3] = 0
        np.testing.assert_array_equal(self._roundtrip(tmp_path, Image.fromarray(rgba, mode="RGBA")), rgba[..., :3])

    def test_palette(self, tmp_path):
        image = Image.new("P", (3, 2))
        image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
        image.putpixel((1, 0), 1)
        out = self._roundtrip(tmp_path, image)
        assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [200, 100, 50]

    def test_sixteen_bit_png_is_scaled_not_clipped(self, tmp_path):
        levels = np.array([[0, 257, 257 * 128, 257 * 128 + 128, 257 * 128 + 129, 65535]], dtype=np.uint16)
        Image.fromarray(levels).save(tmp_path / "deep.png")
        with Image.open(tmp_path / "deep.png") as opened:
            assert opened.mode in ("I;16", "I")  # what PIL reads a 16-bit grey PNG as
        out = read_image(tmp_path / "deep.png")
        assert out.shape == (1, 6, 3) and out.dtype == np.uint8
        assert out[..., 0].tolist() == [[0, 1, 128, 128, 129, 255]]
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()

    def test_32_bit_integer_mode_is_read_as_16_bit(self):
        image = Image.fromarray(np.array([[-5, 0, 257 * 200, 70000]], dtype=np.int32), mode="I")
        assert pil_to_rgb(image)[..., 0].tolist() == [[0, 0, 200, 255]]

    def test_in_memory_pil_images_take_the_same_path(self):
        from pasl.align import to_frames

        image = Image.fromarray(np.array([[0, 257 * 64, 65535]], dtype=np.uint16))
        frame = to_frames(image)[0]
        assert frame.mul(255).round().to(torch.uint8)[0].tolist() == [[0, 64, 255]]

    def test_not_an_image(self, tmp_path):
        (tmp_path / "text.png").write_text("not an image")
        with pytest.raises(OSError):
            read_image(tmp_path / "text.png")
        with pytest.raises(FileNotFoundError):
            read_image(tmp_path / "missing.png")

    def test_the_cli_reader_uses_it(self, tmp_path):
        from pasl.files import read_rgb

        Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(tmp_path / "deep.png")
        np.testing.assert_array_equal(read_rgb(tmp_path / "deep.png"), read_image(tmp_path / "deep.png"))
        with pytest.raises(ValueError, match="could not be read as an image"):
            read_rgb(tmp_path / "missing.png")
