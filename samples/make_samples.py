"""Make the pack's sample media from public-domain / CC0 photos (run once; the outputs are committed).

    python samples/make_samples.py PATH/TO/shared/assets/faces

Inputs (scikit-image 0.26.0's data files, copied unchanged into the test assets):
``skimage_astronaut.png`` (Eileen Collins, NASA portrait, public domain) and ``skimage_camera.png``
("Cameraman", CC0 by Lav Varshney). Outputs, all small enough to ship:

- ``source.jpg``: the astronaut's head and shoulders, 320x320 (the identity to reenact);
- ``driving_profile.jpg``: the cameraman, head turned ~60-80 degrees (a still large-pose driver);
- ``driving.mp4``: 24 frames at 12 fps of the astronaut photo moved by a known motion (a slow
  head roll of +-12 degrees, a zoom and a sideways drift), a driving clip whose motion is exactly
  known: a self-reenactment that needs nobody's footage.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pasl.video import VideoWriter  # noqa: E402

SIZE = 320
FRAMES, FPS = 24, 12
FACE_CENTRE = (220.0, 135.0)
"""Centre of the astronaut's face in the 512x512 photo (between the eyes and the mouth)."""
CAMERAMAN_HEAD = (235.0, 150.0)
"""Where the cameraman's head is in the 512x512 photo (the sample keeps his upper body)."""


def _square(image: np.ndarray, centre: tuple[float, float], side: float) -> np.ndarray:
    """A ``SIZE`` x ``SIZE`` crop of ``side`` photo pixels around ``centre`` (area resampling)."""
    scale = SIZE / side
    matrix = np.array([[scale, 0, SIZE / 2 - scale * centre[0]], [0, scale, SIZE / 2 - scale * centre[1]]])
    return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def _frame(image: np.ndarray, t: float) -> np.ndarray:
    """Frame at phase ``t`` in [0, 1): roll, zoom and drift around the face centre."""
    angle = 12.0 * math.sin(2 * math.pi * t)
    zoom = 1.0 + 0.12 * math.sin(4 * math.pi * t)
    drift = 18.0 * math.sin(2 * math.pi * t + 1.0)
    cx, cy = FACE_CENTRE
    rotation = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
    rotation[0, 2] += drift
    moved = cv2.warpAffine(image, rotation, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return _square(moved, (cx, cy + 40.0), 400.0)


def main(assets: Path) -> None:
    astronaut = np.asarray(Image.open(assets / "photos" / "skimage_astronaut.png").convert("RGB"))
    camera = np.asarray(Image.open(assets / "photos" / "skimage_camera.png").convert("RGB"))
    Image.fromarray(_square(astronaut, (FACE_CENTRE[0], FACE_CENTRE[1] + 40.0), 300.0)).save(HERE / "source.jpg", quality=90)
    Image.fromarray(_square(camera, CAMERAMAN_HEAD, 240.0)).save(HERE / "driving_profile.jpg", quality=90)
    frames = np.stack([_frame(astronaut, i / FRAMES) for i in range(FRAMES)])
    with VideoWriter(HERE / "driving.mp4", FPS) as writer:
        writer.write(frames)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "assets" / "faces")
