"""Head and expression editing on FLAME codes (pasl.rotations, pasl.edit): angles measured back
from posed FLAME vertices, exact ends of every strength, identity codes never touched."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import flame_synthetic as fs
from pasl.csg.codes import FlameCodes, recompose
from pasl.edit import (
    CONTROL_NAMES,
    ExpressionControls,
    HeadEdit,
    MotionStrengths,
    edit_codes,
    head_angles,
    jaw_opening,
    keep_centre,
    transfer_motion,
)
from pasl.lbs import yaw_from_rotation
from pasl.rotations import (
    angles_to_matrix,
    axis_angle_to_matrix,
    matrix_to_angles,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "shared" / "assets" / "flame" / "head_template.obj"


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    return fs.head_flame(tmp_path_factory.mktemp("flame_edit"), TEMPLATE)  # an ellipsoid head without ../shared


def codes(batch: int = 1, seed: int = 0, yaw_deg: float = 10.0) -> FlameCodes:
    g = torch.Generator().manual_seed(seed)
    vector = torch.randn(batch, 236, generator=g) * 0.3
    out = FlameCodes.from_vector(vector)
    pose = out.pose.clone()
    pose[:, :3] = matrix_to_axis_angle(angles_to_matrix(torch.tensor([[yaw_deg, -5.0, 3.0]] * batch, dtype=torch.float64))).float()
    pose[:, 3:] = torch.tensor([0.1, 0.0, 0.0])
    cam = torch.tensor([[8.0, 0.01, -0.02]] * batch)
    return out.replace(pose=pose, cam=cam)


def kabsch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotation R minimising ||R a_i - b_i|| (centred), by SVD: independent of pasl.rotations."""
    a, b = a - a.mean(0), b - b.mean(0)
    u, _, vt = torch.linalg.svd(b.T @ a)
    d = torch.sign(torch.linalg.det(u @ vt))
    return u @ torch.diag(torch.tensor([1.0, 1.0, d], dtype=a.dtype)) @ vt


def measured_angles(flame, edited: FlameCodes) -> torch.Tensor:
    """Head angles read off the posed vertices of the upper head (which follow the global rotation only;
    FLAME's pose-corrective blend shapes are switched off so the mesh is rigid)."""
    import copy

    flame64 = copy.deepcopy(flame).double()
    flame64.posedirs.zero_()
    rest = edited.replace(pose=torch.zeros_like(edited.pose))
    posed = flame64(edited.shape.double(), edited.exp.double(), edited.pose.double()).vertices[0]
    still = flame64(rest.shape.double(), rest.exp.double(), rest.pose.double()).vertices[0]
    upper = flame64.lbs_weights[:, 2] < 0.5  # not the jaw
    return matrix_to_angles(kabsch(still[upper], posed[upper])[None])[0]


class TestRotations:
    def test_round_trips(self):
        g = torch.Generator().manual_seed(0)
        angles = torch.cat([torch.rand(500, 1, generator=g) * 178 - 89, torch.rand(500, 2, generator=g) * 358 - 179], 1).double()
        matrix = angles_to_matrix(angles)
        assert torch.allclose(matrix_to_angles(matrix), angles, atol=1e-10, rtol=0)
        assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(matrix)), matrix, atol=1e-12, rtol=0)
        # DECA's Rodrigues adds 1e-8 inside its norm: the round trip through FLAME's own formula is that close
        assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(matrix)), matrix, atol=5e-8, rtol=0)

    def test_yaw_is_the_one_the_encoders_and_contour_read(self):
        matrix = angles_to_matrix(torch.tensor([[35.0, 20.0, -15.0], [-75.0, -10.0, 40.0]], dtype=torch.float64))
        assert torch.allclose(torch.rad2deg(yaw_from_rotation(matrix)), torch.tensor([35.0, -75.0], dtype=torch.float64), atol=1e-10)

    def test_half_turn_and_zero(self):
        rotvec = torch.tensor([[math.pi - 1e-6, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2e-9, 0.0]], dtype=torch.float64)
        back = matrix_to_axis_angle(quaternion_to_matrix(torch.cat([torch.cos(rotvec.norm(dim=1, keepdim=True) / 2),
                                                                    torch.nn.functional.normalize(rotvec, dim=1)
                                                                    * torch.sin(rotvec.norm(dim=1, keepdim=True) / 2)], 1)))
        assert torch.allclose(back, rotvec, atol=1e-9)

    def test_slerp_ends_and_middle(self):
        q0 = matrix_to_quaternion(angles_to_matrix(torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)))
        q1 = matrix_to_quaternion(angles_to_matrix(torch.tensor([[75.0, 0.0, 0.0]], dtype=torch.float64)))
        out = matrix_to_angles(quaternion_to_matrix(slerp(q0, q1, torch.tensor([[0.0], [0.2], [1.0]], dtype=torch.float64))))
        assert torch.allclose(out[:, 0], torch.tensor([0.0, 15.0, 75.0], dtype=torch.float64), atol=1e-10)


