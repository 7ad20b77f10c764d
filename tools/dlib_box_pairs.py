"""Collect dlib HOG and CNN (MMOD) detections on the real faces of ``shared/assets/faces``.

Writes one JSON with, per image or video frame, every HOG box (upsample 1, threshold 0), every
CNN box (upsample 1 so the small faces of the multi-face photos are found too) and the shape
predictor's 68 points in each HOG box. ``tools/fit_dlib_boxes.py`` fits the CNN -> HOG box
mapping on the pairs; ``pasl.bench_crop_landmarks`` reads the video frames the same way.

Usage: python tools/dlib_box_pairs.py [--assets ../shared/assets/faces] [--out /tmp/dlib_pairs.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VIDEO_FRAMES = 8
"""Frames taken from each video, evenly spread over its length."""


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def video_frames(path: Path, count: int = VIDEO_FRAMES) -> list[tuple[int, np.ndarray]]:
    """``count`` frames spread evenly over the first 3 s of faces (face_noface) or the whole clip."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    usable = len(frames) // 2 if "noface" in path.name else len(frames)  # its second half is a cartoon
    picks = np.linspace(0, usable - 1, count + 2)[1:-1].round().astype(int)
    return [(int(i), frames[i]) for i in picks]


def real_faces(assets: Path) -> list[tuple[str, np.ndarray]]:
    """``(name, image)`` of every photo, multi-face photo and sampled video frame."""
    items = [(f"{p.parent.name}/{p.name}", read_image(p)) for folder in ("photos", "multi")
             for p in sorted((assets / folder).iterdir())]
    for video in sorted((assets / "video").iterdir()):
        items += [(f"video/{video.name}#{i}", frame) for i, frame in video_frames(video)]
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default=str(Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces"))
    parser.add_argument("--out", default="/tmp/dlib_pairs.json")
    args = parser.parse_args()
    from pasl.align.detect import DlibDetector

    hog, cnn = DlibDetector("hog", upsample=1), DlibDetector("cnn")
    records = []
    for name, image in real_faces(Path(args.assets)):
        hog_boxes = hog._boxes(image)
        cnn_boxes = cnn._boxes(image)
        points = hog.landmarks_in_boxes(image, np.array([b for b, _ in hog_boxes]).reshape(-1, 4)) if hog_boxes else []
        records.append({"name": name, "size": list(image.shape[:2]),
                        "hog": [b + [s] for b, s in hog_boxes], "cnn": [b + [s] for b, s in cnn_boxes],
                        "hog_landmarks": [p.tolist() for p in points]})
        print(name, len(hog_boxes), len(cnn_boxes), flush=True)
    Path(args.out).write_text(json.dumps(records))


if __name__ == "__main__":
    main()
