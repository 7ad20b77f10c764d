"""Synthetic FLAME files in the exact official formats, written by the tests themselves.

FLAME 2020 (``generic_model.pkl``) is licence-gated, so tests write a file of the same
format: a Python-2 pickle (``str`` as ``SHORT_BINSTRING``/``BINSTRING``, ``copy_reg`` and
``__builtin__`` module names, numpy arrays as ``numpy.core.multiarray._reconstruct`` +
``BUILD``) holding ``chumpy.ch.Ch`` objects and a ``scipy.sparse.csc.csc_matrix``. The
opcodes are assembled by hand by :class:`Py2Pickle`, so neither chumpy nor scipy is needed
to write it. Arrays have the real shapes and plausible scales (metres, small blend shapes,
row-stochastic regressors/weights) from numpy's legacy ``RandomState``: the same seed
gives the same bytes on any machine, which is what lets ``tests/golden`` hold numbers
computed once with DECA's own FLAME code on these files.

``landmark_embedding.npy`` is written like DECA's: ``np.save`` of a dict whose dynamic
entries are torch tensors (so it contains ``torch._utils._rebuild_tensor_v2``).
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

NUM_VERTS = 5023
NUM_FACES = 9976
NUM_JOINTS = 5
SHAPEDIRS_COMPONENTS = 400
POSE_FEATURES = 36
CH_STATE_EXTRAS = {"_dirty_vars": "set()", "_itr": None, "_make_dense": False, "_make_sparse": False,
                   "_depends_on_deps": {}, "_status": "new"}
"""Attributes besides ``x`` that chumpy's ``Ch.__getstate__`` pickles for a leaf node."""


# --------------------------------------------------------------------------- a tiny py2 pickle writer


@dataclass(frozen=True)
class Global:
    """A ``GLOBAL module\\nname`` reference (the class or function is never imported)."""

    module: str
    name: str


@dataclass
class Reduce:
    """``func(*args)`` followed by an optional ``BUILD`` with ``state``."""

    func: Global
    args: tuple
    state: Any = None


@dataclass
class Instance:
    """A new-style class instance as Python 2 pickles it, then ``BUILD`` with ``state``.

    ``style="reconstructor"``: ``copy_reg._reconstructor(cls, object, None)`` (protocols 0/1);
    ``style="newobj"``: ``cls.__new__(cls)`` via ``NEWOBJ`` (protocol 2).
    """

    cls: Global
    state: Any
    style: str = "reconstructor"


@dataclass
class Py2Set:
    """A Python-2 ``set`` (``__builtin__.set`` called on a list)."""

    items: list = field(default_factory=list)


