"""pasl.safe_pickle: FLAME/DECA pickles load as plain numpy, and no pickle can run code."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
import torch

from flame_synthetic import (
    Global,
    Instance,
    Py2Pickle,
    Reduce,
    chumpy_ch,
    chumpy_node,
    csc_arrays,
    scipy_csc,
)
from pasl import safe_pickle
from pasl.errors import WeightFileError
from shared_assets import needs

SHARED_FLAME = Path(__file__).resolve().parents[2] / "shared" / "assets" / "flame"


def py2_bytes(obj) -> bytes:
    return Py2Pickle().dumps(obj)


class _Payload:
    """Pickles as ``module.name(*args)``: the classic code-execution gadget."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


# --------------------------------------------------------------------------- refusal


class TestRefusesCode:
    def test_os_system_payload_is_refused_and_nothing_runs(self, tmp_path):
        marker = tmp_path / "pwned"
        path = tmp_path / "generic_model.pkl"
        path.write_bytes(pickle.dumps({"shapedirs": _Payload(os.system, f"touch {marker}")}, protocol=2))
        with pytest.raises(WeightFileError) as info:
            safe_pickle.load_pickle(path)
        message = str(info.value)
        assert str(path) in message
        assert "system" in message and ("posix.system" in message or "os.system" in message)
        assert not marker.exists()

    def test_py2_style_os_system_global_is_refused(self, tmp_path):
        marker = tmp_path / "pwned"
        data = py2_bytes({"f": Reduce(Global("os", "system"), (f"touch {marker}",))})
        with pytest.raises(WeightFileError, match=r"refused to unpickle the global os\.system"):
            safe_pickle.loads(data, source="evil.pkl")
        assert not marker.exists()

    @pytest.mark.parametrize(
        "module, name",
        [("builtins", "eval"), ("__builtin__", "eval"), ("subprocess", "Popen"), ("numpy", "load"),
         ("numpy.testing._private.utils", "runstring"), ("torch", "load"), ("builtins", "getattr"),
         ("copyreg", "__newobj__"), ("scipy.sparse", "load_npz")],
    )
    def test_other_dangerous_globals_are_refused(self, module, name):
        data = py2_bytes(Reduce(Global(module, name), ("1",)))
        with pytest.raises(WeightFileError, match=rf"{module}\.{name}"):
            safe_pickle.loads(data, source="x.pkl")

    def test_payload_hidden_in_chumpy_state_is_refused(self, tmp_path):
        marker = tmp_path / "pwned"
        node = chumpy_ch(np.zeros(3))
        node.state["x"] = Reduce(Global("posix", "system"), (f"touch {marker}",))
        with pytest.raises(WeightFileError, match="posix.system"):
            safe_pickle.loads(py2_bytes({"shapedirs": node}))
        assert not marker.exists()

    def test_reconstructor_only_builds_stand_ins(self):
        args = (Global("__builtin__", "set"), Global("__builtin__", "object"), None)
        data = py2_bytes(Reduce(Global("copy_reg", "_reconstructor"), args))
        with pytest.raises(WeightFileError, match="_reconstructor"):
            safe_pickle.loads(data)

    def test_array_reconstruct_only_builds_ndarray(self):
        data = py2_bytes(Reduce(Global("numpy.core.multiarray", "_reconstruct"), (Global("__builtin__", "set"), (0,), b"b")))
        with pytest.raises(WeightFileError, match="only numpy.ndarray"):
            safe_pickle.loads(data)

    def test_codecs_encode_is_latin1_only(self):
        with pytest.raises(WeightFileError, match="_codecs.encode"):
            safe_pickle.loads(py2_bytes(Reduce(Global("_codecs", "encode"), ("abc", "rot13"))))
        assert safe_pickle.loads(py2_bytes(Reduce(Global("_codecs", "encode"), ("\xe9", "latin1")))) == b"\xe9"

    def test_top_level_persistent_id_is_refused(self):
        data = pickle.PROTO + b"\x02" + pickle.SHORT_BINSTRING + b"\x03abc" + pickle.BINPERSID + pickle.STOP
        with pytest.raises(WeightFileError, match="persistent id"):
            safe_pickle.loads(data)

    def test_payload_inside_torch_storage_bytes_is_refused(self, tmp_path):
        marker = tmp_path / "pwned"
        inner = pickle.dumps(_Payload(os.system, f"touch {marker}"), protocol=2)
        data = pickle.dumps(
            _Payload(torch.storage._load_from_bytes, inner), protocol=2
        )  # a storage whose bytes hold a gadget
        with pytest.raises(WeightFileError, match="system"):
            safe_pickle.loads(data)
        assert not marker.exists()

    def test_npy_object_array_with_payload_is_refused(self, tmp_path):
        marker = tmp_path / "pwned"
        path = tmp_path / "landmark_embedding.npy"
        np.save(path, np.array({"static_lmk_faces_idx": _Payload(os.system, f"touch {marker}")}, dtype=object))
        with pytest.raises(WeightFileError, match=r"landmark_embedding\.npy.*system"):
            safe_pickle.load_npy(path)
        assert not marker.exists()


