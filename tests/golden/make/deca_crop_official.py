"""Make tests/golden/deca_crop_official.npz: DECA's ``TestData`` crop (``decalib/datasets/datasets.py``,
as vendored in the PASL repository: ``iscrop=True, crop_size=224, scale=1.25``, the
'fan' face detector) on frames and landmarks from ``tests/deca_synthetic.py``.

Read by tests/test_csg_crop.py (``GOLDEN_CASES`` there). The detector is the official
``decalib.datasets.detectors.FAN`` class with its ``model`` replaced by a fake
``face_alignment`` object whose ``get_landmarks`` returns the case's 68 points (as
float64, like face_alignment 1.1.1's output) or ``None`` (no face); everything else
(``FAN.run``'s box, ``bbox2point``, ``estimate_transform``, ``warp``) is the official
code. Each frame is written as a PNG and read back by ``TestData`` itself (lossless).

Cases: name -> (frame seed, frame low, landmarks (seed, centre, size, integer) or none)

* inside   (10, 0, (20, (128, 134), 120, True))
* edge     (11, 30, (21, (40, 210), 150, True))
* noface   (12, 0, none)
* subpixel (13, 0, (22, (120.3, 128.8), 101.7, False))

Stored per case: ``tform`` (TestData's float32), rows ``crop_rows_index`` of the float32
crop, and the float64 per-channel sums of the float32 crop.

    python tests/golden/make/deca_crop_official.py --official /path/to/PASL --verify
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "deca_crop_official"
CASES = {
    "inside": (10, 0, (20, (128, 134), 120, True)),
    "edge": (11, 30, (21, (40, 210), 150, True)),
    "noface": (12, 0, None),
    "subpixel": (13, 0, (22, (120.3, 128.8), 101.7, False)),
}
ROWS = [0, 1, 2, 57, 111, 112, 180, 221, 222, 223]
OFFICIAL_FILES = ["decalib/datasets/datasets.py", "decalib/datasets/detectors.py"]


class FakeFaceAlignment:
    """Stands in for ``face_alignment.FaceAlignment``: returns fixed points (or no face)."""

    def __init__(self, points):
        self.points = points

    def get_landmarks(self, image):
        return None if self.points is None else [self.points]


def main() -> int:
    p = _common.parser(NAME, __doc__, "checkout of AvLab-CV/PASL (its decalib/) or yfeng95/DECA")
    p.add_argument("--official-repo", default="AvLab-CV/PASL", help="name recorded in the provenance")
    args = p.parse_args()
    _common.repo_paths()

    import numpy as np
    from skimage.io import imsave

    sys.path.insert(0, str(args.official.resolve()))
    from decalib.datasets import datasets, detectors  # official

    from deca_synthetic import face_landmarks, frame_image  # this repo's test helpers

    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (seed, low, landmark_args) in CASES.items():
            frame = frame_image(seed, low=low)
            path = str(Path(tmp) / f"{name}.png")
            imsave(path, frame, check_contrast=False)
            points = None
            if landmark_args is not None:
                seed_l, center, size, integer = landmark_args
                points = face_landmarks(seed_l, center, size, integer).astype(np.float64)
            fan = object.__new__(detectors.FAN)  # official run(), fake model
            fan.model = FakeFaceAlignment(points)
            data = datasets.TestData(fan, [path], iscrop=True, crop_size=224, scale=1.25, face_detector="fan")[0]
            crop = data["image"].numpy()
            arrays[f"crop_{name}_tform"] = data["tform"].numpy()
            arrays[f"crop_{name}_rows"] = crop[:, ROWS]
            arrays[f"crop_{name}_channel_sums"] = crop.astype(np.float64).sum(axis=(1, 2))
    arrays["crop_rows_index"] = np.array(ROWS, dtype=np.int64)

    record = _common.provenance(
        NAME,
        [_common.official_entry(args.official_repo, args.official, args.official_commit, OFFICIAL_FILES)],
        {
            "cases": {k: [v[0], v[1], v[2]] for k, v in CASES.items()},
            "frames": "tests/deca_synthetic.py frame_image(seed, low=low), written as PNG (skimage imsave), read by TestData",
            "landmarks": "tests/deca_synthetic.py face_landmarks(seed, centre, size, integer) as float64, returned by a fake "
                         "get_landmarks inside the official detectors.FAN.run",
            "testdata": "TestData(detector, [png], iscrop=True, crop_size=224, scale=1.25, face_detector='fan')[0]",
            "rows": ROWS,
        },
        stubs=["face_alignment.FaceAlignment replaced by a fake returning fixed points (detectors.FAN.__init__ not run)"],
        modules=("skimage", "scipy", "cv2"),
    )
    return _common.finish(NAME, args, arrays, record)


if __name__ == "__main__":
    sys.exit(main())
