"""Make tests/golden/render_pytorch3d.npz: pytorch3d 0.7.9's ``rasterize_meshes`` (CPU kernel) and
DECA's ``SRenderY.render_depth`` with pytorch3d as its rasteriser (``decalib/utils/renderer.py``
as vendored in the PASL repository).

Read by tests/test_render_pytorch3d_golden.py (see its module docstring for every entry).
Needs pytorch3d importable (0.7.9 has no wheel for torch 2.14: build it from source,
``pip install --no-build-isolation git+https://github.com/facebookresearch/pytorch3d@v0.7.9``,
which takes long on few cores) and the FLAME head template
``../shared/assets/flame/head_template.obj`` (``--template``).

Inputs: the earlier session's generators for the random meshes, the grid, the near-plane
meshes and the head poses were not kept, so ``rand_verts``/``rand_faces``,
``grid_verts``/``grid_faces``, ``near_plane_verts`` and ``head_centre``/``head_pose_deg``/
``head_rot``/``head_cam``/``head_size``/``zbuf_stride`` are read from ``--inputs``
(default: the stored golden file). The head vertices are rebuilt from the OBJ by the
test's own ``head_inputs`` (float64 elementwise, one cast to float32); their SHA-256 are
stored. Every other entry is recomputed:

* ``head{k}_pix_to_face`` (int16) and ``head{k}_zbuf_covered`` (every ``zbuf_stride[k]``-th
  covered pixel, row-major) from ``rasterize_meshes(Meshes([raster], [faces]), size,
  blur_radius=0, faces_per_pixel=1, bin_size=None, perspective_correct=False)``;
  ``head2_bary_covered``; ``head0_depth_covered``: ``SRenderY.render_depth`` (224 px) at
  the covered pixels, with the official ``Pytorch3dRasterizer`` (``SRenderY.__init__``
  bypassed: ``faces`` buffer and rasterizer set directly);
* ``rand_pix_to_face``, ``rand_zbuf_covered``, ``rand_cull_pix_to_face``
  (``cull_backfaces=True``), ``near_plane_pix_to_face`` at (48, 64); ``grid_pix_to_face`` at 64.

    python tests/golden/make/render_pytorch3d.py --official /path/to/PASL --verify

Not re-run in the session that wrote this script (no pytorch3d build there); see
tests/golden/PROVENANCE.md.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "render_pytorch3d"
INPUT_KEYS = ["head_centre", "head_pose_deg", "head_rot", "head_cam", "head_size", "rand_verts", "rand_faces",
              "near_plane_verts", "grid_verts", "grid_faces", "zbuf_stride"]
OFFICIAL_FILES = ["decalib/utils/renderer.py", "decalib/utils/util.py"]
DEFAULT_TEMPLATE = _common.REPO_ROOT.parent / "shared" / "assets" / "flame" / "head_template.obj"


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (its decalib/) or yfeng95/DECA")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    p.add_argument("--inputs", type=Path, default=_common.GOLDEN_DIR / f"{NAME}.npz", help="npz holding the input arrays")
    p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="FLAME head_template.obj")
    p.add_argument("--pytorch3d-commit", default="tag v0.7.9",
                   help="recorded in the provenance")
    args = p.parse_args()
    _common.repo_paths()

    import numpy as np
    import torch

    try:
        import pytorch3d
        from pytorch3d.renderer.mesh import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as error:
        raise SystemExit(f"pytorch3d is needed to make {NAME}.npz ({error})") from error
    sys.path.insert(0, str(args.official.resolve()))
    from decalib.utils import renderer  # official

    from test_render_pytorch3d_golden import head_inputs  # the test's own input rebuild

    with np.load(args.inputs, allow_pickle=False) as data:
        inp = {k: data[k].copy() for k in INPUT_KEYS}

    def sha256(t):
        return np.frombuffer(hashlib.sha256(t.contiguous().numpy().tobytes()).digest(), np.uint8)

    def raster(verts, faces, size, **kw):
        meshes = Meshes(verts=[v for v in verts.float()], faces=[f for f in faces.long()])
        return rasterize_meshes(meshes, image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=None,
                                perspective_correct=False, **kw)

    verts64, faces = [], []
    for line in args.template.read_text().splitlines():
        if line.startswith("v "):
            verts64.append([float(a) for a in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(a.split("/")[0]) - 1 for a in line.split()[1:4]])
    verts64, faces = torch.tensor(verts64, dtype=torch.float64), torch.tensor(faces, dtype=torch.long)

    renderer.set_rasterizer("pytorch3d")
    arrays = {k: inp[k] for k in ("head_centre", "head_pose_deg", "head_rot", "head_cam", "head_size")}
    for k in range(3):
        deca, ras = head_inputs(verts64, inp["head_centre"], inp["head_rot"][k], inp["head_cam"][k])
        size = int(inp["head_size"][k])
        p2f, zbuf, bary, _ = raster(ras, faces[None], size)
        covered = p2f[0, ..., 0] >= 0
        arrays[f"head{k}_raster_sha256"] = sha256(ras)
        arrays[f"head{k}_deca_sha256"] = sha256(deca)
        arrays[f"head{k}_pix_to_face"] = p2f[0, ..., 0].numpy().astype(np.int16)
        arrays[f"head{k}_zbuf_covered"] = zbuf[0, ..., 0][covered].numpy()[:: int(inp["zbuf_stride"][k])]
        if k == 0:
            srender = object.__new__(renderer.SRenderY)
            torch.nn.Module.__init__(srender)
            srender.rasterizer = renderer.Pytorch3dRasterizer(size)
            srender.register_buffer("faces", faces[None])
            depth = srender.render_depth(deca.clone())
            arrays["head0_depth_covered"] = depth[0, 0][covered].numpy()
        if k == 2:
            arrays["head2_bary_covered"] = bary[0, :, :, 0][covered].numpy()

    rand_verts = torch.from_numpy(inp["rand_verts"])
    rand_faces = torch.from_numpy(inp["rand_faces"].astype(np.int64))
    arrays["rand_verts"], arrays["rand_faces"] = inp["rand_verts"], inp["rand_faces"]
    p2f, zbuf, _, _ = raster(rand_verts, rand_faces, (48, 64))
    arrays["rand_pix_to_face"] = p2f[..., 0].numpy().astype(np.int16)
    arrays["rand_zbuf_covered"] = zbuf[..., 0][p2f[..., 0] >= 0].numpy()
    arrays["rand_cull_pix_to_face"] = raster(rand_verts, rand_faces, (48, 64), cull_backfaces=True)[0][..., 0].numpy().astype(np.int16)
    arrays["near_plane_verts"] = inp["near_plane_verts"]
    arrays["near_plane_pix_to_face"] = (
        raster(torch.from_numpy(inp["near_plane_verts"]), rand_faces, (48, 64))[0][..., 0].numpy().astype(np.int16)
    )
    arrays["grid_verts"], arrays["grid_faces"] = inp["grid_verts"], inp["grid_faces"]
    grid = raster(torch.from_numpy(inp["grid_verts"]), torch.from_numpy(inp["grid_faces"].astype(np.int64))[None], 64)
    arrays["grid_pix_to_face"] = grid[0][0, ..., 0].numpy().astype(np.int16)
    arrays["zbuf_stride"] = inp["zbuf_stride"]
    arrays["pytorch3d_version"] = np.array(pytorch3d.__version__)

    record = _common.provenance(
        NAME,
        [
            _common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES),
            {"repo": "facebookresearch/pytorch3d", "commit": args.pytorch3d_commit, "version": pytorch3d.__version__},
        ],
        {
            "input_arrays": INPUT_KEYS,
            "inputs_from": str(args.inputs),
            "template": f"{args.template} (sha256 {hashlib.sha256(args.template.read_bytes()).hexdigest()})",
            "heads": "tests/test_render_pytorch3d_golden.py head_inputs(template, centre, rot[k], cam[k])",
        },
        stubs=["SRenderY.__init__ bypassed (faces buffer and Pytorch3dRasterizer set directly)"],
        modules=("pytorch3d",),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
