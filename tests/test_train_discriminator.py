"""pasl.train.discriminator: the official key layout (pasl-reference.md Appendix C), sizes and forward."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from pasl.train.discriminator import Discriminator, discriminators, summed_logits
from shared_assets import SHARED, needs

REFERENCE = SHARED / "docs" / "pasl-reference.md"
ROW = re.compile(r"^\| `(discriminator2?)\.([\w.]+)` \| \(([\d, ]*)\) \|$")


@pytest.fixture(scope="module")
def nets() -> tuple[Discriminator, Discriminator]:
    torch.manual_seed(0)
    return discriminators()


def appendix_c() -> dict[str, dict[str, tuple[int, ...]]]:
    """``{"discriminator": {key: shape}, "discriminator2": {...}}`` from the reference's Appendix C table."""
    text = REFERENCE.read_text(encoding="utf-8")
    section = text[text.index("## Appendix C"): text.index("## Appendix D")]
    layout: dict[str, dict[str, tuple[int, ...]]] = {"discriminator": {}, "discriminator2": {}}
    for line in section.splitlines():
        if match := ROW.match(line.strip()):
            name, key, shape = match.groups()
            layout[name][key] = tuple(int(n) for n in shape.replace(" ", "").split(",") if n)
    return layout


@needs(REFERENCE, reason="the Appendix C key listing is in ../shared/docs/pasl-reference.md")
def test_keys_and_shapes_are_appendix_c(nets):
    expected = appendix_c()
    assert len(expected["discriminator"]) == len(expected["discriminator2"]) == 40
    for name, net in zip(("discriminator", "discriminator2"), nets):
        got = {key: tuple(t.shape) for key, t in net.state_dict().items()}
        assert got == expected[name]
        assert list(got) == list(expected[name])  # the same order, as torch.save writes it


def test_parameter_counts(nets):
    counts = [sum(p.numel() for p in net.parameters()) for net in nets]
    assert counts == [21_183_554, 18_037_826]


def test_the_output_conv_covers_what_is_left(nets):
    assert nets[0].output[1].kernel_size == (4, 4) and nets[1].output[1].kernel_size == (2, 2)


def test_forward_shapes_and_pooling(nets):
    torch.manual_seed(1)
    image, depth, landmarks = (torch.rand(1, 3, 256, 256) for _ in range(3))
    with torch.no_grad():
        features, logits = nets[0](image, depth, landmarks)
        assert logits.shape == (1, 1) and len(features) == 7 and features[-1].shape == (1, 512, 4, 4)
        # discriminator2 is its layers applied to the 2x average-pooled 9-channel input
        x = nets[1].input(F.avg_pool2d(torch.cat((image, depth, landmarks), 1), 2))
        for block in nets[1].blocks:
            x = block(x)
        assert x.shape == (1, 512, 2, 2)
        torch.testing.assert_close(nets[1](image, depth, landmarks)[1], nets[1].output(x).flatten(1), rtol=0, atol=0)
        total = summed_logits(nets, image, depth, landmarks)
        torch.testing.assert_close(total, logits + nets[1](image, depth, landmarks)[1], rtol=0, atol=0)


def test_bad_inputs(nets):
    with pytest.raises(ValueError, match="image, depth and landmarks"):
        nets[0](torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match="pool must be 1 or 2"):
        Discriminator(pool=4)


def test_smaller_widths_keep_the_key_names(nets):
    small = Discriminator(pool=2, base_channels=4, max_channels=32)
    assert list(small.state_dict()) == list(nets[1].state_dict())
