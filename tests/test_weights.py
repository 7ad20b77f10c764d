"""Loading AEG weight files: formats, safety, and messages for wrong files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from pasl.__main__ import main as cli
from pasl.aeg_files import load_aeg, read_aeg_state
from pasl.errors import MissingWeightError, WeightFileError
from pasl.weights import sha256_of
from synthetic import aeg_inputs, aeg_states, save_official, write_nets_ema


def _outputs(model):
    x = aeg_inputs(7, 2)
    with torch.no_grad():
        style = model.style_encoder(x["source"])
        return style, model.generator(x["depth"], x["landmarks"], style)


class TestOfficialFormats:
    def test_file_is_tagged_cuda_like_the_official_ones(self, nets_ema_path):
        if torch.cuda.is_available():
            pytest.skip("a CUDA machine can load CUDA-tagged files without map_location")
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(nets_ema_path, weights_only=True)

    def test_strict_round_trip(self, nets_ema_path):
        model = load_aeg(nets_ema_path)
        expected = aeg_states(seed=0)
        for part in ("generator", "style_encoder"):
            loaded = getattr(model, part).state_dict()
            assert loaded.keys() == expected[part].keys()
            assert all(torch.equal(loaded[k], expected[part][k]) for k in loaded)
        assert model.style_encoder.self_attention

    def test_variant_without_self_attention_is_detected(self, nets_ema_plain_path):
        model = load_aeg(nets_ema_plain_path)
        assert not model.style_encoder.self_attention
        assert len(model.style_encoder.state_dict()) == 33

    def test_training_checkpoint_ignores_discriminators(self, tmp_path):
        states = aeg_states(seed=0)
        states["discriminator"] = {"input.weight": torch.zeros(64, 9, 3, 3)}
        states["discriminator2"] = {"input.weight": torch.zeros(64, 9, 3, 3)}
        path = save_official(states, tmp_path / "204000_nets.ckpt")
        model = load_aeg(path)
        assert torch.equal(model.generator.from_rgb.weight, states["generator"]["from_rgb.weight"])

    def test_device_and_dtype_are_applied(self, nets_ema_path):
        model = load_aeg(nets_ema_path, device="cpu", dtype=torch.float64)
        assert {p.dtype for p in model.parameters()} == {torch.float64}
        assert {p.device.type for p in model.parameters()} == {"cpu"}


class TestSafetensors:
    def test_conversion_gives_identical_outputs_and_records_the_source(self, nets_ema_path, tmp_path, capsys):
        dst = tmp_path / "pasl_aeg_204000.safetensors"
        assert cli(["convert-weights", str(nets_ema_path), str(dst)]) == 0
        assert f'"source_sha256": "{sha256_of(nets_ema_path)}"' in capsys.readouterr().out

        from safetensors import safe_open

        with safe_open(str(dst), framework="pt") as handle:
            meta = handle.metadata()
        assert meta["variant"] == "self_att" and meta["source_file"] == "204000_nets_ema.ckpt"
        for a, b in zip(_outputs(load_aeg(nets_ema_path)), _outputs(load_aeg(dst))):
            assert torch.equal(a, b)

    def test_foreign_safetensors_is_refused(self, tmp_path):
        from safetensors.torch import save_file

        path = tmp_path / "some_lora.safetensors"
        save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
        with pytest.raises(WeightFileError, match="not a PASL AEG conversion"):
            load_aeg(path)

    def test_corrupt_safetensors_is_explained(self, tmp_path):
        path = tmp_path / "broken.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
        with pytest.raises(WeightFileError, match="not a valid .safetensors"):
            load_aeg(path)


class _RunsCode:
    """A pickle payload that would create a file if it were ever unpickled unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class TestBadFiles:
    def test_missing_file_says_where_to_put_and_get_it(self, tmp_path):
        with pytest.raises(MissingWeightError) as info:
            load_aeg(tmp_path / "204000_nets_ema.ckpt")
        message = str(info.value)
        assert "204000_nets_ema.ckpt" in message and "models/pasl" in message and "drive.google.com" in message
        assert isinstance(info.value, FileNotFoundError)

    def test_code_payload_is_refused_and_never_runs(self, tmp_path):
        marker = tmp_path / "pwned"
        path = tmp_path / "evil_nets_ema.ckpt"
        torch.save({"generator": {"x": _RunsCode(marker)}, "style_encoder": {}}, path)
        with pytest.raises(WeightFileError, match="could run code"):
            load_aeg(path)
        assert not marker.exists()

    def test_plain_pickle_with_payload_is_refused(self, tmp_path):
        marker = tmp_path / "pwned"
        path = tmp_path / "evil.ckpt"
        path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
        with pytest.raises(WeightFileError):
            load_aeg(path)
        assert not marker.exists()

    def test_truncated_file_is_explained(self, nets_ema_path, tmp_path):
        path = tmp_path / "204000_nets_ema.ckpt"
        path.write_bytes(nets_ema_path.read_bytes()[: 1 << 20])
        with pytest.raises(WeightFileError, match="truncated or corrupt"):
            load_aeg(path)

    def test_deca_file_is_recognised(self, tmp_path):
        path = save_official(
            {"E_flame": {"layers.0.weight": torch.zeros(2, 2)}, "E_detail": {}, "D_detail": {}}, tmp_path / "deca_model.tar"
        )
        with pytest.raises(WeightFileError, match="looks like a DECA/CSG file"):
            load_aeg(path)

    def test_ir50_file_is_recognised(self, tmp_path):
        path = save_official(
            {"input_layer.0.weight": torch.zeros(1), "body.0.res_layer.1.weight": torch.zeros(1)}, tmp_path / "Backbone_IR_50_Epoch_80.pth"
        )
        with pytest.raises(WeightFileError, match="IR-50"):
            load_aeg(path)

    def test_optimiser_file_is_recognised(self, tmp_path):
        optims = {"generator": {"state": {}, "param_groups": []}, "style_encoder": {"state": {}, "param_groups": []}}
        path = save_official(optims, tmp_path / "204000_optims.ckpt")
        with pytest.raises(WeightFileError, match="optimiser state"):
            load_aeg(path)

    def test_missing_and_unexpected_keys_are_summarised(self, tmp_path):
        states = aeg_states(seed=0)
        del states["generator"]["to_rgb_lm.2.weight"]
        states["generator"]["extra.weight"] = torch.zeros(1)
        path = save_official(states, tmp_path / "x_nets_ema.ckpt")
        with pytest.raises(
            WeightFileError, match=r"'generator'.*1 missing keys \(to_rgb_lm.2.weight\); 1 unexpected keys \(extra.weight\)"
        ):
            load_aeg(path)

    def test_shape_mismatch_is_summarised(self, tmp_path):
        states = aeg_states(seed=0)
        states["style_encoder"]["fc.weight"] = torch.zeros(64, 512)
        path = save_official(states, tmp_path / "x_nets_ema.ckpt")
        with pytest.raises(WeightFileError, match=r"fc.weight \(64, 512\) vs \(128, 512\)"):
            load_aeg(path)

    def test_unrelated_dict_is_explained(self, tmp_path):
        path = save_official({"weights": torch.zeros(1)}, tmp_path / "x.pth")
        with pytest.raises(WeightFileError, match="expected a dict with 'generator' and 'style_encoder'"):
            read_aeg_state(path)

    def test_cli_prints_one_line_and_exits_2(self, tmp_path, capsys):
        assert cli(["convert-weights", str(tmp_path / "nope.ckpt"), str(tmp_path / "out.safetensors")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: weight file not found") and err.count("\n") == 1
        assert not (tmp_path / "out.safetensors").exists()

    def test_cli_refuses_a_wrong_destination_suffix(self, nets_ema_path, tmp_path, capsys):
        assert cli(["convert-weights", str(nets_ema_path), str(tmp_path / "out.ckpt")]) == 2
        assert ".safetensors" in capsys.readouterr().err


def test_plain_variant_round_trip_through_a_new_file(tmp_path):
    path = write_nets_ema(tmp_path / "1_nets_ema.ckpt", seed=9, self_attention=False)
    assert not load_aeg(path).style_encoder.self_attention


class TestConvertCommands:
    def test_deca_file_is_converted_by_convert_weights(self, tmp_path, capsys):
        from deca_synthetic import write_deca_model
        from pasl.csg import load_shape_encoder

        src = write_deca_model(tmp_path / "deca_model.tar")
        dst = tmp_path / "pasl_deca.safetensors"
        assert cli(["convert-weights", str(src), str(dst)]) == 0
        assert sha256_of(src) in capsys.readouterr().out
        images = torch.rand(1, 3, 224, 224)
        with torch.no_grad():
            assert torch.equal(load_shape_encoder(src).regress(images), load_shape_encoder(dst).regress(images))

    def test_convert_flame(self, tmp_path, capsys):
        import flame_synthetic as fs
        from pasl.flame_files import load_flame

        model = fs.write_generic_model(tmp_path / "generic_model.pkl")
        embedding = fs.write_landmark_embedding(tmp_path / "landmark_embedding.npy")
        dst = tmp_path / "pasl_flame.safetensors"
        assert cli(["convert-flame", str(model), str(embedding), str(dst)]) == 0
        assert sha256_of(model) in capsys.readouterr().out
        codes = torch.zeros(1, 100), torch.zeros(1, 50), torch.full((1, 6), 0.1)
        assert torch.equal(load_flame(model, embedding)(*codes).vertices, load_flame(dst)(*codes).vertices)