class TestHeadEdit:
    @pytest.mark.parametrize("yaw", [60.0, -90.0, 0.0, 89.0])
    def test_set_yaw_measured_from_posed_vertices(self, flame, yaw):
        edited = edit_codes(codes(), HeadEdit(yaw=yaw), flame=flame)
        measured = measured_angles(flame, edited)
        assert abs(float(measured[0]) - yaw) < 1e-3, measured
        if abs(yaw) < 89.0:  # at 90 degrees pitch and roll share an axis
            assert torch.allclose(measured[1:], torch.tensor([-5.0, 3.0], dtype=torch.float64), atol=1e-3), measured

    def test_add_and_keep(self, flame):
        base = codes(yaw_deg=20.0)
        edited = edit_codes(base, HeadEdit(yaw=30.0, roll=-10.0, add=True, jaw=5.0), flame=flame)
        assert torch.allclose(head_angles(edited).double(), torch.tensor([[50.0, -5.0, -7.0]], dtype=torch.float64), atol=1e-3)
        assert torch.allclose(jaw_opening(edited), jaw_opening(base) + 5.0, atol=1e-5)
        closed = edit_codes(base, HeadEdit(jaw=-30.0, add=True))
        assert float(jaw_opening(closed)) == 0.0 and torch.equal(closed.pose[:, 4:], base.pose[:, 4:])

    def test_identity_codes_untouched_and_jaw_set(self, flame):
        controls = ExpressionControls.from_flame(flame)
        base = codes(batch=3)
        edited = edit_codes(base, HeadEdit(yaw=75.0, pitch=10.0, jaw=20.0, expression=0.5, controls={"smile": 1.0}), controls, flame)
        for name in ("shape", "tex", "light"):
            assert torch.equal(getattr(edited, name), getattr(base, name)), name
        assert torch.allclose(jaw_opening(edited), torch.full((3,), 20.0), atol=1e-5)
        assert torch.allclose(edited.exp, base.exp * 0.5 + controls.combine({"smile": 1.0}), atol=1e-6)

    def test_keep_centre_keeps_the_landmarks_where_they_were(self, flame):
        base = codes()
        turned = edit_codes(base, HeadEdit(yaw=80.0), flame=flame)
        drifting = edit_codes(base, HeadEdit(yaw=80.0, keep_centre=False), flame=flame)

        def centre(c: FlameCodes) -> torch.Tensor:
            out = flame(c.shape, c.exp, c.pose).landmarks3d[..., :2].mean(1)
            return c.cam[:, :1] * (out + c.cam[:, 1:])  # DECA's orthographic projection

        assert torch.allclose(centre(turned), centre(base), atol=1e-5)
        assert not torch.allclose(centre(drifting), centre(base), atol=1e-3)  # the fix did something
        assert torch.equal(keep_centre(flame, base, base).cam, base.cam + 0.0)

    @pytest.mark.parametrize("bad", [dict(yaw=95.0), dict(jaw=-1.0), dict(expression=float("nan")), dict(controls={"smile": 3.0})])
    def test_out_of_range_is_one_sentence(self, bad):
        with pytest.raises(ValueError, match="must be a number in"):
            HeadEdit(**bad)


