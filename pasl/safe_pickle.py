"""An allow-listed unpickler for the pickled FLAME assets: no pickle here can run code.

Two licence-bound files reach PASL only as pickles:

* ``generic_model.pkl`` (FLAME 2020): a Python-2 pickle (read with ``encoding="latin1"``)
  holding numpy arrays, a ``scipy.sparse`` CSC matrix (``J_regressor``) and ``chumpy``
  ``Ch`` objects (``shapedirs`` and possibly others), rebuilt through
  ``copy_reg._reconstructor`` or ``NEWOBJ`` plus ``__setstate__``.
* ``landmark_embedding.npy`` (DECA): a ``.npy`` file whose 0-d object array holds a dict of
  numpy arrays and plain-pickled torch tensors (``torch._utils._rebuild_tensor_v2`` over a
  ``torch.storage._load_from_bytes`` storage, itself a legacy ``torch.save`` stream).

``pickle.load`` would import and call whatever those files name. :class:`SafeUnpickler`
instead resolves each global through a fixed table: numpy array and dtype reconstruction,
``set``/``OrderedDict``, latin-1 ``_codecs.encode``, and data-only stand-ins for chumpy nodes,
scipy sparse matrices and torch tensors. Anything else raises :class:`WeightFileError`
naming the file and the refused global, before it is called. Neither chumpy, scipy nor
torch is imported or needed.

After unpickling, stand-ins are turned into plain ``numpy.ndarray``:

* ``chumpy.ch.Ch`` (a leaf node): its value lives in the ``x`` attribute of the pickled
  state (chumpy's ``r`` is a cache that ``__getstate__`` drops), evaluated as chumpy does,
  ``np.atleast_1d(np.asarray(x, float64))``.
* derived chumpy nodes ``chumpy.reordering.Select`` (``a.ravel()[idxs]`` reshaped to
  ``preferred_shape``), ``Reshape`` (``a.reshape(newshape)``) and ``transpose``
  (``np.transpose(a, axes)``) are evaluated from their inputs; any other chumpy class raises
  :class:`WeightFileError` (it would need chumpy to evaluate).
* scipy ``csc``/``csr``/``coo`` matrices become dense ``float`` arrays (duplicates summed, as
  ``todense()`` does), rebuilt from ``data``/``indices``/``indptr`` (or ``row``/``col``).
* torch tensors become numpy arrays with the tensor's dtype, shape and values.
"""

from __future__ import annotations

import collections
import io
import logging
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import WeightFileError

log = logging.getLogger(__name__)

__all__ = ["SafeUnpickler", "load_npy", "load_pickle", "loads"]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""First value of a legacy (non-zip) ``torch.save`` stream (torch/serialization.py MAGIC_NUMBER)."""
TORCH_LEGACY_PROTOCOL = 1001
"""Second value of a legacy ``torch.save`` stream (torch/serialization.py PROTOCOL_VERSION)."""

_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}
"""Legacy torch storage classes and the little-endian numpy dtype of their elements."""

_NUMPY_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_COPYREG = ("copy_reg", "copyreg")
_BUILTINS = ("__builtin__", "builtins")
_SPARSE_MODULES = (
    "scipy.sparse",
    "scipy.sparse.csc", "scipy.sparse._csc",
    "scipy.sparse.csr", "scipy.sparse._csr",
    "scipy.sparse.coo", "scipy.sparse._coo",
    "scipy.sparse._arrays",
)
_SPARSE_CLASSES = {
    "csc_matrix": "csc", "csc_array": "csc",
    "csr_matrix": "csr", "csr_array": "csr",
    "coo_matrix": "coo", "coo_array": "coo",
}
_CHUMPY_EVALUATED = {
    "chumpy.ch.Ch": "leaf",
    "chumpy.Ch": "leaf",
    "chumpy.reordering.Select": "select",
    "chumpy.reordering.Reshape": "reshape",
    "chumpy.reordering.transpose": "transpose",
}


# --------------------------------------------------------------------------- stand-ins


class _StandIn:
    """A data-only stand-in for an object whose class we refuse to import.

    ``NEWOBJ`` / ``copy_reg._reconstructor`` create it with ``__new__``, then ``BUILD`` hands it
    the pickled state through :meth:`__setstate__`. Nothing else ever runs.
    """

    qualname = "?"

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyNode(_StandIn):
    """A pickled ``chumpy`` object; :data:`_CHUMPY_EVALUATED` says how to evaluate it."""


class _SparseMatrix(_StandIn):
    """A pickled ``scipy.sparse`` matrix; ``kind`` is ``csc``, ``csr`` or ``coo``."""

    kind = "csc"


class _StorageRef:
    """A torch storage found in a legacy stream: dtype, size and (later) its data."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.data: np.ndarray | None = None


