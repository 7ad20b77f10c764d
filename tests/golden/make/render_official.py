"""Make tests/golden/render_official.npz: DECA's projection, crop mapping, landmark drawing and
depth rendering as vendored in the PASL repository, on fixed inputs.

Read by tests/test_render.py. Official functions run:

* ``decalib/utils/util.py`` ``batch_orth_proj`` with ``decalib/deca.py``'s decode steps:
  ``proj_trans_verts = batch_orth_proj(points, cam); [..., 1:] *= -1`` and
  ``proj_landmarks2d = batch_orth_proj(points, cam)[..., :2]; [..., 1:] *= -1``;
* ``decalib/utils/tensor_cropper.py`` ``transform_points(x, inverse(tform).transpose(1, 2),
  [224, 224], [256, 256])`` (the demo's ``render_orig`` path) -> ``crop_*``. The stored
  numbers have ``inverse(tform)`` computed in float64 and rounded to float32 (what
  ``np.linalg.inv`` gives for float32 input); the demo's float32 ``torch.inverse`` gives
  a last-bit difference in 11 of the 300 stored values on an AMD EPYC / MKL CPU
  (``--inverse float32`` reproduces that);
* ``util.tensor_vis_landmarks(zeros (4, 3, 256, 256), lm_points)`` -> channel 0,
  ``np.packbits`` along x -> ``lm_images_bits`` (all three channels are equal);
* ``decalib/utils/renderer.py`` ``SRenderY.render_depth`` with a ``Pytorch3dRasterizer(6)``
  whose ``Meshes``/``rasterize_meshes`` (pytorch3d) are replaced by a recorder that keeps
  the vertices it is given (``depth_*_raster_verts``) and returns the fixed fragments
  ``depth_pix_to_face``/``depth_bary`` (first N rows); ``depth_*_out`` is the depth image
  and ``depth_*_mutated_input`` the input tensor after the call (the official code
  shifts z in place). ``SRenderY.__init__`` (obj file loading) is bypassed: only
  ``faces`` and ``rasterizer`` are set.

Inputs: the seeded generator the earlier session used for ``proj_points``, ``proj_cam``,
``crop_tform``, ``lm_points``, ``depth_{batch,single}_verts``, ``depth_faces``,
``depth_pix_to_face`` and ``depth_bary`` was not kept, so this script reads those
input arrays from ``--inputs`` (default: the stored golden file) and recomputes every
output from them.

``tensor_cropper.py`` imports three names from ``kornia`` that ``transform_points`` does
not use: unless kornia is importable, stub modules provide them (they raise if called).

    python tests/golden/make/render_official.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "render_official"
INPUT_KEYS = ["proj_points", "proj_cam", "crop_tform", "lm_points", "depth_batch_verts", "depth_single_verts",
              "depth_faces", "depth_pix_to_face", "depth_bary"]
OFFICIAL_FILES = ["decalib/utils/util.py", "decalib/utils/tensor_cropper.py", "decalib/utils/renderer.py", "decalib/deca.py"]


def install_kornia_stub() -> list[str]:
    try:
        import kornia.geometry.transform.imgwarp  # noqa: F401

        return []
    except Exception:
        pass

    def unavailable(*args, **kwargs):
        raise RuntimeError("kornia stub: not available")

    names = ["kornia", "kornia.geometry", "kornia.geometry.transform", "kornia.geometry.transform.imgwarp"]
    mods = {n: types.ModuleType(n) for n in names}
    for parent, child in zip(names, names[1:]):
        setattr(mods[parent], child.rsplit(".", 1)[1], mods[child])
    for fn in ("warp_perspective", "get_perspective_transform", "warp_affine"):
        setattr(mods[names[-1]], fn, unavailable)
    sys.modules.update(mods)
    return [
        "kornia.geometry.transform.imgwarp: stub module (warp_perspective, get_perspective_transform, warp_affine imported "
        "by tensor_cropper.py, unused here)"
    ]


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (its decalib/) or yfeng95/DECA")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    p.add_argument("--inputs", type=Path, default=_common.GOLDEN_DIR / f"{NAME}.npz", help="npz holding the input arrays")
    p.add_argument(
        "--inverse",
        choices=["float64", "float32"],
        default="float64",
        help="precision of inverse(tform) (see the module docstring; default float64)",
    )
    args = p.parse_args()
    _common.repo_paths()

    import numpy as np
    import torch

    stubs = install_kornia_stub()
    sys.path.insert(0, str(args.official.resolve()))
    from decalib.utils import renderer, util  # official
    from decalib.utils.tensor_cropper import transform_points  # official

    with np.load(args.inputs, allow_pickle=False) as data:
        inp = {k: data[k].copy() for k in INPUT_KEYS}
    t = {k: torch.from_numpy(v.copy()) for k, v in inp.items()}
    arrays = {}

    # projection, as decalib/deca.py decode()
    arrays["proj_points"], arrays["proj_cam"] = inp["proj_points"], inp["proj_cam"]
    trans_verts = util.batch_orth_proj(t["proj_points"], t["proj_cam"])
    trans_verts[:, :, 1:] = -trans_verts[:, :, 1:]
    landmarks2d = util.batch_orth_proj(t["proj_points"], t["proj_cam"])[:, :, :2]
    landmarks2d[:, :, 1:] = -landmarks2d[:, :, 1:]
    arrays["proj_trans_verts"] = trans_verts.numpy().copy()
    arrays["proj_landmarks2d"] = landmarks2d.numpy().copy()

    # crop -> original image, as the demo's decode(render_orig=True)
    arrays["crop_tform"] = inp["crop_tform"]
    if args.inverse == "float64":
        tform = torch.inverse(t["crop_tform"].double()).float().transpose(1, 2)
    else:
        tform = torch.inverse(t["crop_tform"]).transpose(1, 2)
    arrays["crop_trans_verts"] = transform_points(trans_verts, tform, [224, 224], [256, 256]).numpy()
    arrays["crop_landmarks2d"] = transform_points(landmarks2d, tform, [224, 224], [256, 256]).numpy()

    # landmark drawing
    arrays["lm_points"] = inp["lm_points"]
    vis = util.tensor_vis_landmarks(
        np.zeros((inp["lm_points"].shape[0], 3, 256, 256), np.float32), torch.from_numpy(inp["lm_points"].copy())
    )
    vis = vis.numpy()
    assert set(np.unique(vis)) <= {0.0, 1.0} and (vis[:, 0] == vis[:, 1]).all() and (vis[:, 0] == vis[:, 2]).all()
    arrays["lm_images_bits"] = np.packbits(vis[:, 0].astype(np.uint8), axis=-1)

    # depth: official render_depth + Pytorch3dRasterizer, pytorch3d replaced by a recorder
    seen = {}

    class RecordedMeshes:
        def __init__(self, verts, faces):
            seen["verts"] = verts.clone()
            self.n = verts.shape[0]

    def fake_rasterize_meshes(meshes, image_size, **kwargs):
        n = meshes.n
        p2f = t["depth_pix_to_face"][:n].clone()
        return p2f, torch.zeros(p2f.shape), t["depth_bary"][:n].clone(), torch.zeros(p2f.shape)

    renderer.Meshes = RecordedMeshes
    renderer.rasterize_meshes = fake_rasterize_meshes
    srender = object.__new__(renderer.SRenderY)
    torch.nn.Module.__init__(srender)
    srender.rasterizer = renderer.Pytorch3dRasterizer(6)
    srender.register_buffer("faces", t["depth_faces"][None])
    for mode in ("batch", "single"):
        verts = t[f"depth_{mode}_verts"].clone()
        arrays[f"depth_{mode}_verts"] = inp[f"depth_{mode}_verts"]
        out = srender.render_depth(verts)
        arrays[f"depth_{mode}_raster_verts"] = seen["verts"].numpy()
        arrays[f"depth_{mode}_out"] = out.numpy()
        arrays[f"depth_{mode}_mutated_input"] = verts.numpy()
    arrays["depth_faces"] = inp["depth_faces"]
    arrays["depth_pix_to_face"] = inp["depth_pix_to_face"]
    arrays["depth_bary"] = inp["depth_bary"]

    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES)],
        {
            "input_arrays": INPUT_KEYS,
            "inputs_from": str(args.inputs),
            "note": "the seeded generator of the input arrays was not kept; they are read from the stored file and every "
                    "output is recomputed",
            "crop": f"transform_points(x, inverse(tform).transpose(1, 2), [224, 224], [256, 256]); inverse in {args.inverse}",
            "landmarks": "tensor_vis_landmarks(zeros (B, 3, 256, 256) float32, lm_points) channel 0, packbits along x",
            "depth": "SRenderY.render_depth, Pytorch3dRasterizer(6), recorder for Meshes/rasterize_meshes returning the stored fragments",
        },
        stubs
        + [
            "pytorch3d Meshes/rasterize_meshes: recorder returning fixed fragments (renderer module globals)",
            "SRenderY.__init__ bypassed (faces buffer and rasterizer set directly)",
        ],
        modules=("cv2", "kornia"),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
