"""How the README's face-tracking numbers were measured: the alignment stage with and without tracking.

For each video: ``align_faces`` in chunks of 16 frames, once detecting every frame and once with a
:class:`pasl.align.FaceTracker` (``detect_every`` 25), both timed in the same process, one after the other;
then how far the tracked landmarks are from the per-frame ones, and the jitter of each (mean second
difference of the landmarks in crop pixels, :func:`pasl.align.smooth.jitter`) without smoothing and with
the default smoothing (strength 1: one smoother over the clip vs one per track)::

    python docs/measure_tracking.py --backend dlib --frames 100 ../shared/assets/faces/video/*.mp4

"detections" counts the tracker's detector runs, "windows" those that searched only around the tracked
faces (:meth:`pasl.align.detect.Detector.detect_near`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pasl.align import FaceAlignment, FaceTracker, TemporalSmoother, align_faces, make_detector  # noqa: E402
from pasl.align.smooth import jitter  # noqa: E402
from pasl.video import probe, read_video  # noqa: E402

CHUNK = 16


def run(frames, fps: float, detector, tracker: FaceTracker | None) -> tuple[FaceAlignment, float]:
    start = time.perf_counter()
    parts = []
    for s in range(0, len(frames), CHUNK):
        if tracker is None:
            parts.append(align_faces(frames[s : s + CHUNK], detector=detector, require_face=False))
        else:
            parts.append(align_faces(frames[s : s + CHUNK], tracker=tracker, require_face=False))
    return FaceAlignment.cat(parts), (time.perf_counter() - start) * 1000 / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--backend", default="dlib-hog")
    parser.add_argument("--frames", type=int, default=None, help="first N frames of each video")
    parser.add_argument("--detect-every", type=int, default=25)
    args = parser.parse_args()
    detector = make_detector(args.backend)
    print(f"# {args.backend}, detect_every {args.detect_every}, chunks of {CHUNK}, {torch.get_num_threads()} threads")
    print("| video | frames | faces (every / tracked) | every frame ms/frame | tracked ms/frame | speed-up | detections "
          "| landmark distance mean / p95 px | jitter raw every / tracked | jitter smoothed every / tracked |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.videos:
        fps = float(probe(path).fps)
        frames = read_video(path, count=args.frames)
        every, every_ms = run(frames, fps, detector, None)
        tracker = FaceTracker(detector, args.detect_every, fps=fps)
        tracked, tracked_ms = run(frames, fps, detector, tracker)
        both = every.has_face & tracked.has_face
        distance = (every.landmarks[both] - tracked.landmarks[both]).norm(dim=-1)
        smoothed_points, smoothed_matrices = TemporalSmoother(strength=1.0, fps=fps)(every.landmarks, every.has_face)
        smoothed, _ = run(frames, fps, detector, FaceTracker(detector, args.detect_every, smoothing=1.0, fps=fps))
        print(
            f"| {Path(path).name} | {len(frames)} | {int(every.has_face.sum())} / {int(tracked.has_face.sum())} "
            f"| {every_ms:.0f} | {tracked_ms:.0f} | {every_ms / tracked_ms:.1f}x | {tracker.stats.detections} "
            f"(windows {len(tracker.stats.window_frames)}, cuts {tracker.stats.cuts or '-'}) "
            f"| {float(distance.mean()):.2f} / {float(distance.flatten().quantile(0.95)):.2f} "
            f"| {jitter(every.landmarks, every.crop_from_frame):.3f} / {jitter(tracked.landmarks, tracked.crop_from_frame):.3f} "
            f"| {jitter(smoothed_points, smoothed_matrices):.3f} / {jitter(smoothed.landmarks, smoothed.crop_from_frame):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
