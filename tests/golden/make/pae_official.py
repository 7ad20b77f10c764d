"""Make tests/golden/pae_official.npz: face.evoLVe's IR-50 as shipped in the PASL repository
(``FR_Pretrained_Test/Model/model_irse.py``, ``IR_50(112)``) on the synthetic
weights of ``tests/pae_synthetic.py``, and the CSIM input recipe of the authors'
``mean_pae_csim.py``.

Read by tests/test_pae.py (test_ir50_equals_the_authors_network,
test_official_protocol_reproduces_mean_pae_csim). For weight seeds 10 (the FF network
of ``write_pae_folder``) and 13 (SS):

* ``raw_{seed}``: the network on ``RandomState(3).uniform(-1, 1, (2, 3, 112, 112))`` (fp32);
* ``official_input_u8``: ``face_like_images(7, 4)`` -> ``torchvision.utils.save_image``
  (one PNG per face) -> ``cv2.imread`` (BGR) -> ``cv2.resize((112, 112))`` ->
  ``transforms.ToTensor()``, stored as ``rint(x * 255)``;
* ``official_embed_{seed}``: that input -> ``F.interpolate(bilinear, 112)`` -> network,
  one face at a time as ``mean_pae_csim.py`` does (``--batched``: all four at once);
* ``official_csim_{seed}``: ``nn.CosineSimilarity(dim=1, eps=1e-6)(embed[:2], embed[2:])``.

The face.evoLVe repository's ``backbone/model_irse.py`` defines the same network;
``--official`` may point at a face.evoLVe checkout too (``--irse-path backbone/model_irse.py``).

    python tests/golden/make/pae_official.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "pae_official"
SEEDS = (10, 13)


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (or ZhaoJ9014/face.evoLVe with --irse-path)")
    p.add_argument("--irse-path", default="FR_Pretrained_Test/Model/model_irse.py", help="model_irse.py inside the checkout")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    p.add_argument("--batched", action="store_true", help="embed the four faces in one batch")
    args = p.parse_args()
    _common.repo_paths()

    import cv2
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
    from torchvision import transforms

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("official_model_irse", args.official / args.irse_path)
    model_irse = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_irse)  # official

    from pae_synthetic import face_like_images, ir50_state  # this repo's test helpers

    rng = np.random.RandomState(3)
    raw = torch.from_numpy(rng.uniform(-1, 1, size=(2, 3, 112, 112)).astype(np.float32))
    faces = face_like_images(7, 4)
    convert_tensor = transforms.ToTensor()
    inputs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, face in enumerate(faces):
            path = str(Path(tmp) / f"{i}.png")
            torchvision.utils.save_image(face, path)
            img = cv2.imread(path)
            img = cv2.resize(img, (112, 112))
            inputs.append(convert_tensor(img).reshape(1, 3, 112, 112))
    inputs = torch.cat(inputs)

    arrays = {}
    for seed in SEEDS:
        try:
            net = model_irse.IR_50(112)  # PASL's copy takes an int
        except (AssertionError, TypeError):
            net = model_irse.IR_50([112, 112])  # face.evoLVe's takes [112, 112]
        net.load_state_dict(ir50_state(seed))
        net.eval()
        with torch.no_grad():
            arrays[f"raw_{seed}"] = net(raw).numpy()
            if seed == SEEDS[0]:
                arrays["official_input_u8"] = np.rint(inputs.numpy() * 255).astype(np.uint8)
            x = nn.functional.interpolate(inputs, size=(112, 112), mode="bilinear")
            if args.batched:
                embed = net(x)
            else:
                embed = torch.cat([net(x[i : i + 1]) for i in range(x.shape[0])])
        arrays[f"official_embed_{seed}"] = embed.numpy()
        arrays[f"official_csim_{seed}"] = nn.CosineSimilarity(dim=1, eps=1e-6)(embed[:2], embed[2:]).numpy()
    order = ["raw_10", "official_input_u8", "official_embed_10", "official_csim_10", "raw_13", "official_embed_13", "official_csim_13"]
    arrays = {k: arrays[k] for k in order}

    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, [args.irse_path, "mean_pae_csim.py"])],
        {
            "weights": "tests/pae_synthetic.py ir50_state(seed), seeds 10 (FF) and 13 (SS); load_state_dict strict; eval; "
                       "no_grad; fp32 CPU",
            "raw": "numpy RandomState(3).uniform(-1, 1, (2, 3, 112, 112)) float32",
            "faces": "tests/pae_synthetic.py face_like_images(7, 4)",
            "recipe": "torchvision save_image per face -> cv2.imread -> cv2.resize (112, 112) -> ToTensor -> F.interpolate "
                      "bilinear 112 -> IR_50",
            "embedding": "batch of 4" if args.batched else "one face at a time",
            "csim": "nn.CosineSimilarity(dim=1, eps=1e-6)(embed[:2], embed[2:])",
        },
        modules=("torchvision", "cv2"),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