# --------------------------------------------------------------------------- numpy


class TestNumpyArrays:
    @pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint32, np.int64, np.int32, np.uint8, np.bool_])
    def test_py2_array_round_trip(self, dtype):
        rng = np.random.RandomState(0)
        array = (rng.standard_normal((7, 5)) * 50).astype(dtype)
        out = safe_pickle.loads(py2_bytes({"a": array}))["a"]
        assert out.dtype == array.dtype and out.shape == array.shape
        np.testing.assert_array_equal(out, array)

    def test_large_array_uses_binstring(self):
        array = np.arange(40000, dtype=np.float64).reshape(200, 200)
        data = py2_bytes(array)
        assert pickle.BINSTRING in data
        np.testing.assert_array_equal(safe_pickle.loads(data), array)

    def test_py3_protocol2_pickle_loads(self):
        value = {"w": np.linspace(0, 1, 12).reshape(3, 4), "s": {1, 2}, "t": ("lbs", None, 3.5)}
        out = safe_pickle.loads(pickle.dumps(value, protocol=2))
        np.testing.assert_array_equal(out["w"], value["w"])
        assert out["s"] == {1, 2} and out["t"] == ("lbs", None, 3.5)

    @pytest.mark.parametrize("protocol", [3, 4, 5])
    def test_newer_protocols_load(self, protocol):
        value = {"c": np.arange(12.0).reshape(3, 4), "f": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))}
        out = safe_pickle.loads(pickle.dumps(value, protocol=protocol))
        for key in value:
            np.testing.assert_array_equal(out[key], value[key])

    def test_plain_npy_loads_without_pickle(self, tmp_path):
        path = tmp_path / "a.npy"
        np.save(path, np.arange(6, dtype=np.int16).reshape(2, 3))
        np.testing.assert_array_equal(safe_pickle.load_npy(path), np.arange(6).reshape(2, 3))


# --------------------------------------------------------------------------- chumpy


class TestChumpy:
    @pytest.mark.parametrize("style", ["reconstructor", "newobj"])
    def test_leaf_value_is_x_as_float64(self, style):
        value = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        out = safe_pickle.loads(py2_bytes({"shapedirs": chumpy_ch(value, style)}))["shapedirs"]
        assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, value)

    def test_scalar_leaf_is_at_least_1d(self):
        out = safe_pickle.loads(py2_bytes(chumpy_ch(np.float64(2.5))))
        assert out.shape == (1,) and out[0] == 2.5

    def test_select_reshape_transpose_are_evaluated(self):
        base = np.arange(12, dtype=np.float64).reshape(3, 4)
        select = chumpy_node("chumpy.reordering", "Select", a=chumpy_ch(base), idxs=np.array([11, 0, 5, 6]),
                             preferred_shape=(2, 2))
        reshape = chumpy_node("chumpy.reordering", "Reshape", a=chumpy_ch(base), newshape=(4, 3))
        transpose = chumpy_node("chumpy.reordering", "transpose", a=chumpy_ch(base), axes=None)
        out = safe_pickle.loads(py2_bytes({"s": select, "r": reshape, "t": transpose}))
        np.testing.assert_array_equal(out["s"], [[11.0, 0.0], [5.0, 6.0]])
        np.testing.assert_array_equal(out["r"], base.reshape(4, 3))
        np.testing.assert_array_equal(out["t"], base.T)

    def test_other_derived_node_raises_clearly(self):
        node = chumpy_node("chumpy.ch_ops", "add", a=chumpy_ch(np.ones(2)), b=chumpy_ch(np.ones(2)))
        with pytest.raises(WeightFileError, match=r"derived chumpy expression \(chumpy\.ch_ops\.add\).*without chumpy") as info:
            safe_pickle.loads(py2_bytes({"posedirs": node}), source="generic_model.pkl")
        assert "['posedirs']" in str(info.value) and "generic_model.pkl" in str(info.value)

    def test_leaf_without_x_raises(self):
        node = chumpy_ch(np.ones(2))
        del node.state["x"]
        with pytest.raises(WeightFileError, match="no 'x' attribute"):
            safe_pickle.loads(py2_bytes(node))


# --------------------------------------------------------------------------- scipy sparse


def _sparse_example() -> np.ndarray:
    dense = np.zeros((5, 9))
    dense[0, 1], dense[0, 8], dense[3, 1], dense[4, 4], dense[2, 0] = 0.5, 0.25, 1.5, -2.0, 3.0
    return dense