class _Storage:
    """What ``torch.storage._load_from_bytes`` returns here: a flat numpy array."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


# --------------------------------------------------------------------------- unpickler


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals only from an allow-list.

    Args:
        file: a binary file object positioned at the start of a pickle.
        source: the file name used in error messages.
        encoding: how Python-2 ``str`` objects are decoded (``latin1`` keeps numpy's raw
            array bytes intact, as ``pickle.load(f, encoding="latin1")`` does).

    The result may contain stand-in objects; call :func:`loads`/:func:`load_pickle`/
    :func:`load_npy` to get plain numpy arrays instead.
    """

    def __init__(self, file: BinaryIO, source: str, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.source = source
        self._standins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MULTIARRAY and name == "_reconstruct":
            return self._reconstruct_ndarray
        if module in _NUMPY_MULTIARRAY and name == "scalar":
            return self._numpy_scalar
        if module in _NUMPY_NUMERIC and name == "_frombuffer":
            return self._array_from_buffer
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module in _COPYREG and name == "_reconstructor":
            return self._reconstructor
        if module in _BUILTINS and name in ("object", "set", "frozenset"):
            return {"object": object, "set": set, "frozenset": frozenset}[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "_codecs" and name == "encode":
            return self._latin1_encode
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self._rebuild_tensor
        if module == "torch.storage" and name == "_load_from_bytes":
            return self._load_storage_from_bytes
        if module in _SPARSE_MODULES and name in _SPARSE_CLASSES:
            return self._standin(module, name, _SparseMatrix, kind=_SPARSE_CLASSES[name])
        if module == "chumpy" or module.startswith("chumpy."):
            return self._standin(module, name, _ChumpyNode)
        raise WeightFileError(
            f"{self.source}: refused to unpickle the global {module}.{name}: this file contains Python objects "
            f"that are not plain data (numpy arrays, chumpy/scipy arrays, torch tensors), so it is not loaded "
            f"(loading it could run code). Use the original FLAME/DECA file."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise WeightFileError(f"{self.source}: refused a pickle persistent id {str(pid)[:80]!r} (not a plain data file).")

    # -- allowed callables ------------------------------------------------------------

    def _standin(self, module: str, name: str, base: type, **attrs: Any) -> type:
        key = (module, name)
        if key not in self._standins:
            self._standins[key] = type(name, (base,), {"qualname": f"{module}.{name}", **attrs})
        return self._standins[key]

    def _reconstruct_ndarray(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not np.ndarray:
            raise WeightFileError(f"{self.source}: refused to rebuild an array of type {subtype!r} (only numpy.ndarray).")
        return np.ndarray.__new__(np.ndarray, shape, dtype)

    def _array_from_buffer(self, buffer: Any, dtype: Any, shape: Any, order: str = "C") -> np.ndarray:
        """``numpy.core.numeric._frombuffer``: how protocol-5 pickles carry array bytes."""
        dtype = np.dtype(dtype)
        if dtype.hasobject or order not in ("C", "F"):
            raise WeightFileError(f"{self.source}: refused a pickled numpy buffer of dtype {dtype} / order {order!r}.")
        return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy(order=order)

    def _numpy_scalar(self, dtype: Any, data: Any = None) -> Any:
        dtype = np.dtype(dtype)
        if dtype.hasobject or data is None:
            raise WeightFileError(f"{self.source}: refused a pickled numpy object scalar.")
        if isinstance(data, str):
            data = data.encode("latin1")
        return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]

    def _reconstructor(self, cls: Any, base: Any, state: Any = None) -> Any:
        if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object or state is not None:
            raise WeightFileError(f"{self.source}: refused copy_reg._reconstructor for {cls!r} (only chumpy/scipy data).")
        return cls.__new__(cls)

    def _latin1_encode(self, text: Any, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
            raise WeightFileError(f"{self.source}: refused _codecs.encode with encoding {encoding!r}.")
        return text.encode("latin1")

    def _rebuild_tensor(
        self, storage: Any, offset: int, size: Any, stride: Any, *_unused: Any
    ) -> np.ndarray:
        """``torch._utils._rebuild_tensor(_v2)`` as a numpy copy (requires_grad/hooks ignored)."""
        if not isinstance(storage, _Storage):
            raise WeightFileError(f"{self.source}: a pickled tensor does not point at a storage.")
        flat = storage.array
        size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
            raise WeightFileError(f"{self.source}: a pickled tensor has an invalid layout {size}/{stride}.")
        if 0 in size:
            return np.zeros(size, dtype=flat.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise WeightFileError(f"{self.source}: a pickled tensor reaches past the end of its storage.")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * flat.itemsize for s in stride), writeable=False
        )
        return np.array(view)

    def _load_storage_from_bytes(self, data: Any) -> _Storage:
        """``torch.storage._load_from_bytes``: parse a legacy one-storage ``torch.save`` stream."""
        if isinstance(data, str):
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)):
            raise WeightFileError(f"{self.source}: a pickled torch storage holds {type(data).__name__}, not bytes.")
        return _Storage(_read_legacy_storage(bytes(data), self.source))


class _LegacyStorageUnpickler(SafeUnpickler):
    """The inner pickle of a legacy ``torch.save`` stream: storage classes and persistent ids only."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file, source, encoding="utf-8")
        self.storages: dict[str, _StorageRef] = {}
        self.views: list[tuple[_StorageRef, str, int, int]] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return ("torch-storage", name)
        raise WeightFileError(f"{self.source}: refused to unpickle the global {module}.{name} inside a torch storage.")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise WeightFileError(f"{self.source}: unexpected torch persistent id {str(pid)[:80]!r}.")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        view = pid[5] if len(pid) == 6 else None
        if not (isinstance(storage_type, tuple) and storage_type[0] == "torch-storage"):
            raise WeightFileError(f"{self.source}: a torch storage names no storage class.")
        dtype = _TORCH_STORAGE_DTYPES[storage_type[1]]
        if key not in self.storages:
            self.storages[key] = _StorageRef(dtype, numel)
        root = self.storages[key]
        if view is None:
            return root
        view_offset, view_size = int(view[1]), int(view[2])  # view[0] names the view itself
        ref = _StorageRef(dtype, view_size)
        self.views.append((ref, key, view_offset, view_size))
        return ref


def _read_legacy_storage(data: bytes, source: str) -> np.ndarray:
    """Flat numpy array of the single storage in a legacy (non-zip) ``torch.save`` stream.

    Layout (torch/serialization.py ``_legacy_save``): four pickles (magic number, protocol
    version, system info, the object with storages as persistent ids), a pickled list of
    storage keys, then per key an int64 element count followed by the raw little-endian data.
    """
    stream = io.BytesIO(data)

    def plain() -> Any:
        return _LegacyStorageUnpickler(stream, source).load()

    try:
        if plain() != TORCH_LEGACY_MAGIC or plain() != TORCH_LEGACY_PROTOCOL:
            raise WeightFileError(f"{source}: a pickled torch storage is not a legacy torch.save stream.")
        info = plain()
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise WeightFileError(f"{source}: a pickled torch storage was saved big-endian; not supported.")
        inner = _LegacyStorageUnpickler(stream, source)
        result = inner.load()
        keys = plain()
        if not isinstance(result, _StorageRef) or not isinstance(keys, list):
            raise WeightFileError(f"{source}: a pickled torch storage stream holds something else than one storage.")
        for key in keys:
            ref = inner.storages.get(str(key))
            if ref is None:
                raise WeightFileError(f"{source}: a torch storage stream lists an unknown storage {key!r}.")
            (count,) = struct.unpack("<q", _read_exactly(stream, 8, source))
            if count != ref.numel:
                raise WeightFileError(f"{source}: a torch storage has {count} elements, its header says {ref.numel}.")
            raw = _read_exactly(stream, count * ref.dtype.itemsize, source)
            ref.data = np.frombuffer(raw, dtype=ref.dtype.newbyteorder("<")).astype(ref.dtype)
        for view_ref, key, view_offset, view_size in inner.views:
            root = inner.storages[key].data
            if root is None or view_offset + view_size > root.size:
                raise WeightFileError(f"{source}: a torch storage view reaches outside its storage.")
            view_ref.data = root[view_offset : view_offset + view_size]
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, IndexError, KeyError) as err:
        if isinstance(err, WeightFileError):
            raise
        raise WeightFileError(f"{source}: a pickled torch storage is corrupt ({type(err).__name__}: {err}).") from None
    if result.data is None:
        raise WeightFileError(f"{source}: a pickled torch storage has no data.")
    return result.data


def _read_exactly(stream: io.BytesIO, count: int, source: str) -> bytes:
    block = stream.read(count)
    if len(block) != count:
        raise WeightFileError(f"{source}: a pickled torch storage is truncated.")
    return block


# --------------------------------------------------------------------------- evaluation


def _as_value(obj: Any, source: str, where: str, memo: dict[int, Any]) -> Any:
    """Replace stand-ins by numpy arrays, recursively through containers (shared objects stay shared)."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _ChumpyNode):
        result: Any = _evaluate_chumpy(obj, source, where, memo)
    elif isinstance(obj, _SparseMatrix):
        result = _densify_sparse(obj, source, where, memo)
    elif isinstance(obj, _Storage):
        raise WeightFileError(f"{source}: a bare torch storage at {where or 'the top level'} (expected a tensor).")
    elif isinstance(obj, dict):
        result = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        memo[key] = result
        for k, v in obj.items():
            result[k] = _as_value(v, source, f"{where}[{k!r}]", memo)
    elif isinstance(obj, list):
        result = []
        memo[key] = result
        result.extend(_as_value(v, source, f"{where}[{i}]", memo) for i, v in enumerate(obj))
    elif isinstance(obj, tuple):
        result = tuple(_as_value(v, source, f"{where}[{i}]", memo) for i, v in enumerate(obj))
    elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        result = np.empty(obj.shape, dtype=object)
        memo[key] = result
        for index in np.ndindex(obj.shape):
            result[index] = _as_value(obj[index], source, f"{where}[{index}]", memo)
    else:
        result = obj
    memo[key] = result
    return result


def _chumpy_operand(state: dict, name: str, node: _ChumpyNode, source: str, where: str, memo: dict) -> np.ndarray:
    if name not in state:
        raise WeightFileError(f"{source}: the chumpy node {node.qualname} at {where} has no '{name}' attribute.")
    return np.asarray(_as_value(state[name], source, f"{where}.{name}", memo))


def _evaluate_chumpy(node: _ChumpyNode, source: str, where: str, memo: dict) -> np.ndarray:
    """The value chumpy's ``node.r`` would give: a C-ordered float64 array, at least 1-d."""
    kind = _CHUMPY_EVALUATED.get(node.qualname)
    if kind is None:
        raise WeightFileError(
            f"{source}: {where or 'the file'} is a derived chumpy expression ({node.qualname}) that cannot be "
            f"evaluated without chumpy. Convert the file with chumpy installed (np.array(value) for every entry) "
            f"or use the original FLAME 2020 generic_model.pkl."
        )
    state = node.state
    if not isinstance(state, dict):
        raise WeightFileError(f"{source}: the chumpy node {node.qualname} at {where} has no attribute dict.")
    if kind == "leaf":
        value = _chumpy_operand(state, "x", node, source, where, memo)
    elif kind == "select":
        value = _chumpy_operand(state, "a", node, source, where, memo).ravel()[
            np.asarray(_as_value(state.get("idxs"), source, where, memo), dtype=np.int64)
        ]
        if "preferred_shape" in state:
            value = value.reshape(_as_value(state["preferred_shape"], source, where, memo))
    elif kind == "reshape":
        value = _chumpy_operand(state, "a", node, source, where, memo).reshape(
            _as_value(state.get("newshape"), source, where, memo)
        )
    else:  # transpose
        value = np.transpose(_chumpy_operand(state, "a", node, source, where, memo), axes=state.get("axes"))
    if value.dtype.hasobject:
        raise WeightFileError(f"{source}: the chumpy node at {where} holds Python objects, not numbers.")
    return np.ascontiguousarray(np.atleast_1d(np.asarray(value, dtype=np.float64)))


def _densify_sparse(matrix: _SparseMatrix, source: str, where: str, memo: dict) -> np.ndarray:
    """Dense array of a pickled scipy sparse matrix (same values as ``todense()``)."""
    state = matrix.state if isinstance(matrix.state, dict) else {}
    state = {k: _as_value(v, source, f"{where}.{k}", memo) for k, v in state.items()}
    shape = state.get("_shape", state.get("shape"))
    try:
        rows, cols = (int(n) for n in shape)
        data = np.asarray(state["data"])
        if data.dtype.hasobject or data.ndim != 1:
            raise ValueError("data is not a 1-d numeric array")
        dense = np.zeros((rows, cols), dtype=data.dtype)
        if matrix.kind == "coo":
            r, c = np.asarray(state["row"], np.int64), np.asarray(state["col"], np.int64)
        else:
            indices, indptr = np.asarray(state["indices"], np.int64), np.asarray(state["indptr"], np.int64)
            major = cols if matrix.kind == "csc" else rows
            if indptr.shape != (major + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != data.size:
                raise ValueError("indptr does not match the shape and data")
            owner = np.repeat(np.arange(major), np.diff(indptr))
            r, c = (indices, owner) if matrix.kind == "csc" else (owner, indices)
        if r.shape != data.shape or c.shape != data.shape:
            raise ValueError("index and data lengths differ")
        if data.size and (r.min() < 0 or c.min() < 0 or r.max() >= rows or c.max() >= cols):
            raise ValueError("an index lies outside the matrix")
        np.add.at(dense, (r, c), data)
    except (KeyError, TypeError, ValueError) as err:
        raise WeightFileError(
            f"{source}: the sparse matrix ({matrix.qualname}) at {where} is inconsistent ({err})."
        ) from None
    return dense


# --------------------------------------------------------------------------- entry points


def loads(data: bytes, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with the allow-list and return plain Python/numpy values.

    Raises:
        WeightFileError: a refused global (message names it and ``source``), a chumpy node
            that needs chumpy, or a corrupt/truncated pickle.
    """
    return _load_stream(io.BytesIO(data), source, encoding)


def _load_stream(stream: BinaryIO, source: str, encoding: str) -> Any:
    try:
        raw = SafeUnpickler(stream, source, encoding=encoding).load()
    except WeightFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, UnicodeDecodeError, MemoryError, OverflowError) as err:
        detail = str(err).splitlines()[0][:200] if str(err) else "no detail"
        raise WeightFileError(
            f"{source} could not be read as a pickle: it is truncated or corrupt ({type(err).__name__}: {detail}). "
            f"Download it again."
        ) from None
    return _as_value(raw, source, "", {})


def load_pickle(path: str | Path, encoding: str = "latin1") -> Any:
    """Safely unpickle a file such as FLAME's ``generic_model.pkl`` (see the module docstring)."""
    path = Path(path)
    with open(path, "rb") as handle:
        return _load_stream(handle, str(path), encoding)


def load_npy(path: str | Path) -> Any:
    """Safely read a ``.npy`` file, including pickled object arrays such as DECA's ``landmark_embedding.npy``.

    Returns:
        the array; for a 0-d object array (how ``np.save`` stores a dict) its single item,
        i.e. what ``np.load(path, allow_pickle=True, encoding="latin1")[()]`` gives, with
        chumpy/scipy/torch values as numpy arrays.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in header:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _fortran, dtype = header[version](handle)
        except (ValueError, SyntaxError, EOFError) as err:  # the header is parsed with ast.literal_eval
            raise WeightFileError(f"{path} is not a valid .npy file ({err}).") from None
        if not dtype.hasobject:
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                raise WeightFileError(f"{path} is not a valid .npy file ({err}).") from None
        value = _load_stream(handle, str(path), "latin1")
    if not isinstance(value, np.ndarray) or tuple(value.shape) != tuple(shape):
        raise WeightFileError(f"{path}: the pickled array does not match the .npy header (shape {shape}).")
    return value[()] if value.shape == () else value
