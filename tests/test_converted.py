"""pasl.weights.save_converted, the one writer of every conversion, and the metadata layout
that files converted by earlier versions already carry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pasl.weights import check_destination, read_npz, read_safetensors, save_converted, sha256_of

OLD_LAYOUTS = {
    "aeg": {"format", "variant", "source_file", "source_sha256", "converted_by"},
    "deca": {"format", "content", "source_file", "source_sha256", "converted_by"},
    "flame": {
        "format", "format_version", "model_file", "model_sha256", "landmark_file", "landmark_sha256",
        "n_shape", "n_exp", "converted_by",
    },
}
"""Metadata keys the converters wrote before they shared :func:`save_converted`."""


@pytest.fixture
def sources(tmp_path):
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    return first, second


class TestSaveConverted:
    @pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
    def test_round_trip_with_provenance(self, tmp_path, sources, suffix):
        tensors = {"x": torch.arange(6, dtype=torch.float32).view(2, 3).t(), "i": torch.tensor([1, -1])}
        dst = tmp_path / "sub" / f"out{suffix}"
        metadata = save_converted(
            tensors, dst, format="pasl-test", format_version="2",
            sources={"model": sources[0], "landmark": sources[1]}, extra={"n": "3"},
        )
        assert metadata["format"] == "pasl-test" and metadata["format_version"] == "2" and metadata["n"] == "3"
        assert metadata["model_file"] == "a.bin" and metadata["model_sha256"] == sha256_of(sources[0])
        assert metadata["landmark_file"] == "b.bin" and metadata["landmark_sha256"] == sha256_of(sources[1])
        assert metadata["converted_by"].startswith("pasl ")
        read, stored = read_safetensors(dst) if suffix == ".safetensors" else read_npz(dst)
        assert stored == metadata
        assert set(read) == {"x", "i"}
        for name, tensor in tensors.items():
            assert torch.equal(torch.as_tensor(read[name]), tensor) and torch.as_tensor(read[name]).dtype == tensor.dtype
        assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]

    def test_single_source_and_no_version(self, tmp_path, sources):
        metadata = save_converted({"w": torch.zeros(1)}, tmp_path / "w.safetensors", format="f", sources=sources[0])
        assert set(metadata) == {"format", "source_file", "source_sha256", "converted_by"}

    def test_npz_metadata_is_json_without_pickles(self, tmp_path, sources):
        dst = tmp_path / "w.npz"
        metadata = save_converted({"w": torch.ones(2)}, dst, format="f", sources=sources[0])
        with np.load(dst, allow_pickle=False) as data:
            assert json.loads(str(data["__metadata__"])) == metadata

    def test_failed_write_leaves_the_old_file_and_no_temporary(self, tmp_path, sources):
        dst = tmp_path / "w.safetensors"
        save_converted({"w": torch.ones(2)}, dst, format="old", sources=sources[0])
        before = dst.read_bytes()
        shared = torch.zeros(4)
        with pytest.raises(RuntimeError):  # safetensors refuses tensors that share memory
            save_converted({"a": shared, "b": shared}, dst, format="new", sources=sources[0])
        assert dst.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin", "w.safetensors"]

    def test_destination_suffix(self, tmp_path, sources):
        with pytest.raises(ValueError, match=r"\.safetensors or \.npz, got"):
            save_converted({"w": torch.ones(1)}, tmp_path / "w.pt", format="f", sources=sources[0])
        with pytest.raises(ValueError, match=r"must end in \.safetensors, got"):
            check_destination(tmp_path / "w.npz")
        assert check_destination(str(tmp_path / "w.npz"), (".npz",)) == tmp_path / "w.npz"

    def test_foreign_npz_reads_with_empty_metadata(self, tmp_path):
        path = tmp_path / "plain.npz"
        np.savez(path, a=np.zeros(3))
        arrays, metadata = read_npz(path)
        assert metadata == {} and set(arrays) == {"a"}


class TestLayoutOfEarlierConversions:
    def test_aeg(self, nets_ema_path, tmp_path):
        from pasl.aeg_files import convert_aeg_to_safetensors

        assert set(convert_aeg_to_safetensors(nets_ema_path, tmp_path / "aeg.safetensors")) == OLD_LAYOUTS["aeg"]

    def test_deca(self, tmp_path):
        from deca_synthetic import write_deca_model
        from pasl.csg import convert_deca_to_safetensors

        src = write_deca_model(tmp_path / "deca_model.tar")
        assert set(convert_deca_to_safetensors(src, tmp_path / "deca.safetensors")) == OLD_LAYOUTS["deca"]

    def test_flame_and_an_old_npz_still_loads(self, tmp_path):
        import flame_synthetic as fs
        from pasl.flame import BUFFER_NAMES
        from pasl.flame_files import convert_flame, load_flame, read_flame_arrays

        model = fs.write_generic_model(tmp_path / "generic_model.pkl")
        embedding = fs.write_landmark_embedding(tmp_path / "landmark_embedding.npy")
        metadata = convert_flame(model, embedding, tmp_path / "flame.safetensors")
        assert set(metadata) == OLD_LAYOUTS["flame"]

        # a file exactly as the pre-save_converted convert_flame wrote it
        old = tmp_path / "old.npz"
        layer = load_flame(model, embedding)
        arrays = {name: getattr(layer, name).numpy() for name in BUFFER_NAMES}
        with open(old, "wb") as handle:
            np.savez(handle, __metadata__=np.array(json.dumps(metadata, sort_keys=True)), **arrays)
        assert all(np.array_equal(read_flame_arrays(old)[k], arrays[k]) for k in BUFFER_NAMES)

    def test_an_old_aeg_safetensors_still_loads(self, nets_ema_path, tmp_path):
        from pasl.aeg_files import AEG_PARTS, load_aeg, read_aeg_state

        states = read_aeg_state(nets_ema_path)
        old = tmp_path / "old.safetensors"
        metadata = {
            "format": "pasl-aeg", "variant": "self_att", "source_file": nets_ema_path.name,
            "source_sha256": sha256_of(nets_ema_path), "converted_by": "pasl 0.1.0",
        }
        flat = {f"{part}.{key}": t.contiguous() for part in AEG_PARTS for key, t in states[part].items()}
        save_file(flat, str(old), metadata=metadata)
        assert load_aeg(old).style_encoder.self_attention
