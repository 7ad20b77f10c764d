"""Input normalisation of pasl.align.images: every layout and dtype to RGB float frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pasl.align.images import to_batch, to_frames
from pasl.imageops import to_uint8_hwc


def _rgb(h=4, w=5, b=None, seed=0):
    g = np.random.default_rng(seed)
    shape = (h, w, 3) if b is None else (b, h, w, 3)
    return g.integers(0, 256, size=shape, dtype=np.uint8)


class TestToFrames:
    def test_hwc_uint8(self):
        image = _rgb()
        (frame,) = to_frames(image)
        assert frame.shape == (3, 4, 5) and frame.dtype == torch.float32
        assert torch.equal(frame, torch.from_numpy(image).permute(2, 0, 1).float() / 255)

    def test_bhwc_torch_float_is_comfyui_layout(self):
        batch = torch.rand(3, 6, 7, 3)
        frames = to_frames(batch)
        assert len(frames) == 3 and torch.equal(frames[1], batch[1].permute(2, 0, 1))

    def test_bchw_and_chw(self):
        batch = torch.rand(2, 3, 9, 8)
        assert torch.equal(to_frames(batch)[1], batch[1])
        assert torch.equal(to_frames(batch[0])[0], batch[0])

    def test_explicit_layout_resolves_ambiguity(self):
        x = torch.rand(3, 5, 3)  # auto reads (H=3, W=5, C=3)
        assert to_frames(x)[0].shape == (3, 3, 5)
        assert to_frames(x, layout="CHW")[0].shape == (3, 5, 3)

    def test_grayscale_2d_and_single_channel(self):
        grey = _rgb()[..., 0]
        for image in (grey, grey[..., None]):
            (frame,) = to_frames(image)
            assert frame.shape == (3, 4, 5)
            assert torch.equal(frame[0], frame[2]) and torch.equal(frame[0], torch.from_numpy(grey).float() / 255)

    def test_rgba_drops_alpha(self):
        rgba = np.concatenate([_rgb(), np.zeros((4, 5, 1), np.uint8)], axis=-1)
        assert torch.equal(to_frames(rgba)[0], to_frames(rgba[..., :3])[0])

    def test_uint16_and_bool(self):
        x = np.full((2, 2, 3), 65535, dtype=np.uint16)
        assert torch.allclose(to_frames(x)[0], torch.ones(3, 2, 2))
        assert to_frames(np.ones((2, 2), dtype=bool))[0].min() == 1.0

    def test_one_pixel(self):
        (frame,) = to_frames(np.array([[[10, 20, 30]]], dtype=np.uint8))
        assert frame.shape == (3, 1, 1) and frame.flatten().mul(255).round().tolist() == [10.0, 20.0, 30.0]

    def test_list_of_different_sizes(self):
        frames = to_frames([_rgb(4, 5), _rgb(7, 3, b=2)])
        assert [tuple(f.shape) for f in frames] == [(3, 4, 5), (3, 7, 3), (3, 7, 3)]

    def test_pil_image(self):
        from PIL import Image

        image = _rgb()
        assert torch.equal(to_frames(Image.fromarray(image))[0], to_frames(image)[0])
        assert to_frames(Image.fromarray(image[..., 0], mode="L"))[0].shape == (3, 4, 5)

    def test_float_is_clamped_and_input_untouched(self):
        x = torch.tensor([[[-0.2, 0.5, 1.2]]])
        before = x.clone()
        frame = to_frames(x)[0]
        assert frame.flatten().tolist() == [0.0, 0.5, 1.0]
        assert torch.equal(x, before)

    def test_empty_batch(self):
        with pytest.raises(ValueError, match="empty batch"):
            to_frames(np.zeros((0, 4, 4, 3), np.uint8))

    def test_empty_list(self):
        with pytest.raises(ValueError, match="empty batch"):
            to_frames([])

    def test_zero_sized_frame(self):
        with pytest.raises(ValueError, match="empty"):
            to_frames(np.zeros((0, 5, 3), np.uint8))

    def test_0_255_floats_are_refused(self):
        with pytest.raises(ValueError, match="divide 0-255 data by 255"):
            to_frames(np.full((2, 2, 3), 200.0, np.float32))

    def test_nan(self):
        with pytest.raises(ValueError, match="NaN"):
            to_frames(torch.full((2, 2, 3), float("nan")))

    def test_bad_shape_names_it(self):
        with pytest.raises(ValueError, match=r"\(2, 2, 2, 2, 3\)"):
            to_frames(np.zeros((2, 2, 2, 2, 3), np.uint8))

    def test_five_channels(self):
        with pytest.raises(ValueError, match="cannot read an image of shape"):
            to_frames(np.zeros((6, 6, 5), np.uint8))

    def test_unsupported_type(self):
        with pytest.raises(TypeError, match="numpy array, a torch tensor or a PIL image"):
            to_frames("photo.jpg")

    def test_unsupported_dtype(self):
        with pytest.raises(TypeError, match="unsupported image dtype"):
            to_frames(torch.zeros(2, 2, 3, dtype=torch.int32))

    def test_unknown_layout(self):
        with pytest.raises(ValueError, match="layout must be one of"):
            to_frames(_rgb(), layout="NHWC")


class TestToBatch:
    def test_stacks(self):
        assert to_batch(_rgb(b=2)).shape == (2, 3, 4, 5)

    def test_different_sizes(self):
        with pytest.raises(ValueError, match="different sizes"):
            to_batch([_rgb(4, 5), _rgb(5, 4)])


class TestToUint8Hwc:
    def test_round_trip(self):
        image = _rgb(6, 7)
        assert np.array_equal(to_uint8_hwc(to_frames(image)[0]), image)

    def test_rounds_to_nearest(self):
        frame = torch.full((3, 1, 1), 0.6 / 255)
        assert to_uint8_hwc(frame).flatten().tolist() == [1, 1, 1]

    def test_shape(self):
        with pytest.raises(ValueError, match=r"\(C, H, W\)"):
            to_uint8_hwc(torch.zeros(4, 4))
