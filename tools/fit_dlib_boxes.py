"""Fit how dlib's CNN (MMOD) boxes and a face's 68 points relate to dlib's HOG box.

dlib's 68-point shape predictor was trained on HOG-detector boxes; the CNN detector's boxes are
smaller and sit lower on the face, so the predictor run in a CNN box starts from the wrong
scale and position (on the three-quarter photo it fails outright). This script fits, on real
faces where both detectors fire (``tools/dlib_box_pairs.py`` output):

* CNN box -> HOG box: ``centre_hog = centre_cnn + (dx, dy) * side_cnn``, ``side_hog = s * side_cnn``
  (both detectors give square boxes);
* 68 points -> HOG box: ``centre_hog = centre_pts + (ax + g * nose_x, ay) * size_pts``,
  ``side_hog = k * size_pts`` with ``size_pts`` the mean of the points' bounding-box width and
  height and ``nose_x`` the nose tip's (point 30) offset from the box centre over ``size_pts``
  (the HOG box of a turned head sits toward the side the nose points to), fitted on the
  predictor's points in the HOG box itself.

Medians of per-face ratios (robust to the few faces where the detectors disagree; ``ax, g`` by
least squares), with the
IoU of fitted to real HOG boxes on the fitting faces and, fitted on the photos alone, on the
video frames. The constants go to ``pasl/align/detect.py`` (``DLIB_CNN_TO_HOG``, ``DLIB_HOG_FROM_POINTS``).

Usage: python tools/fit_dlib_boxes.py /tmp/dlib_pairs.json
"""

from __future__ import annotations

import json
import sys

import numpy as np


def centre_side(box) -> tuple[np.ndarray, float]:
    box = np.asarray(box[:4], dtype=np.float64)
    return (box[:2] + box[2:]) / 2, float(((box[2] - box[0]) + (box[3] - box[1])) / 2)


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def square(centre, side) -> list[float]:
    return [centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2]


def pairs(records) -> list[dict]:
    """One entry per HOG face with the CNN box that overlaps it most (IoU > 0.3)."""
    out = []
    for rec in records:
        for hog, points in zip(rec["hog"], rec["hog_landmarks"]):
            if hog[4] < 0.3:  # the weak HOG hits are the known false positives (mission patch, hand)
                continue
            best = max(rec["cnn"], key=lambda c: iou(hog, c), default=None)
            if best is not None and iou(hog, best) > 0.3:
                out.append({"name": rec["name"], "hog": hog[:4], "cnn": best[:4], "points": np.asarray(points)})
    return out


def fit(entries) -> dict:
    cnn_rel, pts_rel, nose = [], [], []
    for e in entries:
        (hc, hs), (cc, cs) = centre_side(e["hog"]), centre_side(e["cnn"])
        lo, hi = e["points"].min(0), e["points"].max(0)
        pc, ps = (lo + hi) / 2, float(((hi - lo)).mean())
        cnn_rel.append([*(hc - cc) / cs, hs / cs])
        pts_rel.append([*(hc - pc) / ps, hs / ps])
        nose.append((e["points"][30, 0] - pc[0]) / ps)
    pts_rel = np.asarray(pts_rel)
    (ax, gain), *_ = np.linalg.lstsq(np.stack([np.ones(len(nose)), nose], 1), pts_rel[:, 0], rcond=None)
    cnn_rel, (_, ay, k) = np.median(cnn_rel, 0), np.median(pts_rel, 0)
    return {"cnn_to_hog": [round(float(v), 4) for v in cnn_rel], "hog_from_points": [round(float(v), 4) for v in (ax, gain, ay, k)]}


def apply(constants, entries) -> dict:
    dx, dy, s = constants["cnn_to_hog"]
    ax, gain, ay, k = constants["hog_from_points"]
    from_cnn, from_points, raw = [], [], []
    for e in entries:
        cc, cs = centre_side(e["cnn"])
        from_cnn.append(iou(square(cc + np.array([dx, dy]) * cs, s * cs), e["hog"]))
        lo, hi = e["points"].min(0), e["points"].max(0)
        ps = float((hi - lo).mean())
        nose = (e["points"][30, 0] - (lo[0] + hi[0]) / 2) / ps
        from_points.append(iou(square((lo + hi) / 2 + np.array([ax + gain * nose, ay]) * ps, k * ps), e["hog"]))
        raw.append(iou(e["cnn"], e["hog"]))
    stats = lambda v: {"median": round(float(np.median(v)), 3), "min": round(float(np.min(v)), 3)}  # noqa: E731
    return {"faces": len(entries), "iou_cnn_raw": stats(raw), "iou_cnn_mapped": stats(from_cnn), "iou_points_mapped": stats(from_points)}


def main() -> None:
    records = json.loads(open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dlib_pairs.json").read())
    entries = pairs(records)
    constants = fit(entries)
    photos = [e for e in entries if not e["name"].startswith("video/")]
    videos = [e for e in entries if e["name"].startswith("video/")]
    held_out = fit(photos)
    print(json.dumps({"constants": constants, "all_faces": apply(constants, entries),
                      "fitted_on_photos": held_out, "photo_fit_on_video_frames": apply(held_out, videos)}, indent=1))


if __name__ == "__main__":
    main()
