"""DECA E_flame: strict loading of deca_model.tar, parity with the official ResnetEncoder, messages."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deca_synthetic import crop_images, deca_checkpoint, write_deca_model
from pasl.csg import FlameCodes, FlameEncoder, convert_deca_to_safetensors, load_shape_encoder
from pasl.errors import MissingWeightError, WeightFileError
from pasl.weights import sha256_of
from synthetic import save_official

GOLDEN = Path(__file__).resolve().parent / "golden" / "deca_encoder_official.npz"
PARITY_ATOL = 1e-5
"""Required agreement with the official E_flame (fp32, CPU): not bit-exact on every CPU, 5.5e-6 measured here
(torch 2.14.1, 2 threads); the tightest bound that holds with a 2x margin."""


@pytest.fixture(scope="module")
def deca_path(tmp_path_factory) -> Path:
    return write_deca_model(tmp_path_factory.mktemp("deca") / "deca_model.tar", seed=0)


@pytest.fixture(scope="module")
def encoder(deca_path) -> FlameEncoder:
    return load_shape_encoder(deca_path)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return crop_images(seed=1, batch=2)


@pytest.fixture(scope="module")
def reference(encoder, images) -> torch.Tensor:
    """``encoder.regress(images)``, run once: a ResNet-50 forward costs ~0.5 s on a CI core."""
    return encoder.regress(images)


@pytest.fixture(scope="module")
def reference_one(encoder, images) -> FlameCodes:
    """``encoder(images[1:2])``: batch size changes the kernels, so batch-1 results get their own reference."""
    return encoder(images[1:2])


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, dict[str, torch.Tensor]]:
    return deca_checkpoint(seed=0)


def edited(checkpoint: dict, **eflame_changes) -> dict:
    """A copy of ``checkpoint`` with some E_flame entries replaced (``None`` deletes)."""
    state = dict(checkpoint["E_flame"])
    for key, value in eflame_changes.items():
        key = key.replace("__", ".")
        if value is None:
            del state[key]
        else:
            state[key] = value
    return {**checkpoint, "E_flame": state}


class TestLoadShapeEncoder:
    def test_strict_round_trip_of_all_322_tensors(self, encoder, checkpoint):
        expected = checkpoint["E_flame"]
        state = encoder.state_dict()
        assert len(state) == len(expected) == 322
        for key, value in expected.items():  # BN running stats and num_batches_tracked included
            assert torch.equal(state[key], value), key

    def test_official_key_names(self, encoder):
        keys = set(encoder.state_dict())
        official = ("encoder.conv1.weight", "encoder.layer1.0.downsample.0.weight", "encoder.layer4.2.bn3.running_var")
        for key in (*official, "layers.0.weight", "layers.2.bias"):
            assert key in keys
        assert encoder.layers[2].weight.shape == (236, 1024)

    def test_eval_mode_frozen(self, encoder):
        assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())

    def test_device_and_dtype(self, deca_path):
        model = load_shape_encoder(deca_path, device="cpu", dtype=torch.float64)
        assert model.layers[0].weight.dtype == model.encoder.layer4[2].bn3.running_var.dtype == torch.float64
        assert model.encoder.bn1.num_batches_tracked.dtype == torch.int64

    def test_input_cast_to_model_dtype(self, encoder, images, reference_one):
        codes = encoder(images[1:2].double())  # float32 values, so the cast back is exact
        assert codes.dtype == torch.float32 and torch.equal(codes.to_vector(), reference_one.to_vector())

    def test_legacy_pickle_container(self, tmp_path, encoder):
        path = write_deca_model(tmp_path / "deca_model.tar", seed=0, legacy_format=True)
        state = load_shape_encoder(path).state_dict()
        assert all(torch.equal(state[key], value) for key, value in encoder.state_dict().items())

    def test_trainer_checkpoint_with_optimiser(self, tmp_path, encoder, checkpoint):
        # DECA's trainer also saves 'opt', 'global_step' and 'batch_size' next to the networks
        opt = {
            "state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}],
        }
        path = save_official({**checkpoint, "opt": opt, "global_step": 5, "batch_size": 2}, tmp_path / "model.tar")
        assert torch.equal(load_shape_encoder(path).layers[0].weight, encoder.layers[0].weight)

    def test_bare_eflame_state_dict(self, tmp_path, encoder, checkpoint):
        path = save_official(checkpoint["E_flame"], tmp_path / "E_flame.pth")
        assert torch.equal(load_shape_encoder(path).layers[2].bias, encoder.layers[2].bias)


class TestParity:
    def test_matches_official_resnet_encoder(self, reference, golden):
        error = np.abs(reference.numpy() - golden["encoder_params"]).max()
        assert error <= PARITY_ATOL, error
        assert np.abs(golden["encoder_params"][0] - golden["encoder_params"][1]).mean() > 0.05  # inputs matter

    def test_forward_splits_like_official_decompose_code(self, reference_one, golden):
        codes = reference_one  # also: a batch of one gives the official batch-of-one numbers
        assert isinstance(codes, FlameCodes)
        expected = {"shape": (1, 100), "tex": (1, 50), "exp": (1, 50), "pose": (1, 6), "cam": (1, 3), "light": (1, 9, 3)}
        assert {name: tuple(v.shape) for name, v in codes.items()} == expected
        np.testing.assert_allclose(codes.to_vector().numpy(), golden["encoder_params_item1_alone"], rtol=0, atol=PARITY_ATOL)
        for name in codes.keys():
            np.testing.assert_allclose(codes[name].numpy(), golden[f"encoder_{name}"][1:2], rtol=0, atol=PARITY_ATOL, err_msg=name)

    def test_empty_batch(self, encoder):
        assert encoder(torch.zeros(0, 3, 224, 224)).batch_size == 0

    def test_rejects_channels_last(self, encoder):
        with pytest.raises(ValueError, match="channels-last"):
            encoder(torch.zeros(1, 224, 224, 3))

    def test_rejects_uncropped(self, encoder):
        with pytest.raises(ValueError, match=r"\(1, 3, 256, 256\)"):
            encoder(torch.zeros(1, 3, 256, 256))


class TestSafetensors:
    def test_round_trip_identical_outputs(self, deca_path, encoder, images, reference_one, tmp_path):
        dst = tmp_path / "deca_eflame.safetensors"
        metadata = convert_deca_to_safetensors(deca_path, dst)
        assert metadata["source_sha256"] == sha256_of(deca_path)
        assert metadata["source_file"] == "deca_model.tar" and metadata["format"] == "pasl-deca-eflame"
        converted = load_shape_encoder(dst)
        state = converted.state_dict()
        assert state.keys() == encoder.state_dict().keys()
        assert all(torch.equal(state[key], value) and state[key].dtype == value.dtype for key, value in encoder.state_dict().items())
        assert torch.equal(converted.regress(images[1:2]), reference_one.to_vector())

    def test_refuses_wrong_destination(self, deca_path, tmp_path):
        with pytest.raises(ValueError, match=".safetensors"):
            convert_deca_to_safetensors(deca_path, tmp_path / "out.pth")

    def test_refuses_aeg_conversion(self, tmp_path):
        from safetensors.torch import save_file

        path = tmp_path / "aeg.safetensors"
        save_file({"generator.from_rgb.weight": torch.zeros(1)}, str(path), metadata={"format": "pasl-aeg"})
        with pytest.raises(WeightFileError, match="AEG"):
            load_shape_encoder(path)


class TestMessages:
    def test_missing_file_says_where_to_put_and_get_it(self, tmp_path):
        with pytest.raises(MissingWeightError) as info:
            load_shape_encoder(tmp_path / "deca_model.tar")
        message = str(info.value)
        assert "deca_model.tar" in message and "models/pasl" in message and "weights/" in message
        assert "https://drive.google.com/file/d/1oMwg5xzkgPkYiZT_ZUCwk7CdttEbubkD" in message
        assert "github.com/yfeng95/DECA" in message

    def test_aeg_checkpoint_passed(self, tmp_path):
        aeg = {"generator": {"from_rgb.weight": torch.zeros(1)}, "style_encoder": {"fc.bias": torch.zeros(1)}}
        path = save_official(aeg, tmp_path / "204000_nets_ema.ckpt")
        with pytest.raises(WeightFileError, match=r"looks like a PASL AEG checkpoint.*deca_model\.tar"):
            load_shape_encoder(path)

    def test_face_recognition_backbone_passed(self, tmp_path):
        path = save_official({"input_layer.0.weight": torch.zeros(1), "body.0.res_layer.1.weight": torch.zeros(1)}, tmp_path / "ir50.pth")
        with pytest.raises(WeightFileError, match="IR-50"):
            load_shape_encoder(path)

    def test_missing_key(self, tmp_path, checkpoint):
        path = save_official(edited(checkpoint, encoder__layer2__0__bn2__running_var=None), tmp_path / "deca_model.tar")
        with pytest.raises(WeightFileError, match=r"1 missing keys \(encoder\.layer2\.0\.bn2\.running_var\)"):
            load_shape_encoder(path)

    def test_detail_encoder_in_place_of_eflame(self, tmp_path, checkpoint):
        detail_head = {"layers__2__weight": torch.zeros(128, 1024), "layers__2__bias": torch.zeros(128)}  # E_detail's
        path = save_official(edited(checkpoint, **detail_head), tmp_path / "deca_model.tar")
        with pytest.raises(WeightFileError, match="shape mismatches"):
            load_shape_encoder(path)

    def test_truncated_file(self, deca_path, tmp_path):
        path = tmp_path / "deca_model.tar"
        path.write_bytes(deca_path.read_bytes()[:4096])
        with pytest.raises(WeightFileError, match="truncated or corrupt"):
            load_shape_encoder(path)

    def test_pickle_with_code_is_refused(self, tmp_path):
        path = tmp_path / "deca_model.tar"
        with open(path, "wb") as handle:
            pickle.dump({"E_flame": {"x": Path("/")}}, handle, protocol=2)  # any non-tensor object
        with pytest.raises(WeightFileError, match="refused"):
            load_shape_encoder(path)

    def test_unknown_dict(self, tmp_path):
        path = save_official({"model": {"w": torch.zeros(1)}}, tmp_path / "deca_model.tar")
        with pytest.raises(WeightFileError, match="'E_flame'"):
            load_shape_encoder(path)
