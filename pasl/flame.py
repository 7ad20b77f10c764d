"""The FLAME head model as DECA (and so PASL's CSG) uses it, plus its file readers.

``FLAME`` turns DECA codes (100 shape, 50 expression, 6 pose) into a 5023-vertex head and
68 landmarks, number for number like DECA's ``decalib/models/FLAME.py``:

* blend-shape basis = FLAME's first 100 identity components followed by its first 50
  expression components (``shapedirs[:, :, :100]`` and ``shapedirs[:, :, 300:350]``);
* full pose = ``[global (3), neck = 0 (3), jaw (3), eyes = 0 (6)]``, axis-angle radians;
* linear blend skinning as in :mod:`pasl.lbs`;
* ``landmarks2d`` = 17 jaw-contour points whose triangles depend on the head yaw (a
  79-row table, see :func:`pasl.lbs.contour_rows_from_yaw`) then 51 fixed points, in
  iBUG-68 order; ``landmarks3d`` = the fixed "full" 68-point embedding. Both are 3-D
  points in model space (metres), despite the name ``landmarks2d``.

The maths lives in :mod:`pasl.lbs`; this module reads the files (without chumpy and without
running pickle code, via :mod:`pasl.safe_pickle`), keeps every array as a buffer (so
``.to()`` moves all of it) and checks inputs.

Files (licences differ; none ships with this package):

* ``generic_model.pkl``: FLAME 2020, free registration at https://flame.is.tue.mpg.de.
* ``landmark_embedding.npy`` and ``head_template.obj``: DECA's ``data/`` folder,
  https://github.com/yfeng95/DECA/tree/master/data.

``convert_flame`` writes both FLAME files as one plain ``.npz``/``.safetensors`` that
:func:`load_flame` also reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import lbs as L
from .errors import MissingWeightError, WeightFileError
from .safe_pickle import load_npy, load_pickle
from .weights import WEIGHT_FOLDERS, require_file, sha256_of

log = logging.getLogger(__name__)

__all__ = [
    "FLAME",
    "FlameOutput",
    "HeadTemplate",
    "convert_flame",
    "load_flame",
    "load_head_template",
    "read_flame_arrays",
    "read_head_template",
]

N_SHAPE = 100
"""Identity coefficients of a DECA code (``cfg.model.n_shape``)."""
N_EXP = 50
"""Expression coefficients of a DECA code (``cfg.model.n_exp``)."""
N_POSE = 6
"""DECA pose code: global axis-angle (3) then jaw axis-angle (3), radians."""
EXPRESSION_OFFSET = 300
"""FLAME 2020 ``shapedirs`` holds 300 identity components, then 100 expression components."""
NUM_JOINTS = 5
"""FLAME joints: global (root), neck, jaw, left eye, right eye."""
NECK_JOINT = 1
"""Joint whose chain up to the root gives the head rotation for the dynamic contour."""
NUM_CONTOUR = 17
"""Dynamic jaw-contour landmarks (iBUG points 0..16)."""
NUM_STATIC = 51
"""Fixed landmarks (iBUG points 17..67)."""
NUM_LANDMARKS = NUM_CONTOUR + NUM_STATIC

CONVERTED_FORMAT = "pasl-flame"
"""``format`` metadata of a file written by :func:`convert_flame`."""
CONVERTED_VERSION = "1"

FLAME_SOURCE = (
    "https://flame.is.tue.mpg.de (FLAME 2020 requires a free registration: download FLAME2020.zip and "
    "take generic_model.pkl)"
)
DECA_DATA_SOURCE = "the DECA repository, https://github.com/yfeng95/DECA/tree/master/data"

_FLOAT_BUFFERS = (
    "v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights",
    "static_lmk_bary_coords", "dynamic_lmk_bary_coords", "full_lmk_bary_coords",
)
_LONG_BUFFERS = (
    "faces", "parents", "static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx",
)
BUFFER_NAMES = _FLOAT_BUFFERS + _LONG_BUFFERS
"""Every array of a FLAME layer (and of a converted file)."""


@dataclass(frozen=True)
class FlameOutput:
    """What :class:`FLAME` returns; unpacks like DECA's tuple: ``v, lmk2d, lmk3d = flame(...)``.

    Attributes:
        vertices: ``(B, 5023, 3)`` posed mesh, model space (metres, +y up, +z to the viewer).
        landmarks2d: ``(B, 68, 3)`` iBUG-68 landmarks with the yaw-dependent jaw contour
            (3-D points; DECA projects them to 2-D later).
        landmarks3d: ``(B, 68, 3)`` iBUG-68 landmarks from the fixed embedding.
    """

    vertices: torch.Tensor
    landmarks2d: torch.Tensor
    landmarks3d: torch.Tensor

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.vertices, self.landmarks2d, self.landmarks3d))


def _check_code(name: str, x: object, width: int) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name} must have shape (B, {width}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


class FLAME(nn.Module):
    """DECA's FLAME layer: codes -> vertices and landmarks (see the module docstring).

    Args:
        arrays: the arrays named in :data:`BUFFER_NAMES`, as produced by
            :func:`read_flame_arrays` (numpy or torch; copied into float32/int64 buffers).
        source: a name for error messages.

    Every array is a buffer (nothing is trainable); ``.to(device, dtype)`` moves all of them
    and ``forward`` computes on the buffers' device and dtype. float32 is the parity dtype
    (DECA runs FLAME in float32); float16/bfloat16 work, with about 1e-3 (fp16) to 3e-3
    (bf16) model units of error.
    """

    def __init__(self, arrays: Mapping[str, object], source: str = "FLAME arrays"):
        super().__init__()
        tensors = _check_arrays(arrays, source)
        for name in BUFFER_NAMES:
            self.register_buffer(name, tensors[name])
        chain = [NECK_JOINT]
        while tensors["parents"][chain[-1]] != -1:
            chain.append(int(tensors["parents"][chain[-1]]))
        self.register_buffer("neck_kin_chain", torch.tensor(chain, dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"vertices={self.v_template.shape[0]}, faces={self.faces.shape[0]}, "
            f"n_shape={N_SHAPE}, n_exp={N_EXP}, landmarks={NUM_LANDMARKS}"
        )

    def forward(
        self, shape_params: torch.Tensor, expression_params: torch.Tensor, pose_params: torch.Tensor
    ) -> FlameOutput:
        """Posed head and landmarks for a batch of DECA codes.

        Args:
            shape_params: ``(B, 100)`` identity coefficients.
            expression_params: ``(B, 50)`` expression coefficients.
            pose_params: ``(B, 6)`` global then jaw axis-angle, radians.

        Returns:
            :class:`FlameOutput` on the buffers' device/dtype (codes are cast to that dtype;
            they must already be on the buffers' device).
        """
        shape = _check_code("shape_params", shape_params, N_SHAPE)
        expression = _check_code("expression_params", expression_params, N_EXP)
        pose = _check_code("pose_params", pose_params, N_POSE)
        batch = shape.shape[0]
        if expression.shape[0] != batch or pose.shape[0] != batch:
            raise ValueError(
                f"shape_params, expression_params and pose_params must have the same batch size, got "
                f"{batch}, {expression.shape[0]} and {pose.shape[0]}"
            )
        dtype, device = self.v_template.dtype, self.v_template.device
        for name, code in (("shape_params", shape), ("expression_params", expression), ("pose_params", pose)):
            if code.device != device:
                raise ValueError(f"{name} is on {code.device} but the FLAME layer is on {device}; move one of them")
        shape, expression, pose = (code.to(dtype) for code in (shape, expression, pose))

        betas = torch.cat([shape, expression], dim=1)
        neck = pose.new_zeros(batch, 3)
        eyes = pose.new_zeros(batch, 6)
        full_pose = torch.cat([pose[:, :3], neck, pose[:, 3:], eyes], dim=1)  # (B, 15): global, neck, jaw, eyes
        template = self.v_template.unsqueeze(0).expand(batch, -1, -1)
        vertices, _ = L.lbs(
            betas, full_pose, template, self.shapedirs, self.posedirs, self.J_regressor, self.parents,
            self.lbs_weights,
        )

        rows = L.dynamic_contour_rows(full_pose, self.neck_kin_chain)  # (B,)
        contour_idx = torch.index_select(self.dynamic_lmk_faces_idx, 0, rows)  # (B, 17)
        contour_bary = torch.index_select(self.dynamic_lmk_bary_coords, 0, rows)  # (B, 17, 3)
        lmk_idx = torch.cat([contour_idx, self.static_lmk_faces_idx.unsqueeze(0).expand(batch, -1)], 1)
        lmk_bary = torch.cat([contour_bary, self.static_lmk_bary_coords.unsqueeze(0).expand(batch, -1, -1)], 1)
        landmarks2d = L.vertices2landmarks(vertices, self.faces, lmk_idx, lmk_bary)
        landmarks3d = L.vertices2landmarks(
            vertices, self.faces,
            self.full_lmk_faces_idx.unsqueeze(0).repeat(batch, 1),
            self.full_lmk_bary_coords.unsqueeze(0).repeat(batch, 1, 1),
        )
        return FlameOutput(vertices=vertices, landmarks2d=landmarks2d, landmarks3d=landmarks3d)


# --------------------------------------------------------------------------- array checks


def _check_arrays(arrays: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    """Validate shapes/ranges of the FLAME arrays; return float32/int64 CPU tensors."""
    missing = [name for name in BUFFER_NAMES if name not in arrays]
    if missing:
        raise WeightFileError(f"{source} lacks the FLAME arrays {', '.join(missing)}.")
    out: dict[str, torch.Tensor] = {}
    for name in BUFFER_NAMES:
        value = arrays[name]
        try:
            tensor = value.detach().cpu() if torch.is_tensor(value) else torch.from_numpy(np.asarray(value))
        except TypeError as err:
            raise WeightFileError(f"{source}: the FLAME array {name} is not numeric ({err}).") from None
        out[name] = tensor.to(torch.float32 if name in _FLOAT_BUFFERS else torch.long).contiguous()

    num_verts = out["v_template"].shape[0]
    num_faces = out["faces"].shape[0]
    expected = {
        "v_template": (num_verts, 3),
        "shapedirs": (num_verts, 3, N_SHAPE + N_EXP),
        "posedirs": ((NUM_JOINTS - 1) * 9, num_verts * 3),
        "J_regressor": (NUM_JOINTS, num_verts),
        "lbs_weights": (num_verts, NUM_JOINTS),
        "faces": (num_faces, 3),
        "parents": (NUM_JOINTS,),
        "static_lmk_faces_idx": (NUM_STATIC,),
        "static_lmk_bary_coords": (NUM_STATIC, 3),
        "dynamic_lmk_faces_idx": (L.CONTOUR_ROWS, NUM_CONTOUR),
        "dynamic_lmk_bary_coords": (L.CONTOUR_ROWS, NUM_CONTOUR, 3),
        "full_lmk_faces_idx": (NUM_LANDMARKS,),
        "full_lmk_bary_coords": (NUM_LANDMARKS, 3),
    }
    wrong = [f"{name} {tuple(out[name].shape)} (expected {shape})" for name, shape in expected.items()
             if tuple(out[name].shape) != shape]
    if wrong:
        raise WeightFileError(f"{source}: FLAME arrays with the wrong shape: {'; '.join(wrong)}.")
    faces = out["faces"]
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_verts):
        raise WeightFileError(f"{source}: FLAME faces index vertices outside 0..{num_verts - 1}.")
    for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
        idx = out[name]
        if int(idx.min()) < 0 or int(idx.max()) >= num_faces:
            raise WeightFileError(f"{source}: the landmark embedding ({name}) indexes triangles outside 0..{num_faces - 1}.")
    parents = out["parents"].tolist()
    if parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i > 0):
        raise WeightFileError(f"{source}: the FLAME kinematic tree {parents} is not a tree rooted at joint 0.")
    return out


# --------------------------------------------------------------------------- original files


def _array(model: Mapping[str, object], key: str, source: Path) -> np.ndarray:
    if key not in model:
        raise WeightFileError(f"{source} is not a FLAME model: it has no '{key}' entry (found {sorted(map(str, model))[:12]}).")
    value = np.asarray(model[key])
    if value.dtype.hasobject:
        raise WeightFileError(f"{source}: the FLAME entry '{key}' is not numeric.")
    return value


def _read_generic_model(path: Path) -> dict[str, np.ndarray]:
    """The layer arrays from FLAME's ``generic_model.pkl``, exactly as DECA derives them."""
    model = load_pickle(path)
    if not isinstance(model, Mapping):
        raise WeightFileError(f"{path} is not a FLAME model: it holds a {type(model).__name__}, not a dict.")
    shapedirs = _array(model, "shapedirs", path)
    if shapedirs.ndim != 3 or shapedirs.shape[2] < EXPRESSION_OFFSET + N_EXP:
        raise WeightFileError(
            f"{path}: FLAME shapedirs has shape {shapedirs.shape}; expected (5023, 3, 400) "
            f"(FLAME 2020: 300 identity + 100 expression components)."
        )
    posedirs = _array(model, "posedirs", path)
    kintree = _array(model, "kintree_table", path)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise WeightFileError(f"{path}: FLAME kintree_table has shape {kintree.shape}; expected (2, {NUM_JOINTS}).")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # the root's parent is stored as 2**32 - 1
    selected = np.concatenate(
        [shapedirs[:, :, :N_SHAPE], shapedirs[:, :, EXPRESSION_OFFSET:EXPRESSION_OFFSET + N_EXP]], axis=2
    )
    return {
        "v_template": _array(model, "v_template", path).astype(np.float32),
        "shapedirs": selected.astype(np.float32),
        "posedirs": np.reshape(posedirs, [-1, posedirs.shape[-1]]).T.astype(np.float32),
        "J_regressor": _array(model, "J_regressor", path).astype(np.float32),
        "lbs_weights": _array(model, "weights", path).astype(np.float32),
        "faces": _array(model, "f", path).astype(np.int64),
        "parents": parents,
    }