class Py2Pickle:
    """Assemble protocol-2 pickle bytes the way Python 2.7 writes them.

    Python ``str`` and ``bytes`` both become Python-2 ``str`` (``SHORT_BINSTRING``/``BINSTRING``);
    numpy arrays are written as numpy 1.x under Python 2 writes them.
    """

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def dumps(self, obj: Any) -> bytes:
        self.out.write(pickle.PROTO + b"\x02")
        self._emit(obj)
        self.out.write(pickle.STOP)
        return self.out.getvalue()

    def _string(self, raw: bytes) -> None:
        if len(raw) < 256:
            self.out.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.out.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    def _int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out.write(pickle.BININT1 + bytes([value]))
        elif -(2**31) <= value < 2**31:
            self.out.write(pickle.BININT + struct.pack("<i", value))
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out.write(pickle.LONG1 + bytes([len(raw)]) + raw)

    def _emit(self, obj: Any) -> None:
        w = self.out.write
        if obj is None:
            w(pickle.NONE)
        elif obj is True or obj is False:
            w(pickle.NEWTRUE if obj else pickle.NEWFALSE)
        elif isinstance(obj, int):
            self._int(obj)
        elif isinstance(obj, float):
            w(pickle.BINFLOAT + struct.pack(">d", obj))
        elif isinstance(obj, str):
            self._string(obj.encode("latin1"))
        elif isinstance(obj, bytes):
            self._string(obj)
        elif isinstance(obj, tuple):
            if not obj:
                w(pickle.EMPTY_TUPLE)
            elif len(obj) <= 3:
                for item in obj:
                    self._emit(item)
                w({1: pickle.TUPLE1, 2: pickle.TUPLE2, 3: pickle.TUPLE3}[len(obj)])
            else:
                w(pickle.MARK)
                for item in obj:
                    self._emit(item)
                w(pickle.TUPLE)
        elif isinstance(obj, list):
            w(pickle.EMPTY_LIST)
            if obj:
                w(pickle.MARK)
                for item in obj:
                    self._emit(item)
                w(pickle.APPENDS)
        elif isinstance(obj, dict):
            w(pickle.EMPTY_DICT)
            if obj:
                w(pickle.MARK)
                for key, value in obj.items():
                    self._emit(key)
                    self._emit(value)
                w(pickle.SETITEMS)
        elif isinstance(obj, Global):
            w(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        elif isinstance(obj, Reduce):
            self._emit(obj.func)
            self._emit(tuple(obj.args))
            w(pickle.REDUCE)
            if obj.state is not None:
                self._emit(obj.state)
                w(pickle.BUILD)
        elif isinstance(obj, Instance):
            if obj.style == "newobj":
                self._emit(obj.cls)
                w(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
            else:
                self._emit(Reduce(Global("copy_reg", "_reconstructor"), (obj.cls, Global("__builtin__", "object"), None)))
            self._emit(obj.state)
            w(pickle.BUILD)
        elif isinstance(obj, Py2Set):
            self._emit(Reduce(Global("__builtin__", "set"), (list(obj.items),)))
        elif isinstance(obj, np.ndarray):
            self._emit(py2_array(obj))
        else:
            raise TypeError(f"cannot write {type(obj).__name__} as a Python-2 pickle")


def py2_dtype(dtype: np.dtype) -> Reduce:
    """``numpy.dtype`` as numpy writes it: ``dtype('f8', 0, 1)`` + BUILD (version-3 state)."""
    dtype = np.dtype(dtype)
    order = "|" if dtype.itemsize == 1 else "<"
    return Reduce(Global("numpy", "dtype"), (dtype.str[1:], 0, 1), (3, order, None, None, None, -1, -1, 0))


def py2_array(array: np.ndarray) -> Reduce:
    """An ndarray as numpy under Python 2 pickles it: ``_reconstruct`` + BUILD with raw bytes as a py2 str."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    raw = array.astype(dtype).tobytes()
    return Reduce(
        Global("numpy.core.multiarray", "_reconstruct"),
        (Global("numpy", "ndarray"), (0,), b"b"),
        (1, tuple(int(n) for n in array.shape), py2_dtype(dtype), False, raw),
    )


def chumpy_ch(value: np.ndarray, style: str = "reconstructor") -> Instance:
    """A pickled ``chumpy.ch.Ch`` leaf holding ``value`` (its state: ``x`` plus bookkeeping)."""
    state: dict[str, Any] = {
        key: (Py2Set() if default == "set()" else default) for key, default in CH_STATE_EXTRAS.items()
    }
    state["x"] = np.asarray(value, dtype=np.float64)
    return Instance(Global("chumpy.ch", "Ch"), state, style)


def chumpy_node(module: str, name: str, style: str = "reconstructor", **attrs: Any) -> Instance:
    """A pickled derived chumpy node (e.g. ``chumpy.reordering.Select`` with ``a``, ``idxs``, ...)."""
    state: dict[str, Any] = {
        key: (Py2Set() if default == "set()" else default) for key, default in CH_STATE_EXTRAS.items()
        if key != "_status"
    }
    state.update(attrs)
    return Instance(Global(module, name), state, style)


def csc_arrays(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(data, indices, indptr)`` of the compressed-sparse-column form of ``dense`` (no scipy)."""
    data, indices, indptr = [], [], [0]
    for col in range(dense.shape[1]):
        rows = np.nonzero(dense[:, col])[0]
        data.extend(dense[rows, col])
        indices.extend(rows)
        indptr.append(len(data))
    return np.asarray(data, np.float64), np.asarray(indices, np.int32), np.asarray(indptr, np.int32)


def scipy_csc(dense: np.ndarray, style: str = "reconstructor", module: str = "scipy.sparse.csc") -> Instance:
    """A pickled ``scipy.sparse.csc.csc_matrix`` (the attribute dict old scipy pickles)."""
    data, indices, indptr = csc_arrays(dense)
    state = {"_shape": tuple(int(n) for n in dense.shape), "maxprint": 50, "format": "csc",
             "indices": indices, "indptr": indptr, "data": data}
    return Instance(Global(module, "csc_matrix"), state, style)


# --------------------------------------------------------------------------- FLAME model


def flame_model_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays with FLAME 2020's keys, shapes, dtypes and plausible scales (float64 like the pkl)."""
    rng = np.random.RandomState(seed)
    v_template = rng.standard_normal((NUM_VERTS, 3)) * np.array([0.08, 0.1, 0.07]) + np.array([0.0, 0.02, 0.0])
    shapedirs = rng.standard_normal((NUM_VERTS, 3, SHAPEDIRS_COMPONENTS)) * 2e-3
    posedirs = rng.standard_normal((NUM_VERTS, 3, POSE_FEATURES)) * 5e-3
    j_regressor = np.zeros((NUM_JOINTS, NUM_VERTS))
    for joint in range(NUM_JOINTS):  # each joint: a convex combination of 24 vertices, like FLAME's sparse rows
        cols = rng.choice(NUM_VERTS, size=24, replace=False)
        weights = rng.uniform(0.1, 1.0, size=24)
        j_regressor[joint, cols] = weights / weights.sum()
    kintree_table = np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    lbs_weights = rng.uniform(0.0, 1.0, size=(NUM_VERTS, NUM_JOINTS)) ** 3
    lbs_weights /= lbs_weights.sum(axis=1, keepdims=True)
    faces = rng.randint(0, NUM_VERTS, size=(NUM_FACES, 3)).astype(np.uint32)
    joints = j_regressor @ v_template
    return {
        "v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": j_regressor,
        "kintree_table": kintree_table, "weights": lbs_weights, "f": faces, "J": joints,
    }


def head_skinning(vertices: np.ndarray) -> np.ndarray:
    """LBS weights of a head mesh: the lowest quarter follows the jaw joint, the rest the neck chain."""
    weights = np.zeros((len(vertices), NUM_JOINTS))
    below_mouth = vertices[:, 1] < np.percentile(vertices[:, 1], 25)
    weights[~below_mouth, 1] = 1.0
    weights[below_mouth, 2] = 1.0
    return weights


def head_model_arrays(template_obj: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Like :func:`flame_model_arrays` but with the real FLAME template mesh and topology from
    DECA's ``head_template.obj`` (centred at the origin), so renderings look like a head.
    The lower face follows the jaw joint, everything else the head."""
    from pasl.flame_files import read_head_template

    template = read_head_template(template_obj)
    arrays = flame_model_arrays(seed)
    vertices = np.asarray(template.vertices, dtype=np.float64)
    vertices = vertices - vertices.mean(axis=0)
    weights = head_skinning(vertices)
    arrays.update(
        v_template=vertices,
        f=np.asarray(template.faces, dtype=np.uint32),
        weights=weights,
        shapedirs=arrays["shapedirs"] * 0.5,
        J=arrays["J_regressor"] @ vertices,
    )
    return arrays


def ellipsoid_mesh(rings: int = 50, segments: int = 100, radii=(0.08, 0.11, 0.09)) -> tuple[np.ndarray, np.ndarray]:
    """A closed, outward-wound ellipsoid of about FLAME's size and face count (5002 vertices,
    10000 triangles): a stand-in head where the real template mesh is not available."""
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]  # polar angles of the rings
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * np.asarray(radii)
    top, bottom = 0, len(vertices) - 1
    index = lambda r, k: 1 + r * segments + k % segments  # noqa: E731
    faces = [[top, index(0, k + 1), index(0, k)] for k in range(segments)]
    for r in range(rings - 1):
        for k in range(segments):
            a, b, c, d = index(r, k), index(r, k + 1), index(r + 1, k), index(r + 1, k + 1)
            faces += [[a, b, d], [a, d, c]]
    faces += [[bottom, index(rings - 1, k), index(rings - 1, k + 1)] for k in range(segments)]
    return vertices, np.asarray(faces, dtype=np.int64)


def head_model_arrays_without_template(seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`head_model_arrays` on :func:`ellipsoid_mesh` (no ``../shared`` needed)."""
    arrays = flame_model_arrays(seed)
    vertices, faces = ellipsoid_mesh()
    rng = np.random.RandomState(seed)
    weights = head_skinning(vertices)
    j_regressor = np.zeros((NUM_JOINTS, len(vertices)))
    for joint in range(NUM_JOINTS):
        cols = rng.choice(len(vertices), size=24, replace=False)
        j_regressor[joint, cols] = 1.0 / 24
    arrays.update(
        v_template=vertices, f=faces.astype(np.uint32), weights=weights, J_regressor=j_regressor,
        shapedirs=rng.standard_normal((len(vertices), 3, SHAPEDIRS_COMPONENTS)) * 1e-3,
        posedirs=rng.standard_normal((len(vertices), 3, POSE_FEATURES)) * 2e-3,
        J=j_regressor @ vertices,
    )
    return arrays


def write_head_model(path: Path, template_obj: Path | None, seed: int = 0) -> Path:
    """A ``generic_model.pkl`` of the official format with a head-like mesh: the real template
    when ``template_obj`` exists, else :func:`ellipsoid_mesh`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if template_obj is None or not Path(template_obj).exists():
        arrays = head_model_arrays_without_template(seed)
    else:
        arrays = head_model_arrays(template_obj, seed)
    path.write_bytes(Py2Pickle().dumps(generic_model_object(arrays)))
    return path


def generic_model_object(arrays: dict[str, np.ndarray], style: str = "reconstructor") -> dict[str, Any]:
    """The object graph of ``generic_model.pkl``: chumpy leaves, a scipy CSC regressor, plain arrays."""
    return {
        "f": arrays["f"],
        "J_regressor": scipy_csc(arrays["J_regressor"], style),
        "kintree_table": arrays["kintree_table"],
        "J": arrays["J"],
        "weights": arrays["weights"],
        "posedirs": chumpy_ch(arrays["posedirs"], style),
        "v_template": chumpy_ch(arrays["v_template"], style),
        "shapedirs": chumpy_ch(arrays["shapedirs"], style),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_generic_model(path: Path, seed: int = 0, style: str = "reconstructor") -> Path:
    """A synthetic ``generic_model.pkl`` in FLAME 2020's format (Python-2 pickle, chumpy, scipy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(Py2Pickle().dumps(generic_model_object(flame_model_arrays(seed), style)))
    return path


# --------------------------------------------------------------------------- landmark embedding


def landmark_embedding_arrays(seed: int = 1, num_faces: int = NUM_FACES) -> dict[str, np.ndarray]:
    """Random embedding with DECA's keys, shapes and dtypes (barycentric rows sum to 1)."""
    rng = np.random.RandomState(seed)

    def bary(*shape: int) -> np.ndarray:
        b = rng.uniform(0.05, 1.0, size=(*shape, 3))
        return b / b.sum(axis=-1, keepdims=True)

    return {
        "static_lmk_faces_idx": rng.randint(0, num_faces, size=51).astype(np.int64),
        "static_lmk_bary_coords": bary(51),
        "dynamic_lmk_faces_idx": rng.randint(0, num_faces, size=(79, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": bary(79, 17).astype(np.float32),
        "full_lmk_faces_idx": rng.randint(0, num_faces, size=(1, 68)).astype(np.int64),
        "full_lmk_bary_coords": bary(1, 68).astype(np.float32),
    }


def write_landmark_embedding(path: Path, seed: int = 1) -> Path:
    """A synthetic ``landmark_embedding.npy`` exactly like DECA's (dynamic entries as torch tensors)."""
    arrays = landmark_embedding_arrays(seed)
    payload: dict[str, Any] = dict(arrays)
    for key in ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"):
        payload[key] = torch.from_numpy(arrays[key].copy())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.save(handle, np.array(payload, dtype=object), allow_pickle=True)
    return path


# --------------------------------------------------------------------------- codes


GOLDEN_YAWS_DEG = (0.0, 12.0, 39.0, 75.0, -0.3, -17.0, -39.0, -70.0, 25.0)
"""Head yaws of the golden batch: zero, both signs, the +-39 edges and beyond (all contour branches)."""


def flame_codes(seed: int = 7, yaws_deg: tuple[float, ...] = GOLDEN_YAWS_DEG) -> dict[str, np.ndarray]:
    """DECA-like codes, one sample per yaw; float32 ``shape (B,100)``, ``exp (B,50)``, ``pose (B,6)``.

    The last sample also pitches and rolls the head (so the contour row comes from the
    composed rotation); every sample opens the jaw a little.
    """
    rng = np.random.RandomState(seed)
    batch = len(yaws_deg)
    shape = rng.standard_normal((batch, 100)) * 1.0
    expression = rng.standard_normal((batch, 50)) * 0.5
    pose = np.zeros((batch, 6))
    pose[:, 1] = np.deg2rad(yaws_deg)
    pose[-1, 0], pose[-1, 2] = 0.3, -0.2
    pose[:, 3] = rng.uniform(0.02, 0.25, size=batch)  # jaw opening about x
    pose[:, 4:] = rng.standard_normal((batch, 2)) * 0.02
    return {"shape": shape.astype(np.float32), "exp": expression.astype(np.float32), "pose": pose.astype(np.float32)}


def head_flame(folder: Path, template_obj: Path | None):
    """A loaded :class:`pasl.flame.FLAME` of :func:`write_head_model` (the real template when ``template_obj``
    exists, else an ellipsoid head) with a synthetic landmark embedding, written under ``folder``."""
    from pasl.flame_files import load_flame

    model = write_head_model(folder / "generic_model.pkl", template_obj)
    return load_flame(model, write_landmark_embedding(folder / "landmark_embedding.npy"))