class TestExpressionControls:
    def test_each_control_moves_its_landmarks_the_asked_way(self, flame):
        controls = ExpressionControls.from_flame(flame)
        assert controls.names == CONTROL_NAMES and controls.directions.shape == (len(CONTROL_NAMES), 50)
        neutral = codes().replace(pose=torch.zeros(1, 6), exp=torch.zeros(1, 50), shape=torch.zeros(1, 100))
        before = flame(neutral.shape, neutral.exp, neutral.pose).landmarks3d[0]
        moves = {"smile": ([48, 54], 1, +1), "mouth_open": ([57, 66], 1, -1),
                 "brows_up": ([19, 24], 1, +1), "brows_frown": ([21, 22], 1, -1)}
        for name, (points, axis, sign) in moves.items():
            exp = controls.combine({name: 1.0})
            after = flame(neutral.shape, exp, neutral.pose).landmarks3d[0]
            moved = (after - before)[points, axis] * sign
            assert (moved > 0).all(), (name, moved)
        assert (controls.fit_error >= 0).all() and (controls.fit_error < 1).all()  # least squares never overshoots

    def test_unknown_control(self, flame):
        with pytest.raises(ValueError, match="unknown expression control"):
            ExpressionControls.from_flame(flame).combine({"wink": 1.0})


class TestTransferMotion:
    def test_absolute_at_full_strength_is_the_papers_recomposition(self):
        source, driver = codes(seed=1), codes(batch=4, seed=2, yaw_deg=-40.0)
        out = transfer_motion(source, driver)
        expected = recompose(source.expand(4), driver)
        for name in ("shape", "tex", "exp", "pose", "cam", "light"):
            assert torch.equal(getattr(out, name), getattr(expected, name)), name

    def test_strength_zero_keeps_the_source_exactly(self):
        source, driver = codes(seed=1), codes(batch=3, seed=2, yaw_deg=50.0)
        for reference in (None, driver.index(0)):
            out = transfer_motion(source, driver, reference, MotionStrengths(0.0, 0.0, 0.0, 0.0))
            for name in ("shape", "exp", "pose", "cam"):
                assert torch.equal(getattr(out, name), getattr(source.expand(3), name)), name

    def test_relative_motion_of_a_driver_on_itself_reproduces_it(self):
        driver = codes(batch=5, seed=3, yaw_deg=25.0)
        pose = driver.pose.clone()
        pose[:, :3] = matrix_to_axis_angle(angles_to_matrix(torch.tensor(
            [[25.0, 0, 0], [40.0, 5, 0], [60.0, -5, 10], [-30.0, 0, 0], [80.0, 10, -5]], dtype=torch.float64))).float()
        driver = driver.replace(pose=pose, cam=driver.cam * torch.tensor([[1.0, 1.0, 1.0]]) + torch.arange(5.0)[:, None] * 0.01)
        out = transfer_motion(driver.index(0), driver, driver.index(0))
        for name in ("pose", "exp", "cam"):
            assert torch.allclose(getattr(out, name), getattr(driver, name), atol=2e-6), name

    def test_half_strength_turns_half_way(self):
        source, driver = codes(seed=1, yaw_deg=0.0), codes(seed=2, yaw_deg=60.0)
        source = source.replace(pose=torch.zeros(1, 6))
        driver = driver.replace(pose=torch.tensor([[0.0, math.radians(60.0), 0.0, 0.2, 0.0, 0.0]]))
        out = transfer_motion(source, driver, strengths=MotionStrengths(head=0.5, jaw=0.5))
        assert abs(float(head_angles(out)[0, 0]) - 30.0) < 1e-4
        assert torch.allclose(out.pose[:, 3], torch.tensor([0.1]))

    def test_relative_keeps_the_sources_own_pose(self):
        source = codes(seed=1, yaw_deg=-20.0)
        reference, driver = codes(seed=2, yaw_deg=10.0), codes(seed=2, yaw_deg=40.0)  # the driver turned 30 degrees
        out = transfer_motion(source, driver, reference, MotionStrengths.preset("rotation"))
        assert abs(float(head_angles(out)[0, 0]) - 10.0) < 0.5  # -20 + 30 (pitch/roll make it not exactly additive)
        assert torch.equal(out.exp, source.exp) and torch.equal(out.cam, source.cam)

    @pytest.mark.parametrize("text, expected", [
        ("head=1,expression=0.5", MotionStrengths(expression=0.5)),
        ("rotation", MotionStrengths(jaw=0.0, expression=0.0, camera=0.0)),
        ("expression", MotionStrengths(head=0.0, camera=0.0)),
    ])
    def test_parse(self, text, expected):
        assert MotionStrengths.parse(text) == expected

    @pytest.mark.parametrize("text", ["nose=1", "head=x", "head=3", "wobble"])
    def test_parse_errors(self, text):
        with pytest.raises(ValueError):
            MotionStrengths.parse(text)