def read_landmark_embedding(path: Path) -> dict[str, np.ndarray]:
    """The six landmark arrays of DECA's ``landmark_embedding.npy`` (full_* flattened to 68)."""
    embedding = load_npy(path)
    if not isinstance(embedding, Mapping):
        raise WeightFileError(f"{path} is not DECA's landmark_embedding.npy: it holds a {type(embedding).__name__}, not a dict.")
    out = {}
    for key in ("static_lmk_faces_idx", "static_lmk_bary_coords", "dynamic_lmk_faces_idx",
                "dynamic_lmk_bary_coords", "full_lmk_faces_idx", "full_lmk_bary_coords"):
        if key not in embedding:
            raise WeightFileError(f"{path} is not DECA's landmark_embedding.npy: it has no '{key}' entry.")
        out[key] = np.asarray(embedding[key])
    for key in ("full_lmk_faces_idx", "full_lmk_bary_coords"):  # stored with a leading batch axis of 1
        if out[key].ndim and out[key].shape[0] == 1:
            out[key] = out[key][0]
    return out


def read_flame_arrays(model_path: str | Path, landmark_embedding_path: str | Path | None = None) -> dict[str, np.ndarray]:
    """All FLAME layer arrays (:data:`BUFFER_NAMES`) from the original files or a converted one.

    Args:
        model_path: FLAME 2020 ``generic_model.pkl``, or a ``.npz``/``.safetensors`` written by
            :func:`convert_flame`.
        landmark_embedding_path: DECA's ``landmark_embedding.npy``; required with a ``.pkl``,
            ignored with a converted file (which already holds the embedding).

    Raises:
        MissingWeightError: a file is missing (the message says where to put and get it).
        WeightFileError: a file is unsafe, corrupt or not what it should be.
    """
    model_path = Path(model_path)
    if model_path.suffix in (".npz", ".safetensors"):
        path = require_file(model_path, "Converted FLAME file", f"python -m pasl convert-flame (from {FLAME_SOURCE})")
        if landmark_embedding_path is not None:
            log.info("%s already holds the landmark embedding; ignoring %s", path.name, landmark_embedding_path)
        arrays, _metadata = _read_converted(path)
        return arrays
    path = require_file(model_path, "FLAME model (generic_model.pkl)", FLAME_SOURCE)
    if landmark_embedding_path is None:
        raise MissingWeightError(
            f"The FLAME landmark embedding (landmark_embedding.npy) is needed with {path.name}. Put the file in "
            f"{WEIGHT_FOLDERS}; get it from {DECA_DATA_SOURCE}."
        )
    embedding_path = require_file(landmark_embedding_path, "FLAME landmark embedding (landmark_embedding.npy)", DECA_DATA_SOURCE)
    return {**_read_generic_model(path), **read_landmark_embedding(embedding_path)}


