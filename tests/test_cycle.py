"""Cycle consistency: shaded shape rendering, re-encoding, errors, loss and refinement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import flame_synthetic as fs
from pasl.csg.codes import FlameCodes
from pasl.csg.cycle import CycleReport, cycle_check, cycle_loss, refine_codes, render_shape, rotation_angle_deg, vertex_normals
from pasl.csg.encoder import FlameEncoder

TEMPLATE = Path(__file__).resolve().parents[2] / "shared" / "assets" / "flame" / "head_template.obj"


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    return fs.head_flame(tmp_path_factory.mktemp("flame_cycle"), TEMPLATE)  # an ellipsoid head without ../shared


def head_codes(batch: int, yaw_deg: float = 0.0, seed: int = 0) -> FlameCodes:
    rng = np.random.RandomState(seed)
    vector = np.zeros((batch, 236), dtype=np.float32)
    vector[:, :100] = rng.standard_normal((batch, 100)) * 0.5
    vector[:, 150:200] = rng.standard_normal((batch, 50)) * 0.3
    vector[:, 201] = np.deg2rad(yaw_deg)
    vector[:, 206] = 8.0  # scale: the ~0.25 m head spans most of the crop
    return FlameCodes.from_vector(torch.from_numpy(vector))


def constant_encoder(codes: FlameCodes) -> FlameEncoder:
    """An E_flame whose output is always ``codes`` (last layer: zero weights, bias = codes)."""
    encoder = FlameEncoder().eval()
    with torch.no_grad():
        encoder.layers[2].weight.zero_()
        encoder.layers[2].bias.copy_(codes.to_vector()[0])
    return encoder.requires_grad_(False)


class TestRenderShape:
    def test_a_head_fills_the_middle_of_the_crop(self, flame):
        codes = head_codes(2, yaw_deg=0.0)
        vertices = flame(codes.shape, codes.exp, codes.pose).vertices
        image = render_shape(vertices, codes.cam, flame.faces)
        assert image.shape == (2, 3, 224, 224)
        assert 0 <= image.min() and image.max() <= 1
        assert torch.equal(image[:, 0], image[:, 2])  # grey
        covered = image[0, 0] > 0
        assert covered[112, 112] and not covered[0, 0]
        assert 0.05 < covered.float().mean() < 0.9

    def test_yaw_moves_the_silhouette(self, flame):
        frontal, turned = head_codes(1, 0.0), head_codes(1, 60.0)
        images = [render_shape(flame(c.shape, c.exp, c.pose).vertices, c.cam, flame.faces) for c in (frontal, turned)]
        assert (images[0] - images[1]).abs().mean() > 0.01

    def test_normals_of_a_flat_triangle(self):
        vertices = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        normals = vertex_normals(vertices, torch.tensor([[0, 1, 2]]))
        torch.testing.assert_close(normals, torch.tensor([[[0.0, 0.0, 1.0]] * 3]))


class TestCycleCheck:
    def test_a_fixed_point_comes_back_exactly(self, flame):
        codes = head_codes(1, yaw_deg=20.0)
        report = cycle_check(codes, constant_encoder(codes), flame, flame.faces)
        assert report.shape_mm.item() == 0 and report.expression_mm.item() == 0
        assert report.pose_deg.item() < 0.05  # arccos near 1 is ill-conditioned in float32
        assert "shape 0.00 mm" in report.summary()

    def test_errors_measure_what_changed(self, flame):
        intended, encoded = head_codes(1, yaw_deg=0.0, seed=1), head_codes(1, yaw_deg=30.0, seed=2)
        report = cycle_check(intended, constant_encoder(encoded), flame, flame.faces)
        zeros = torch.zeros(2, 50), torch.zeros(2, 6)
        heads = flame(torch.cat([intended.shape, encoded.shape]), *zeros).vertices
        expected_mm = (heads[0] - heads[1]).norm(dim=-1).mean() * 1000
        torch.testing.assert_close(report.shape_mm, expected_mm.reshape(1), rtol=1e-5, atol=1e-4)
        assert report.expression_mm.item() > 0
        torch.testing.assert_close(report.pose_deg, torch.tensor([30.0]), rtol=0, atol=1e-3)

    def test_rotation_angle(self):
        a = torch.tensor([[0.0, 0.0, 0.0], [0.0, np.pi / 2, 0.0]])
        b = torch.tensor([[0.0, 0.0, np.pi / 4], [0.0, 0.0, 0.0]])
        torch.testing.assert_close(rotation_angle_deg(a, b), torch.tensor([45.0, 90.0]), rtol=0, atol=1e-3)


class TestLossAndRefinement:
    def test_loss_is_zero_when_the_identity_returns_and_differentiable(self, flame):
        source = head_codes(2, seed=3)
        assert cycle_loss(source, source, flame).item() == 0
        recoded = source.replace(shape=source.shape.clone().requires_grad_(True) + 0.1)
        loss = cycle_loss(source, recoded, flame)
        loss.backward()
        assert loss.item() > 0

    def test_refinement_reduces_the_cycle_error_and_keeps_the_input(self, flame):
        codes = head_codes(1, yaw_deg=10.0, seed=4)
        encoder = PooledLinearEncoder(codes)
        before = codes.to_vector().clone()

        def error(c):
            recoded = encoder(render_shape(flame(c.shape, c.exp, c.pose).vertices, c.cam, flame.faces))
            return sum((getattr(recoded, k) - getattr(codes, k)).abs().mean() for k in ("shape", "exp", "pose")).item()

        with torch.inference_mode():  # as inside ComfyUI
            refined = refine_codes(codes, encoder, flame, flame.faces, steps=3)
        assert torch.equal(codes.to_vector(), before)
        assert error(refined) < 0.99 * error(codes)
        assert torch.equal(refine_codes(codes, encoder, flame, flame.faces, steps=0).to_vector(), before)


class PooledLinearEncoder(torch.nn.Module):
    """A small differentiable stand-in for E_flame: a linear read-out of the pooled image,
    centred on ``codes`` so the refinement has a reachable target."""

    def __init__(self, codes: FlameCodes):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.randn(236, 3 * 16 * 16, generator=generator) * 0.05
        self.bias = codes.to_vector()[0].clone()
        self.reference = None

    def forward(self, images: torch.Tensor) -> FlameCodes:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images, 16).flatten(1)
        if self.reference is None:
            self.reference = pooled.detach().mean(0, keepdim=True) + 0.02
        return FlameCodes.from_vector((pooled - self.reference) @ self.weight.T + self.bias)


def test_report_leaves_out_skipped_frames():
    report = CycleReport(torch.tensor([1.0, 9.0, 3.0]), torch.tensor([2.0, 9.0, 4.0]), torch.tensor([5.0, 90.0, 7.0]),
                         FlameCodes.from_vector(torch.zeros(3, 236)))
    kept = report.without(torch.tensor([False, True, False]))
    assert kept.summary() == "cycle error: shape 2.00 mm, expression 3.00 mm, pose 6.00 deg (mean of 2 frames)"
    assert report.summary().endswith("(mean of 3 frames)")
    none = report.without(torch.ones(3, dtype=torch.bool))
    assert none.summary() == "cycle error: no frame to measure (0 of 3 frames have a face)"
