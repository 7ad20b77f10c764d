"""Make tests/golden/fan_official.npz: face_alignment 1.1.1 as vendored in the PASL repository
(``face_alignment/``; the same release is on PyPI as ``face-alignment==1.1.1``) on the
synthetic S3FD / 2D-FAN-4 weights of ``tests/fan_synthetic.py``.

Read by tests/test_align_fan.py. ``api.FaceAlignment(LandmarksType._2D, flip_input=True,
device='cpu')``, weights from ``write_fan_files`` (S3FD seed 11, FAN seed 12, loaded by
the official ``load_url`` from a temporary ``TORCH_HOME``, see ``_fan_setup.py``), image
``fan_synthetic.golden_image()`` (144 x 176, seed 5). Stored:

* ``image``; ``boxes``: ``face_detector.detect_from_image(image[..., ::-1].copy())``
  (what ``get_landmarks`` does when given no boxes), as float64 (7 faces, score > 0.5);
* ``landmarks``: ``get_landmarks(image, detected_faces=boxes)`` with the float64 boxes
  (NumPy 1.x, which face_alignment 1.1.1 was written for, promotes the box arithmetic
  to float64);
* ``s3fd_out0..11``: the raw S3FD outputs (cls, reg per level, before the softmax),
  recorded by a forward hook during that detection;
* ``heatmaps0``: the heatmaps (FAN + flipped FAN) of the first face as
  ``get_preds_fromhm`` receives them, channels ``heatmap_channels``
  (``[0, 8, 16, 30, 36, 45, 48, 54, 62, 67]``; ``--channels`` to change).

    python tests/golden/make/fan_official.py --official /path/to/PASL --verify
    python tests/golden/make/fan_official.py --official /path/to/PASL \\
        --face-alignment /tmp/face_alignment-1.1.1 --verify   # the PyPI sdist instead
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "fan_official"
OFFICIAL_FILES = ["face_alignment/api.py", "face_alignment/utils.py", "face_alignment/models.py",
                  "face_alignment/detection/sfd/sfd_detector.py", "face_alignment/detection/sfd/detect.py",
                  "face_alignment/detection/sfd/net_s3fd.py", "face_alignment/detection/sfd/bbox.py"]


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (its vendored face_alignment/)")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    p.add_argument("--face-alignment", type=Path, default=None,
                   help="folder holding the face_alignment package (default: the --official checkout)")
    p.add_argument("--channels", default="0,8,16,30,36,45,48,54,62,67", help="heatmap channels stored")
    args = p.parse_args()
    _common.repo_paths()

    import _fan_setup
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    channels = [int(c) for c in args.channels.split(",")]
    package_parent = args.face_alignment or args.official
    with tempfile.TemporaryDirectory() as tmp:
        _fan_setup.prepare(Path(tmp))
        face_alignment = _fan_setup.import_face_alignment(package_parent)
        from face_alignment import api  # official

        from fan_synthetic import golden_image  # this repo's test helper

        fa = face_alignment.FaceAlignment(face_alignment.LandmarksType._2D, flip_input=True, device="cpu")
        image = golden_image().numpy()

        raw = []
        hook = fa.face_detector.face_detector.register_forward_hook(lambda m, i, o: raw.append([t.clone() for t in o]))
        boxes = fa.face_detector.detect_from_image(image[..., ::-1].copy())
        hook.remove()
        boxes = np.stack(boxes).astype(np.float64)

        heatmaps = []
        original = api.get_preds_fromhm

        def recording(hm, *a, **k):
            heatmaps.append(hm.clone())
            return original(hm, *a, **k)

        api.get_preds_fromhm = recording
        try:
            landmarks = fa.get_landmarks(image, detected_faces=list(boxes))
        finally:
            api.get_preds_fromhm = original

    arrays = {
        "image": image,
        "boxes": boxes,
        "landmarks": np.stack(landmarks).astype(np.float32),
        "heatmap_channels": np.array(channels, dtype=np.int64),
        "heatmaps0": heatmaps[0][0, channels].numpy(),
    }
    for i, t in enumerate(raw[0]):
        arrays[f"s3fd_out{i}"] = t.numpy()

    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES)],
        {
            "weights": "tests/fan_synthetic.py write_fan_files (S3FD seed 11, 2D-FAN-4 seed 12), loaded by face_alignment's "
                       "load_url from a temporary TORCH_HOME",
            "face_alignment": str(package_parent),
            "image": "tests/fan_synthetic.py golden_image() (144 x 176, seed 5)",
            "call": "FaceAlignment(LandmarksType._2D, flip_input=True, device='cpu'); boxes = "
                    "face_detector.detect_from_image(image[..., ::-1]) as float64; get_landmarks(image, detected_faces=boxes)",
            "heatmaps": f"input of get_preds_fromhm for face 0 (FAN + flipped FAN), channels {channels}",
            "s3fd": "raw S3FD outputs (forward hook), before softmax",
        },
        stubs=["face_alignment.api.get_preds_fromhm wrapped to record its input (result unchanged)"],
        modules=("cv2", "skimage"),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
