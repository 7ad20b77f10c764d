"""Make tests/golden/deca_pass_official.npz: DECA's landmark pass on PASL's aligned 256 crop —
``decalib/datasets/detectors.py`` ``FAN`` (face_alignment 1.1.1 as vendored in the PASL
repository, ``FaceAlignment(LandmarksType._2D, flip_input=False)``), then
``decalib/datasets/datasets.py`` ``TestData(iscrop=True, crop_size=224, scale=1.25)``.

Read by tests/test_align_fan.py::TestDecaLandmarkPass. Weights: ``write_fan_files`` of
``tests/fan_synthetic.py`` (S3FD seed 11, FAN seed 12) through a temporary ``TORCH_HOME``
(``_fan_setup.py``). Image: ``cv2.resize(fan_synthetic.golden_image(), (256, 256),
INTER_LINEAR)``, written as PNG and read back by ``TestData``.

``detectors.FAN.__init__`` builds ``FaceAlignment`` with face_alignment's default
``device='cuda'``; to run on a CPU the object is made with ``object.__new__`` and its
``model`` set to the same ``FaceAlignment(_2D, flip_input=False, device='cpu')``;
``FAN.run`` is the official method. The S3FD boxes are converted to float64 before
``get_landmarks`` uses them: face_alignment 1.1.1 was written for NumPy 1.x, which
promoted its box arithmetic to float64; under NumPy 2 they stay float32 and its
``crop()`` fails assigning a ``numpy.float32`` into a torch tensor. Stored: the 68 landmarks ``get_landmarks`` returned
for the first face, ``TestData``'s float32 ``tform``, the float64 per-channel sums of its
float32 224 crop, and the integer sum of the 256 input crop.

    python tests/golden/make/deca_pass_official.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "deca_pass_official"
OFFICIAL_FILES = ["decalib/datasets/detectors.py", "decalib/datasets/datasets.py", "face_alignment/api.py",
                  "face_alignment/utils.py", "face_alignment/models.py", "face_alignment/detection/sfd/sfd_detector.py",
                  "face_alignment/detection/sfd/detect.py", "face_alignment/detection/sfd/net_s3fd.py",
                  "face_alignment/detection/sfd/bbox.py"]


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (decalib/ and the vendored face_alignment/)")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    p.add_argument("--face-alignment", type=Path, default=None,
                   help="folder holding the face_alignment package (default: the --official checkout)")
    args = p.parse_args()
    _common.repo_paths()

    import _fan_setup
    import cv2
    import numpy as np
    import torch
    from skimage.io import imsave

    if args.threads:
        torch.set_num_threads(args.threads)
    package_parent = args.face_alignment or args.official
    with tempfile.TemporaryDirectory() as tmp:
        _fan_setup.prepare(Path(tmp))
        face_alignment = _fan_setup.import_face_alignment(package_parent)
        sys.path.insert(0, str(args.official.resolve()))
        from decalib.datasets import datasets, detectors  # official

        from fan_synthetic import golden_image  # this repo's test helper

        crop = cv2.resize(golden_image().numpy(), (256, 256), interpolation=cv2.INTER_LINEAR)
        path = str(Path(tmp) / "crop.png")
        imsave(path, crop, check_contrast=False)

        fan = object.__new__(detectors.FAN)
        fan.model = face_alignment.FaceAlignment(face_alignment.LandmarksType._2D, flip_input=False, device="cpu")
        detect = fan.model.face_detector.detect_from_image
        fan.model.face_detector.detect_from_image = lambda image: [np.asarray(b, np.float64) for b in detect(image)]
        seen = []
        original = fan.model.get_landmarks

        def recording(image, *a, **k):
            out = original(image, *a, **k)
            seen.append(out)
            return out

        fan.model.get_landmarks = recording
        data = datasets.TestData(fan, [path], iscrop=True, crop_size=224, scale=1.25, face_detector="fan")[0]

    arrays = {
        "landmarks": np.asarray(seen[0][0], dtype=np.float32),
        "tform": data["tform"].numpy(),
        "image_sums": data["image"].double().sum(dim=(1, 2)).numpy(),
        "crop256_sum": np.array(int(crop.astype(np.int64).sum()), dtype=np.int64),
    }
    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES)],
        {
            "weights": "tests/fan_synthetic.py write_fan_files (S3FD seed 11, 2D-FAN-4 seed 12) via a temporary TORCH_HOME",
            "face_alignment": str(package_parent),
            "image": "cv2.resize(tests/fan_synthetic.py golden_image(), (256, 256), INTER_LINEAR), PNG",
            "call": "detectors.FAN with model = FaceAlignment(_2D, flip_input=False, device='cpu'); TestData(fan, [png], "
                    "iscrop=True, crop_size=224, scale=1.25)[0]",
            "stored": "landmarks = get_landmarks(...)[0]; tform; image.double().sum((1, 2)); crop256 integer sum",
        },
        stubs=[
            "detectors.FAN.__init__ bypassed to pass device='cpu' (same FaceAlignment otherwise)",
            "S3FD boxes converted to float64 before get_landmarks uses them (NumPy 1.x promotion; under NumPy 2 "
            "face_alignment 1.1.1's crop() fails assigning a numpy.float32 into a torch tensor)",
        ],
        modules=("cv2", "skimage"),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
