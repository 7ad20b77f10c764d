"""Make tests/golden/flame_official.npz: DECA's FLAME layer (``decalib/models/FLAME.py`` +
``decalib/models/lbs.py``, as vendored in the PASL repository) on the synthetic FLAME
files of ``tests/flame_synthetic.py``.

Read by tests/test_flame.py (TestOfficialParity and others). Files:
``write_generic_model(seed=0)`` (its sha256 is stored as ``model_sha256``) and
``write_landmark_embedding(seed=1)``; config ``n_shape=100, n_exp=50``. Codes:
``flame_codes(seed=7)`` (9 samples over ``GOLDEN_YAWS_DEG``), stored as ``shape``,
``exp``, ``pose``. fp32 CPU, no_grad.

Stored: vertices every 10th and in full for rows ``[0, 7]``, float64 sums and absolute
sums of the vertices, ``landmarks2d``/``landmarks3d``, the contour row each sample
selects (official ``_find_dynamic_lmk_idx_and_bcoords`` given a row-number table),
vertices of all-zero codes (batch 1) every 10th, and with ``--real-embedding`` (DECA's
own ``landmark_embedding.npy``; default ``../shared/assets/flame/landmark_embedding.npy``
next to the repository, as tests/test_flame.py reads it) ``real_landmarks2d/3d`` and that
file's sha256.

``generic_model.pkl`` holds ``chumpy.ch.Ch`` objects, so loading it with ``pickle`` needs
chumpy (which does not install on current Python/NumPy). Unless a real ``chumpy`` is
importable, a stub ``chumpy`` / ``chumpy.ch`` module is put in ``sys.modules`` whose
``Ch`` only keeps the pickled state and exposes ``x`` through ``__array__`` and
``shape``: the import layer only, the official FLAME code runs unchanged
(recorded in the provenance).

    python tests/golden/make/flame_official.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "flame_official"
FULL_ROWS = [0, 7]
OFFICIAL_FILES = ["decalib/models/FLAME.py", "decalib/models/lbs.py"]
DEFAULT_REAL_EMBEDDING = _common.REPO_ROOT.parent / "shared" / "assets" / "flame" / "landmark_embedding.npy"


def install_chumpy_stub() -> list[str]:
    try:
        import chumpy

        return []
    except Exception:
        pass
    import numpy as np

    class Ch:
        """Unpickling target for ``chumpy.ch.Ch``: the state dict, ``x`` as the array."""

        def __setstate__(self, state):
            self.__dict__.update(state)

        @property
        def shape(self):
            return np.asarray(self.x).shape

        def __array__(self, dtype=None, copy=None):
            return np.asarray(self.x, dtype=dtype)

    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    ch.Ch = Ch
    chumpy.ch = ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    return ["chumpy, chumpy.ch: stub modules; Ch keeps the pickled state, __array__ returns its x (import layer only)"]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (its decalib/) or yfeng95/DECA")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    p.add_argument("--real-embedding", type=Path, default=DEFAULT_REAL_EMBEDDING,
                   help="DECA's data/landmark_embedding.npy (real_* entries; skipped if absent)")
    args = p.parse_args()
    _common.repo_paths()

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    stubs = install_chumpy_stub()
    sys.path.insert(0, str(args.official.resolve()))
    from decalib.models.FLAME import FLAME  # official

    import flame_synthetic as fs  # this repo's test helpers

    codes = fs.flame_codes(seed=7)
    args_t = [torch.from_numpy(codes[k]) for k in ("shape", "exp", "pose")]

    def make(model_path, embedding_path):
        config = types.SimpleNamespace(flame_model_path=str(model_path), flame_lmk_embedding_path=str(embedding_path),
                                       n_shape=100, n_exp=50)
        return FLAME(config)

    arrays = {"shape": codes["shape"], "exp": codes["exp"], "pose": codes["pose"]}
    with tempfile.TemporaryDirectory() as tmp:
        model_path = fs.write_generic_model(Path(tmp) / "generic_model.pkl", seed=0)
        embedding_path = fs.write_landmark_embedding(Path(tmp) / "landmark_embedding.npy", seed=1)
        flame = make(model_path, embedding_path)
        with torch.no_grad():
            vertices, landmarks2d, landmarks3d = flame(*args_t)
            arrays["vertices_every10"] = vertices[:, ::10].numpy()
            arrays["vertices_sum"] = vertices.double().sum(dim=(1, 2)).numpy()
            arrays["vertices_abs_sum"] = vertices.double().abs().sum(dim=(1, 2)).numpy()
            arrays["vertices_full_idx"] = np.array(FULL_ROWS, dtype=np.int64)
            arrays["vertices_full"] = vertices[FULL_ROWS].numpy()
            arrays["landmarks2d"] = landmarks2d.numpy()
            arrays["landmarks3d"] = landmarks3d.numpy()
            # the contour row each sample selects: the official selection applied to a table of row numbers
            batch = args_t[2].shape[0]
            eye = flame.eye_pose.expand(batch, -1)
            pose = args_t[2]
            full_pose = torch.cat([pose[:, :3], flame.neck_pose.expand(batch, -1), pose[:, 3:], eye], dim=1)
            table = torch.arange(79).unsqueeze(1)
            rows, _ = flame._find_dynamic_lmk_idx_and_bcoords(full_pose, table, table.float(), flame.neck_kin_chain)
            arrays["contour_rows"] = rows[:, 0].numpy().astype(np.int64)
            zero = [torch.zeros(1, 100), torch.zeros(1, 50), torch.zeros(1, 6)]
            arrays["zero_code_vertices_every10"] = flame(*zero)[0][:, ::10].numpy()
        arrays["model_sha256"] = np.array(sha256(model_path))
        inputs = {
            "model": "tests/flame_synthetic.py write_generic_model(seed=0)",
            "embedding": "tests/flame_synthetic.py write_landmark_embedding(seed=1)",
            "codes": "tests/flame_synthetic.py flame_codes(seed=7) (GOLDEN_YAWS_DEG)",
            "config": "n_shape=100, n_exp=50; fp32 CPU no_grad",
            "zero_codes": "zeros (1, 100), (1, 50), (1, 6)",
        }
        if args.real_embedding and Path(args.real_embedding).is_file():
            real = make(model_path, args.real_embedding)
            with torch.no_grad():
                _, real2d, real3d = real(*args_t)
            arrays["real_landmarks2d"] = real2d.numpy()
            arrays["real_landmarks3d"] = real3d.numpy()
            arrays["real_embedding_sha256"] = np.array(sha256(args.real_embedding))
            inputs["real_embedding"] = f"DECA data/landmark_embedding.npy, sha256 {arrays['real_embedding_sha256']}"
        else:
            print(f"no real landmark embedding at {args.real_embedding}: real_* entries not made")

    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES)],
        inputs,
        stubs,
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