def load_flame(model_path: str | Path, landmark_embedding_path: str | Path | None = None) -> FLAME:
    """A float32 CPU :class:`FLAME` layer from the original files or a converted one (see :func:`read_flame_arrays`)."""
    source = str(model_path)
    return FLAME(read_flame_arrays(model_path, landmark_embedding_path), source=source).eval()


# --------------------------------------------------------------------------- conversion


def _read_converted(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as handle:
                metadata = dict(handle.metadata() or {})
                arrays = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightFileError(f"{path} is not a valid .safetensors file ({err}). Convert the FLAME files again.") from None
    else:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (ValueError, OSError, EOFError) as err:
            raise WeightFileError(f"{path} is not a valid .npz FLAME conversion ({err}). Convert the FLAME files again.") from None
        raw = arrays.pop("__metadata__", None)
        try:
            metadata = json.loads(str(raw[()])) if raw is not None else {}
        except (ValueError, TypeError):
            metadata = {}
    if metadata.get("format") != CONVERTED_FORMAT:
        raise WeightFileError(
            f"{path} is not a PASL FLAME conversion (format={metadata.get('format')!r}); make one with: "
            f"python -m pasl convert-flame generic_model.pkl landmark_embedding.npy {path.name}"
        )
    return arrays, metadata


def convert_flame(model_pkl: str | Path, landmark_npy: str | Path, dst: str | Path) -> dict[str, str]:
    """Write FLAME 2020 + DECA's landmark embedding as one plain ``.npz`` or ``.safetensors``.

    The file holds exactly the arrays of a :class:`FLAME` layer (float32/int64, already
    reduced to DECA's 100 + 50 components), so loading it needs no pickle at all. The
    metadata records both source files' names and sha256s.

    Args:
        model_pkl: FLAME 2020 ``generic_model.pkl``.
        landmark_npy: DECA's ``landmark_embedding.npy``.
        dst: destination; the suffix (``.npz`` or ``.safetensors``) picks the format.

    Returns:
        The metadata written (str -> str).
    """
    model_pkl, landmark_npy, dst = Path(model_pkl), Path(landmark_npy), Path(dst)
    if dst.suffix not in (".npz", ".safetensors"):
        raise ValueError(f"the destination must end in .npz or .safetensors, got {dst}")
    arrays = read_flame_arrays(model_pkl, landmark_npy)
    layer = FLAME(arrays, source=str(model_pkl))  # validates everything before anything is written
    tensors = {name: getattr(layer, name).numpy() for name in BUFFER_NAMES}

    from . import __version__

    metadata = {
        "format": CONVERTED_FORMAT,
        "format_version": CONVERTED_VERSION,
        "model_file": model_pkl.name,
        "model_sha256": sha256_of(model_pkl),
        "landmark_file": landmark_npy.name,
        "landmark_sha256": sha256_of(landmark_npy),
        "n_shape": str(N_SHAPE),
        "n_exp": str(N_EXP),
        "converted_by": f"pasl {__version__}",
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(tensors, str(dst), metadata=metadata)
    else:
        with open(dst, "wb") as handle:  # an open handle keeps np.savez from appending ".npz"
            np.savez(handle, __metadata__=np.array(json.dumps(metadata, sort_keys=True)), **tensors)
    return metadata


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class HeadTemplate:
    """DECA's ``head_template.obj``: the FLAME mesh with its UV layout.

    Attributes:
        vertices: ``(5023, 3)`` float32 template positions (as stored in the file).
        faces: ``(9976, 3)`` long, 0-based vertex indices of each triangle.
        uvcoords: ``(5118, 2)`` float32 texture coordinates, ``(u, v)`` in [0, 1], v up.
        uvfaces: ``(9976, 3)`` long, 0-based ``uvcoords`` indices of each triangle corner.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uvcoords: torch.Tensor
    uvfaces: torch.Tensor


def _obj_index(token: str, count: int, what: str, path: Path, line_no: int) -> int:
    index = int(token)
    index = index - 1 if index > 0 else count + index  # OBJ: 1-based, negative = relative to the end
    if not 0 <= index < count:
        raise WeightFileError(f"{path}:{line_no}: the face refers to {what} {token}, but only {count} are defined.")
    return index


def read_head_template(path: str | Path) -> HeadTemplate:
    """Parse ``head_template.obj`` (``v``, ``vt`` and triangle ``f`` lines: ``f v``, ``f v/vt``, ``f v/vt/vn``, ``f v//vn``)."""
    path = require_file(path, "FLAME head template (head_template.obj)", DECA_DATA_SOURCE)
    vertices: list[list[float]] = []
    uvcoords: list[list[float]] = []
    faces: list[list[int]] = []
    uvfaces: list[list[int]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                tokens = line.split()
                if not tokens:
                    continue
                if tokens[0] == "v":
                    vertices.append([float(t) for t in tokens[1:4]])
                elif tokens[0] == "vt":
                    uvcoords.append([float(t) for t in tokens[1:3]])
                elif tokens[0] == "f":
                    corners = [t.split("/") for t in tokens[1:]]
                    if len(corners) != 3:
                        raise WeightFileError(f"{path}:{line_no}: only triangles are supported, got {len(corners)} corners.")
                    faces.append([_obj_index(c[0], len(vertices), "vertex", path, line_no) for c in corners])
                    if all(len(c) > 1 and c[1] for c in corners):
                        uvfaces.append([_obj_index(c[1], len(uvcoords), "uv", path, line_no) for c in corners])
    except (UnicodeDecodeError, ValueError) as err:
        if isinstance(err, WeightFileError):
            raise
        raise WeightFileError(f"{path} is not a valid .obj mesh ({err}).") from None
    if not faces or any(len(v) != 3 for v in vertices):
        raise WeightFileError(f"{path} is not a valid .obj mesh: no triangles or malformed 'v' lines.")
    if uvfaces and len(uvfaces) != len(faces):
        raise WeightFileError(f"{path}: only some faces have texture coordinates ({len(uvfaces)} of {len(faces)}).")
    return HeadTemplate(
        vertices=torch.tensor(vertices, dtype=torch.float32),
        faces=torch.tensor(faces, dtype=torch.long),
        uvcoords=torch.tensor(uvcoords, dtype=torch.float32).reshape(-1, 2),
        uvfaces=torch.tensor(uvfaces, dtype=torch.long).reshape(-1, 3),
    )


def load_head_template(path: str | Path) -> torch.Tensor:
    """Triangles of ``head_template.obj`` (the topology DECA's renderer uses): ``(9976, 3)`` long, 0-based."""
    return read_head_template(path).faces
