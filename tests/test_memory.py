"""The working-memory estimates the nodes give ComfyUI's model manager, re-measured on the real architectures."""

from __future__ import annotations

import pytest
import torch

from pasl.aeg import Generator
from pasl.csg.encoder import FlameEncoder
from pasl.memory import (
    GENERATOR_BYTES_PER_FRAME,
    SHAPE_ENCODER_BYTES_PER_FRAME,
    generator_bytes,
    peak_activation_bytes,
    shape_encoder_bytes,
)


def per_frame(network: torch.nn.Module, inputs) -> tuple[int, int]:
    """(bytes per frame, bytes per pass) from the peaks of batches 1 and 2."""
    one, two = (peak_activation_bytes(network, *inputs(batch)) for batch in (1, 2))
    return two - one, 2 * one - two


def test_the_tracer_counts_what_is_alive_at_once():
    def three_at_once(x):
        a = x * 2  # 4 KiB
        b = a + 1  # 4 KiB
        del a
        c = b.view(-1) * 3  # 4 KiB; the view shares b's storage
        return c

    assert peak_activation_bytes(three_at_once, torch.ones(1024)) == 2 * 4096


def test_the_generator_constant_is_its_measured_activation_memory():
    generator = Generator().eval()
    slope, fixed = per_frame(generator, lambda b: (torch.rand(b, 3, 256, 256), torch.rand(b, 3, 256, 256), torch.randn(1, 128)))
    assert slope == pytest.approx(GENERATOR_BYTES_PER_FRAME, rel=0.02)
    assert abs(fixed) < 2**20  # linear in the batch
    assert generator_bytes(8, torch.float32) == 8 * GENERATOR_BYTES_PER_FRAME
    assert generator_bytes(8, torch.float16) == generator_bytes(8, torch.bfloat16) == 4 * GENERATOR_BYTES_PER_FRAME


def test_the_shape_encoder_constant_is_its_measured_activation_memory():
    slope, fixed = per_frame(FlameEncoder().eval(), lambda b: (torch.rand(b, 3, 224, 224),))
    assert slope == pytest.approx(SHAPE_ENCODER_BYTES_PER_FRAME, rel=0.02)
    assert abs(fixed) < 2**20
    assert shape_encoder_bytes(3) == 3 * SHAPE_ENCODER_BYTES_PER_FRAME
