"""FLAME's files: the original ``generic_model.pkl`` and ``landmark_embedding.npy``, our
conversion of them, and DECA's ``head_template.obj``.

Kept apart from :mod:`pasl.flame` (the layer and its maths) so the layer knows no file
formats. The originals are read without chumpy and without running pickle code (via
:mod:`pasl.safe_pickle`); :func:`convert_flame` writes both FLAME files as one plain
``.npz``/``.safetensors`` (:func:`pasl.weights.save_converted`) that :func:`load_flame` also
reads, with no pickle at all.

Files (licences differ; none ships with this package):

* ``generic_model.pkl``: FLAME 2020, free registration at https://flame.is.tue.mpg.de.
* ``landmark_embedding.npy`` and ``head_template.obj``: DECA's ``data/`` folder,
  https://github.com/yfeng95/DECA/tree/master/data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .catalog import WEIGHT_FOLDERS
from .errors import MissingWeightError, WeightFileError
from .flame import BUFFER_NAMES, FLAME, N_EXP, N_SHAPE, NUM_JOINTS
from .safe_pickle import load_npy, load_pickle
from .weights import check_destination, read_npz, read_safetensors, require_file, save_converted

log = logging.getLogger(__name__)

__all__ = [
    "HeadTemplate",
    "convert_flame",
    "load_flame",
    "load_head_template",
    "read_flame_arrays",
    "read_head_template",
    "read_landmark_embedding",
]

EXPRESSION_OFFSET = 300
"""FLAME 2020 ``shapedirs`` holds 300 identity components, then 100 expression components."""
CONVERTED_FORMAT = "pasl-flame"
"""``format`` metadata of a file written by :func:`convert_flame`."""
CONVERTED_VERSION = "1"

FLAME_SOURCE = (
    "https://flame.is.tue.mpg.de (FLAME 2020 requires a free registration: download FLAME2020.zip and "
    "take generic_model.pkl)"
)
DECA_DATA_SOURCE = "the DECA repository, https://github.com/yfeng95/DECA/tree/master/data"

# --------------------------------------------------------------------------- original files


def _array(model: Mapping[str, object], key: str, source: Path) -> np.ndarray:
    if key not in model:
        raise WeightFileError(f"{source} is not a FLAME model: it has no '{key}' entry (found {sorted(map(str, model))[:12]}).")
    value = np.asarray(model[key])
    if value.dtype.hasobject:
        raise WeightFileError(f"{source}: the FLAME entry '{key}' is not numeric.")
    return value


def read_generic_model(path: Path) -> dict[str, np.ndarray]:
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
    return {**read_generic_model(path), **read_landmark_embedding(embedding_path)}


def load_flame(model_path: str | Path, landmark_embedding_path: str | Path | None = None) -> FLAME:
    """A float32 CPU :class:`FLAME` layer from the original files or a converted one (see :func:`read_flame_arrays`)."""
    source = str(model_path)
    return FLAME(read_flame_arrays(model_path, landmark_embedding_path), source=source).eval()


# --------------------------------------------------------------------------- conversion


def _read_converted(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    redo = "Convert the FLAME files again."
    if path.suffix == ".safetensors":
        tensors, metadata = read_safetensors(path, redo=redo)
        arrays = {key: tensor.numpy() for key, tensor in tensors.items()}
    else:
        arrays, metadata = read_npz(path, redo=redo)
    if metadata.get("format") != CONVERTED_FORMAT:
        raise WeightFileError(
            f"{path} is not a PASL FLAME conversion (format={metadata.get('format')!r}); make one with: "
            f"python -m pasl convert-flame generic_model.pkl landmark_embedding.npy {path.name}"
        )
    return arrays, metadata


def convert_flame(model_pkl: str | Path, landmark_npy: str | Path, dst: str | Path) -> dict[str, str]:
    """Write FLAME 2020 + DECA's landmark embedding as one plain ``.npz`` or ``.safetensors``.

    The file holds exactly the arrays of a :class:`~pasl.flame.FLAME` layer (float32/int64,
    already reduced to DECA's 100 + 50 components), so loading it needs no pickle at all. The
    metadata records both source files' names and sha256s (``model_*`` and ``landmark_*``).

    Args:
        model_pkl: FLAME 2020 ``generic_model.pkl``.
        landmark_npy: DECA's ``landmark_embedding.npy``.
        dst: destination; the suffix (``.npz`` or ``.safetensors``) picks the format.

    Returns:
        The metadata written (str -> str).
    """
    model_pkl, landmark_npy = Path(model_pkl), Path(landmark_npy)
    dst = check_destination(dst, (".npz", ".safetensors"))
    arrays = read_flame_arrays(model_pkl, landmark_npy)
    layer = FLAME(arrays, source=str(model_pkl))  # validates everything before anything is written
    return save_converted(
        {name: getattr(layer, name) for name in BUFFER_NAMES},
        dst,
        format=CONVERTED_FORMAT,
        format_version=CONVERTED_VERSION,
        sources={"model": model_pkl, "landmark": landmark_npy},
        extra={"n_shape": str(N_SHAPE), "n_exp": str(N_EXP)},
    )


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
