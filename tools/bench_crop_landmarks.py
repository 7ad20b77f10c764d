"""What each ``crop_landmarks`` choice changes against ``redetect`` (the official second detection).

On the real videos of ``shared/assets/faces/video`` (``--frames`` frames each, spread evenly; the
first half of face_noface.mov, before its cartoon), for the dlib-hog and dlib (CNN) backends:
align the frames, then box DECA's crop from each rule's landmarks and compare with ``redetect``:

* landmarks: mean distance of the 68 crop points to redetect's, in 256-crop pixels;
* DECA box: IoU of the square DECA crops (256-crop pixels);
* FLAME codes and depth maps, from a *synthetic* DECA encoder and FLAME (``tests/pipeline_synthetic``):
  such codes are no real face's, so their differences only show how far the crop moved the
  input, not what a real DECA would read; the box and landmark columns are the meaningful part;
* seconds per frame of the landmark pass alone (this machine, whatever else runs on it).

Usage: python tools/bench_crop_landmarks.py [--frames 6] [--backends dlib-hog dlib] [--json out.json]
(prints one JSON line per backend, video and rule, then a Markdown summary: the README table).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tools")]

from dlib_box_pairs import video_frames  # noqa: E402

from pasl.align import align_faces, make_detector  # noqa: E402
from pasl.align.detect import box_iou  # noqa: E402
from pasl.csg.crop import DECA_CROP_SIZE, deca_crop, deca_crop_transform  # noqa: E402
from pasl.geometry import ALIGNED_SIZE  # noqa: E402
from pasl.shape import CROP_LANDMARKS, ShapeCodes, _deca_landmarks, render_conditioning  # noqa: E402

RULES = ("redetect", "mapped", "refit")


def deca_box(tform: torch.Tensor) -> torch.Tensor:
    """DECA's square crop ``(B, 4)`` in 256-crop pixels: the 224 crop's corners sent back through ``tform``."""
    inverse = torch.linalg.inv(tform.double())
    corners = torch.tensor([[0.0, 0.0, 1.0], [DECA_CROP_SIZE, DECA_CROP_SIZE, 1.0]], dtype=torch.float64)
    back = torch.einsum("bij,kj->bki", inverse, corners)[..., :2]
    return torch.cat([back[:, 0], back[:, 1]], dim=1)


def measure(models, detector, frames: list[np.ndarray]) -> dict:
    alignment = align_faces(frames, detector=detector, smoothing=0.0, require_face=False)
    crops, mapped, has_face = alignment.crops, alignment.landmarks_crop, alignment.has_face
    out = {}
    for rule in RULES:
        start = time.perf_counter()
        landmarks, found = _deca_landmarks(rule, detector, crops, mapped, has_face)
        seconds = (time.perf_counter() - start) / len(frames)
        with torch.inference_mode():
            tform = deca_crop_transform(landmarks, face_found=found, image_size=(ALIGNED_SIZE, ALIGNED_SIZE))
            codes = models.shape_encoder(deca_crop(crops.float(), tform)).to(torch.float32)
            shapes = ShapeCodes(codes, tform.float(), has_face)
            depth, _ = render_conditioning(models.flame, models.faces, shapes)
        out[rule] = dict(landmarks=landmarks, found=found, box=deca_box(tform), codes=codes, depth=depth, seconds=seconds)
    return out


def compare(results: dict) -> dict:
    reference = results["redetect"]
    rows = {}
    for rule in RULES:
        mine = results[rule]
        both = mine["found"] & reference["found"]
        row = {"s_per_frame": round(mine["seconds"], 4), "frames": int(both.sum())}
        if both.any():
            points = (mine["landmarks"][both] - reference["landmarks"][both]).norm(dim=-1).mean(-1)
            iou = box_iou(mine["box"][both], reference["box"][both]).diagonal()
            rows_both = both.nonzero().flatten()
            codes_a, codes_b = mine["codes"].select(rows_both), reference["codes"].select(rows_both)
            row.update(
                landmark_px_mean=round(float(points.mean()), 2), landmark_px_max=round(float(points.max()), 2),
                box_iou_mean=round(float(iou.mean()), 4), box_iou_min=round(float(iou.min()), 4),
                pose_abs=round(float((codes_a.pose - codes_b.pose).abs().max()), 5),
                exp_abs=round(float((codes_a.exp - codes_b.exp).abs().max()), 5),
                cam_abs=round(float((codes_a.cam - codes_b.cam).abs().max()), 5),
                depth_abs_mean=round(float((mine["depth"][rows_both] - reference["depth"][rows_both]).abs().mean()), 5),
            )
        rows[rule] = row
    return rows


def summary(table: list[dict]) -> str:
    """Markdown: per backend and rule, over all videos (frame-weighted means; worst frame for min/max)."""
    lines = ["| backend | rule | frames | landmarks vs redetect, px mean / max | DECA box IoU mean / min | "
             "synthetic codes max abs pose / exp / cam | depth map mean abs | s/frame |", "|---" * 8 + "|"]
    for backend in dict.fromkeys(r["backend"] for r in table):
        for rule in RULES:
            rows = [r for r in table if r["backend"] == backend and r["rule"] == rule and r["frames"]]
            n = sum(r["frames"] for r in rows)
            mean = lambda key, rows=rows, n=n: sum(r[key] * r["frames"] for r in rows) / n  # noqa: E731
            worst = lambda key, f, rows=rows: f(r[key] for r in rows)  # noqa: E731
            lines.append(f"| {backend} | {rule} | {n} | {mean('landmark_px_mean'):.2f} / {worst('landmark_px_max', max):.2f} | "
                         f"{mean('box_iou_mean'):.3f} / {worst('box_iou_min', min):.3f} | "
                         f"{worst('pose_abs', max):.1e} / {worst('exp_abs', max):.1e} / {worst('cam_abs', max):.1e} | "
                         f"{mean('depth_abs_mean'):.4f} | {mean('s_per_frame'):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default=str(ROOT.parent / "shared" / "assets" / "faces"))
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--backends", nargs="+", default=["dlib-hog", "dlib"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from pasl.models import load_models
    from pipeline_synthetic import weights_folder

    assert set(RULES) == set(CROP_LANDMARKS)
    torch.set_grad_enabled(False)
    models = load_models([weights_folder(Path(tempfile.mkdtemp(prefix="pasl_bench_crop_")))])
    videos = sorted((Path(args.assets) / "video").iterdir())
    clips = {v.name: [f for _, f in video_frames(v, args.frames)] for v in videos}
    table = []
    for backend in args.backends:
        detector = make_detector(backend)
        for name, frames in clips.items():
            rows = compare(measure(models, detector, frames))
            for rule, row in rows.items():
                table.append({"backend": backend, "video": name, "rule": rule, **row})
                print(json.dumps(table[-1]), flush=True)
    print(summary(table))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