class TestSparse:
    @pytest.mark.parametrize("module", ["scipy.sparse.csc", "scipy.sparse._csc"])
    @pytest.mark.parametrize("style", ["reconstructor", "newobj"])
    def test_csc_becomes_dense(self, module, style):
        dense = _sparse_example()
        out = safe_pickle.loads(py2_bytes({"J_regressor": scipy_csc(dense, style, module)}))["J_regressor"]
        np.testing.assert_array_equal(out, dense)

    def test_csr_and_coo(self):
        dense = _sparse_example()
        data, indices, indptr = csc_arrays(dense.T)  # CSC of the transpose == CSR of the matrix
        csr = Instance(Global("scipy.sparse.csr", "csr_matrix"),
                       {"_shape": dense.shape, "data": data, "indices": indices, "indptr": indptr})
        rows, cols = np.nonzero(dense)
        coo = Instance(Global("scipy.sparse.coo", "coo_matrix"),
                       {"_shape": dense.shape, "data": np.concatenate([dense[rows, cols], [1.0]]),
                        "row": np.concatenate([rows, [0]]), "col": np.concatenate([cols, [1]])})  # a duplicate: summed
        out = safe_pickle.loads(py2_bytes({"csr": csr, "coo": coo}))
        np.testing.assert_array_equal(out["csr"], dense)
        expected = dense.copy()
        expected[0, 1] += 1.0
        np.testing.assert_array_equal(out["coo"], expected)

    def test_inconsistent_sparse_raises(self):
        node = scipy_csc(_sparse_example())
        node.state["indptr"] = node.state["indptr"][:-1]
        with pytest.raises(WeightFileError, match="sparse matrix.*inconsistent"):
            safe_pickle.loads(py2_bytes(node))

    def test_index_out_of_range_raises(self):
        node = scipy_csc(_sparse_example())
        node.state["indices"] = node.state["indices"] + 10
        with pytest.raises(WeightFileError, match="outside the matrix"):
            safe_pickle.loads(py2_bytes(node))


# --------------------------------------------------------------------------- torch tensors


class TestTorchTensors:
    def test_plain_pickled_tensors_become_numpy(self, tmp_path):
        base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
        tensors = {
            "long": torch.arange(-5, 12, dtype=torch.int64).reshape(17, 1),
            "float": torch.linspace(-1, 1, 51).reshape(17, 3),
            "view": base[1:5, 2:9:3],  # storage offset and strides
            "transposed": base.t(),
            "half": torch.tensor([1.5, -2.25], dtype=torch.float16),
            "bool": torch.tensor([True, False, True]),
            "empty": torch.zeros(0, 3),
        }
        path = tmp_path / "embedding.npy"
        np.save(path, np.array(dict(tensors, plain=np.eye(2)), dtype=object))
        out = safe_pickle.load_npy(path)
        assert isinstance(out, dict)
        for key, tensor in tensors.items():
            assert isinstance(out[key], np.ndarray), key
            assert out[key].shape == tuple(tensor.shape), key
            np.testing.assert_array_equal(out[key], tensor.numpy(), err_msg=key)
        np.testing.assert_array_equal(out["plain"], np.eye(2))

    @needs(SHARED_FLAME / "landmark_embedding.npy", reason="shared FLAME assets absent")
    def test_real_landmark_embedding_equals_numpy_load(self):
        path = SHARED_FLAME / "landmark_embedding.npy"
        ours = safe_pickle.load_npy(path)
        reference = np.load(path, allow_pickle=True, encoding="latin1")[()]  # trusted shared asset; needs torch
        assert set(ours) == set(reference)
        for key, value in reference.items():
            value = value.numpy() if torch.is_tensor(value) else value
            assert ours[key].dtype == value.dtype, key
            np.testing.assert_array_equal(ours[key], value, err_msg=key)
        assert ours["dynamic_lmk_faces_idx"].shape == (79, 17)
        assert ours["dynamic_lmk_bary_coords"].shape == (79, 17, 3)


# --------------------------------------------------------------------------- corrupt files


class TestCorruptFiles:
    def test_truncated_pickle(self, tmp_path):
        path = tmp_path / "generic_model.pkl"
        path.write_bytes(py2_bytes({"v": np.ones((50, 3))})[:-40])
        with pytest.raises(WeightFileError, match=r"generic_model\.pkl could not be read as a pickle"):
            safe_pickle.load_pickle(path)

    def test_random_bytes(self, tmp_path):
        path = tmp_path / "generic_model.pkl"
        path.write_bytes(np.random.RandomState(0).bytes(300))
        with pytest.raises(WeightFileError):
            safe_pickle.load_pickle(path)

    def test_not_a_npy(self, tmp_path):
        path = tmp_path / "landmark_embedding.npy"
        path.write_bytes(b"not numpy at all")
        with pytest.raises(WeightFileError, match="not a valid .npy"):
            safe_pickle.load_npy(path)

    def test_truncated_torch_storage(self):
        inner = next(arg for op, arg, _ in pickletools.genops(pickle.dumps(torch.arange(10), protocol=4))
                     if op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"))
        whole = pickle.dumps(_Payload(torch.storage._load_from_bytes, inner), protocol=4)
        with pytest.raises(WeightFileError, match="bare torch storage"):
            safe_pickle.loads(whole)
        cut = pickle.dumps(_Payload(torch.storage._load_from_bytes, inner[:-8]), protocol=4)
        with pytest.raises(WeightFileError, match="truncated"):
            safe_pickle.loads(cut)
