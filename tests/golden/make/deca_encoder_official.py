"""Make tests/golden/deca_encoder_official.npz: DECA's ``E_flame`` (``decalib/models/encoders.py``
``ResnetEncoder(outsize=236)``, as vendored in the PASL repository) on the synthetic
``deca_model.tar`` of ``tests/deca_synthetic.py``.

Read by tests/test_csg_encoder.py. Weights: ``deca_checkpoint(seed=0)['E_flame']``, copied
in with ``decalib.utils.util.copy_state_dict`` as ``DECA._create_model`` does; eval;
no_grad; fp32 CPU. Input: ``crop_images(seed=1, batch=2)``.

* ``encoder_params``: the 236 parameters of both images (one batch of 2);
* ``encoder_{shape,tex,exp,pose,cam,light}``: split as ``DECA.decompose_code`` does
  (100/50/50/6/3/27, light reshaped to (B, 9, 3));
* ``encoder_params_item1_alone``: the second image alone (batch 1).

    python tests/golden/make/deca_encoder_official.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "deca_encoder_official"
NUM_DICT = {"shape": 100, "tex": 50, "exp": 50, "pose": 6, "cam": 3, "light": 27}  # DECA cfg.model param_list order
OFFICIAL_FILES = ["decalib/models/encoders.py", "decalib/models/resnet.py", "decalib/utils/util.py", "decalib/deca.py"]


def decompose_code(code, num_dict):
    """``decalib.deca.DECA.decompose_code`` (slicing only; importing deca.py would pull in the renderer)."""
    code_dict, start = {}, 0
    for key in num_dict:
        end = start + int(num_dict[key])
        code_dict[key] = code[:, start:end]
        start = end
        if key == "light":
            code_dict[key] = code_dict[key].reshape(code_dict[key].shape[0], 9, 3)
    return code_dict


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (its decalib/) or yfeng95/DECA")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    args = p.parse_args()
    _common.repo_paths()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.official.resolve()))
    from decalib.models.encoders import ResnetEncoder  # official
    from decalib.utils import util  # official

    from deca_synthetic import crop_images, deca_checkpoint  # this repo's test helpers

    encoder = ResnetEncoder(outsize=sum(NUM_DICT.values()))
    util.copy_state_dict(encoder.state_dict(), deca_checkpoint(seed=0)["E_flame"])
    encoder.eval()
    images = crop_images(seed=1, batch=2)
    with torch.no_grad():
        params = encoder(images)
        alone = encoder(images[1:2])
    arrays = {"encoder_params": params.numpy()}
    for key, value in decompose_code(params, NUM_DICT).items():
        arrays[f"encoder_{key}"] = value.numpy()
    arrays["encoder_params_item1_alone"] = alone.numpy()

    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES)],
        {
            "weights": "tests/deca_synthetic.py deca_checkpoint(seed=0)['E_flame'] via decalib util.copy_state_dict; eval; "
                       "no_grad; fp32 CPU",
            "images": "tests/deca_synthetic.py crop_images(seed=1, batch=2); item1_alone = images[1:2]",
            "decompose": "DECA.decompose_code order shape 100, tex 50, exp 50, pose 6, cam 3, light 27 -> (B, 9, 3)",
        },
        modules=("torchvision",),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