def test_numpy_free_of_surprises():
    """Edits accept the float32 codes DECA gives and return float32."""
    out = edit_codes(codes(), HeadEdit(yaw=45.0))
    assert out.pose.dtype == torch.float32 and np.isfinite(out.pose.numpy()).all()


class TestKeyframes:
    def test_keyframes_are_hit_exactly_and_the_path_is_monotone(self, flame):
        from pasl.keyframes import animate_codes, parse_keyframes

        source = codes(yaw_deg=0.0)
        keyframes = parse_keyframes("0: yaw=0; 24: yaw=75, jaw=10; 48: yaw=0")
        out = animate_codes(source, keyframes, 49, flame=flame)
        assert out.batch_size == 49
        for keyframe in keyframes:
            expected = edit_codes(source, keyframe.edit, flame=flame)
            assert torch.equal(out.pose[keyframe.frame], expected.pose[0]) and torch.equal(out.cam[keyframe.frame], expected.cam[0])
        yaw = head_angles(out)[:, 0]
        assert (yaw[1:25] - yaw[:24] > 0).all() and (yaw[25:] - yaw[24:-1] < 0).all()
        assert abs(float(yaw[12]) - 37.5) < 1e-3  # ease-in-out is symmetric: half-way in time is half-way in angle
        assert float(yaw[1] - yaw[0]) < float(yaw[12] - yaw[11])  # and starts slowly
        for name in ("shape", "tex", "light"):
            assert torch.equal(getattr(out, name), getattr(source, name).expand(49, *getattr(source, name).shape[1:]))

    def test_linear_easing_and_holding_still(self):
        from pasl.keyframes import animate_codes, parse_keyframes

        out = animate_codes(codes(yaw_deg=0.0), parse_keyframes("5: yaw=10; 15: yaw=30"), 20, easing="linear")
        yaw = head_angles(out)[:, 0].double()
        assert torch.allclose(yaw[:6], torch.full((6,), 10.0, dtype=torch.float64), atol=1e-4)
        assert torch.allclose(yaw[15:], torch.full((5,), 30.0, dtype=torch.float64), atol=1e-4)
        assert torch.allclose(yaw[5:16], torch.linspace(10.0, 30.0, 11, dtype=torch.float64), atol=1e-3)

    @pytest.mark.parametrize("text, message", [
        ("", "no keyframes"), ("yaw=3", "must look like"), ("x: yaw=1", "not a frame number"),
        ("0: yaw=1; 0: yaw=2", "two keyframes"), ("0: nose=1", "unknown field"), ("0: yaw=100", "must be a number in"),
        ("0: yaw", "NAME=NUMBER"),
    ])
    def test_parse_errors(self, text, message):
        from pasl.keyframes import parse_keyframes

        with pytest.raises(ValueError, match=message):
            parse_keyframes(text)


class TestPresets:
    def test_round_trip_is_plain_json(self, tmp_path):
        import json

        from pasl.edit import PRESET_FORMAT, load_preset, save_preset

        edit = HeadEdit(yaw=30.0, add=True, jaw=5.0, expression=0.5, controls={"smile": 1.0})
        path = save_preset(edit, tmp_path / "smile.json")
        record = json.loads(path.read_text())
        assert record["format"] == PRESET_FORMAT and record["controls"] == {"smile": 1.0} and record["yaw"] == 30.0
        assert load_preset(path) == edit

    @pytest.mark.parametrize("content, message", [
        ("not json", "not a readable edit preset"),
        ('{"yaw": 3}', "is not an edit preset"),
        ('{"format": "pasl-head-edit/1", "nose": 1}', "unknown preset field"),
        ('{"format": "pasl-head-edit/1", "controls": {"wink": 1}}', "unknown expression control"),
        ('{"format": "pasl-head-edit/1", "yaw": 200}', "yaw must be a number in"),
        ('{"format": "pasl-head-edit/1", "add": "yes"}', "add must be true or false"),
    ])
    def test_bad_files_are_one_sentence_naming_the_file(self, tmp_path, content, message):
        from pasl.edit import load_preset

        path = tmp_path / "p.json"
        path.write_text(content)
        with pytest.raises(ValueError, match=message) as info:
            load_preset(path)
        assert str(path) in str(info.value)
