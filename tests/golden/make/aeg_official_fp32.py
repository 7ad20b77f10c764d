"""Make tests/golden/aeg_official_fp32.npz: the authors' AEG (``core/model_lm_talking.py``
``Generator`` and ``StyleEncoder``) on the synthetic weights of ``tests/synthetic.py``.

Read by tests/test_aeg.py::TestOfficialParity. Cases (as the test): ``sa`` = weights
``aeg_states(0, self_attention=True)``, inputs ``aeg_inputs(10, batch=2)``; ``nosa`` =
``aeg_states(3, False)``, ``aeg_inputs(13, 1)``. fp32, CPU, eval, no_grad. Stored:
style codes, every 97th value of the flattened image, per-channel means (float64).

Needs ``munch`` importable (``pip install munch``). ``fastai`` is not needed:
``core/model_lm_talking.py`` only star-imports ``fastai.vision`` and uses none of its
names in these classes, so an empty ``fastai.vision`` module is put in ``sys.modules``
(recorded in the provenance as a stub).

    python tests/golden/make/aeg_official_fp32.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "aeg_official_fp32"
STRIDE = 97
CASES = [("sa", 0, True, 2), ("nosa", 3, False, 1)]  # case, weight seed, self-attention, batch
OFFICIAL_FILES = ["core/model_lm_talking.py", "core/wing.py", "core/resnet50_ft_dims_2048.py"]


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (or xxxxxx321/PASL)")
    args = p.parse_args()
    _common.repo_paths()

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    stubs = []
    if "fastai.vision" not in sys.modules:
        fastai = types.ModuleType("fastai")
        vision = types.ModuleType("fastai.vision")
        vision.__all__ = []
        fastai.vision = vision
        sys.modules["fastai"], sys.modules["fastai.vision"] = fastai, vision
        stubs.append("fastai.vision: empty module (only star-imported by core/model_lm_talking.py, no name used)")
    sys.path.insert(0, str(args.official.resolve()))
    from core.model_lm_talking import Generator, StyleEncoder  # official

    from synthetic import aeg_inputs, aeg_states  # this repo's test helpers

    arrays = {}
    for case, seed, self_attention, batch in CASES:
        states = aeg_states(seed, self_attention)
        generator = Generator(256, 128, w_hpf=1)
        style_encoder = StyleEncoder(256, 128, 2, self_attention)
        generator.load_state_dict(states["generator"], strict=True)
        style_encoder.load_state_dict(states["style_encoder"], strict=True)
        generator.eval(), style_encoder.eval()
        x = aeg_inputs(seed + 10, batch)
        with torch.no_grad():
            style = style_encoder(x["source"])
            image = generator(x["depth"], x["landmarks"], style)
        arrays[f"{case}_style"] = style.numpy()
        arrays[f"{case}_image_strided"] = image.flatten().numpy()[::STRIDE]
        arrays[f"{case}_image_channel_mean"] = image.double().mean(dim=(2, 3)).numpy()
    arrays["stride"] = np.array(STRIDE)

    record = _common.provenance(
        NAME,
        [_common.official_entry("AvLab-CV/PASL", args.official, args.official_commit, OFFICIAL_FILES)],
        {
            "weights": "tests/synthetic.py aeg_states(seed, self_attention): sa seed 0 self_att=True, nosa seed 3 self_att=False",
            "inputs": "tests/synthetic.py aeg_inputs(seed + 10, batch): sa seed 10 batch 2, nosa seed 13 batch 1",
            "networks": "Generator(256, 128, w_hpf=1), StyleEncoder(256, 128, 2, self_att); load_state_dict strict; eval; "
                        "no_grad; fp32 CPU",
            "stored": f"style; image.flatten()[::{STRIDE}]; image.double().mean((2, 3))",
        },
        stubs,
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
