"""FlameCodes (the split of E_flame's 236 values) and the recompose modes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pasl.csg import CODE_LAYOUT, NUM_CODE_PARAMS, FlameCodes, recompose


def numbered(batch: int, offset: float = 0.0) -> FlameCodes:
    """Codes whose value at column k of item b is ``1000 b + k + offset``: every entry says where it came from."""
    vector = torch.arange(NUM_CODE_PARAMS, dtype=torch.float32) + 1000 * torch.arange(batch, dtype=torch.float32)[:, None]
    return FlameCodes.from_vector(vector + offset)


class TestFromVector:
    def test_official_order_and_widths(self):
        assert [name for name, _ in CODE_LAYOUT] == ["shape", "tex", "exp", "pose", "cam", "light"]
        codes = numbered(2)
        # DECA decompose_code: shape 0:100, tex 100:150, exp 150:200, pose 200:206, cam 206:209, light 209:236
        expected = {"shape": (0, 100), "tex": (100, 150), "exp": (150, 200), "pose": (200, 206), "cam": (206, 209), "light": (209, 236)}
        for name, (start, end) in expected.items():
            values = codes[name].reshape(2, -1)
            assert torch.equal(values[1], torch.arange(start, end, dtype=torch.float32) + 1000), name

    def test_light_is_row_major_9x3(self):
        light = numbered(1).light
        assert light.shape == (1, 9, 3)
        assert light[0, 4, 2].item() == 209 + 3 * 4 + 2  # band 4, blue

    def test_round_trip(self):
        vector = torch.randn(3, NUM_CODE_PARAMS)
        assert torch.equal(FlameCodes.from_vector(vector).to_vector(), vector)

    @pytest.mark.parametrize("shape", [(236,), (2, 235), (2, 236, 1)])
    def test_rejects_wrong_shape(self, shape):
        with pytest.raises(ValueError, match=r"\(B, 236\)"):
            FlameCodes.from_vector(torch.zeros(shape))

    def test_rejects_non_tensor(self):
        with pytest.raises(TypeError):
            FlameCodes.from_vector([0.0] * 236)


class TestFlameCodes:
    def test_validates_field_shapes(self):
        fields = numbered(2).as_dict()
        fields["exp"] = torch.zeros(2, 49)
        with pytest.raises(ValueError, match=r"exp must have shape \(B, 50\), got \(2, 49\)"):
            FlameCodes(**fields)

    def test_validates_common_batch(self):
        fields = numbered(2).as_dict()
        fields["cam"] = torch.zeros(3, 3)
        with pytest.raises(ValueError, match="disagree"):
            FlameCodes(**fields)

    def test_validates_common_dtype(self):
        fields = numbered(2).as_dict()
        fields["pose"] = fields["pose"].double()
        with pytest.raises(ValueError, match="disagree"):
            FlameCodes(**fields)

    def test_dict_access(self):
        codes = numbered(2)
        assert codes["cam"] is codes.cam
        assert list(codes.keys()) == [name for name, _ in CODE_LAYOUT]
        assert "pose" in codes and "detail" not in codes
        assert set(dict(codes.items())) == set(codes.keys())
        with pytest.raises(KeyError, match="detail"):
            codes["detail"]

    def test_batch_indexing_keeps_batch_dim(self):
        codes = numbered(4)
        assert codes.index(2).batch_size == 1
        assert codes.index(2).shape[0, 0].item() == 2000
        assert codes.index(-1).shape[0, 0].item() == 3000
        assert codes[1].exp[0, 0].item() == 1150
        sliced = codes[1:3]
        assert sliced.batch_size == 2 and sliced.cam[:, 0].tolist() == [1206, 2206]
        with pytest.raises(IndexError):
            codes.index(4)
        with pytest.raises(TypeError):
            codes[1.5]

    def test_is_frozen_and_replace_copies(self):
        codes = numbered(1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            codes.shape = torch.zeros(1, 100)
        new = codes.replace(shape=torch.zeros(1, 100))
        assert new.shape.sum() == 0 and codes.shape.sum() > 0 and new.exp is codes.exp
        with pytest.raises(KeyError, match="shapes"):
            codes.replace(shapes=torch.zeros(1, 100))
        with pytest.raises(ValueError):
            codes.replace(shape=torch.zeros(1, 99))

    def test_to_cat_expand(self):
        codes = numbered(1)
        assert codes.to(torch.float64).dtype == torch.float64
        assert FlameCodes.cat([codes, numbered(2)]).batch_size == 3
        wide = codes.expand(3)
        assert wide.batch_size == 3 and torch.equal(wide.light[2], codes.light[0])
        wide.shape.add_(1)  # a copy, not a view
        assert codes.shape[0, 0].item() == 0
        with pytest.raises(ValueError):
            numbered(2).expand(3)


def snapshot(codes: FlameCodes) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in codes.items()}


def unchanged(codes: FlameCodes, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(codes[name], value) for name, value in before.items())


SOURCE_OFFSET = 0.5  # source entries end in .5, driver entries are whole numbers


class TestRecompose:
    @pytest.mark.parametrize(
        ("mode", "from_source"),
        [
            ("recompose", {"shape", "tex", "light"}),
            ("reference", set()),
            ("shape_only", {"shape"}),
        ],
    )
    def test_fields_per_mode(self, mode, from_source):
        source, driver = numbered(2, SOURCE_OFFSET), numbered(2)
        out = recompose(source, driver, mode=mode)
        for name in out.keys():
            expected = source if name in from_source else driver
            assert torch.equal(out[name], expected[name]), (mode, name)

    def test_default_is_the_paper(self):
        source, driver = numbered(1, SOURCE_OFFSET), numbered(1)
        out = recompose(source, driver)
        assert torch.equal(out.shape, source.shape)
        # expression, full pose (global and jaw) and camera follow the driver
        assert torch.equal(out.exp, driver.exp) and torch.equal(out.pose, driver.pose) and torch.equal(out.cam, driver.cam)

    def test_one_source_over_many_frames(self):
        source, driver = numbered(1, SOURCE_OFFSET), numbered(5)
        out = recompose(source, driver)
        assert out.batch_size == 5
        assert torch.equal(out.shape, source.shape.expand(5, -1))
        assert torch.equal(out.exp, driver.exp)

    def test_one_frame_over_many_sources(self):  # the official demo: 4 sources, one reference frame
        source, driver = numbered(4, SOURCE_OFFSET), numbered(1)
        out = recompose(source, driver, mode="reference")
        assert out.batch_size == 4 and torch.equal(out.pose, driver.pose.expand(4, -1))

    @pytest.mark.parametrize("mode", ["recompose", "reference", "shape_only"])
    def test_never_mutates_or_aliases_inputs(self, mode):
        source, driver = numbered(1, SOURCE_OFFSET), numbered(3)
        before_source, before_driver = snapshot(source), snapshot(driver)
        out = recompose(source, driver, mode=mode)
        assert unchanged(source, before_source) and unchanged(driver, before_driver)
        for value in out.values():
            value.mul_(-7)  # editing the result in place must not reach the inputs
        assert unchanged(source, before_source) and unchanged(driver, before_driver)

    def test_rejects_incompatible_batches(self):
        with pytest.raises(ValueError, match="2 and 3"):
            recompose(numbered(2), numbered(3))

    def test_rejects_unknown_mode(self):
        with pytest.raises(ValueError, match="shape_only"):
            recompose(numbered(1), numbered(1), mode="swap")

    def test_rejects_mixed_dtypes(self):
        with pytest.raises(ValueError, match="dtype"):
            recompose(numbered(1), numbered(1).to(torch.float64))

    def test_rejects_dicts(self):
        with pytest.raises(TypeError, match="FlameCodes"):
            recompose(numbered(1).as_dict(), numbered(1))


def test_reads_like_a_codedict():
    codes = FlameCodes.from_vector(torch.arange(2 * 236, dtype=torch.float32).view(2, 236))
    as_dict = dict(codes)
    assert list(as_dict) == ["shape", "tex", "exp", "pose", "cam", "light"]
    assert torch.equal(as_dict["cam"], codes.get("cam")) and codes.get("detail") is None
    assert as_dict["light"].shape == (2, 9, 3)
