"""``python -m pasl.bench gpu-check``: one prepared script for a machine with a GPU.

Two questions in a few minutes, on synthetic weights (or the real files when all are found):

1. How far is each stage on ``--device`` in ``--precision`` from the CPU in float32? The
   same aligned crops go through DECA (codes), FLAME (vertices), the map renderer (depth
   and landmark maps) and the generator (faces) on both, each stage fed the CPU's float32
   output of the stage before it, so every error is that stage's own.
2. How fast is the whole pipeline there at batch 1, 8 and 32 (frames per call), against the
   generator alone on the same maps, and how much GPU memory does it take?

``--device cpu`` runs the same steps on the CPU (the test suite's smoke run, and a bf16 check).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max()) if a.numel() else 0.0


def _frames(video: Path, count: int) -> torch.Tensor:
    from ..video import read_video

    return torch.from_numpy(read_video(video, count=count)).permute(0, 3, 1, 2).float().div(255)


def stage_errors(reference, models, crops: torch.Tensor, landmarks_crop: torch.Tensor, has_face: torch.Tensor) -> dict:
    """Per-stage difference of ``models`` (any device, dtype) from ``reference`` (CPU, float32)."""
    from ..generate import generate_faces
    from ..shape import render_conditioning, shape_codes
    from .pipeline import face_error

    device = models.device
    with torch.inference_mode():
        ref_shape = shape_codes(reference.shape_encoder, crops, landmarks_crop, has_face, crop_landmarks="mapped")
        dev_shape = shape_codes(models.shape_encoder, crops.to(device), landmarks_crop, has_face, crop_landmarks="mapped")
        codes = {"deca_codes_max_abs": _max_abs(dev_shape.codes.to_vector(), ref_shape.codes.to_vector())}
        c = ref_shape.codes
        ref_flame = reference.flame(c.shape, c.exp, c.pose)
        dev_flame = models.flame(c.shape.to(device), c.exp.to(device), c.pose.to(device))
        codes["flame_vertices_max_abs"] = _max_abs(dev_flame.vertices, ref_flame.vertices)
        ref_depth, ref_landmarks = render_conditioning(reference.flame, reference.faces, ref_shape)
        moved = type(ref_shape)(ref_shape.codes.to(device), ref_shape.tform.to(device), ref_shape.has_face)
        dev_depth, dev_landmarks = render_conditioning(models.flame, models.faces, moved)
        for name, dev, ref in (("depth", dev_depth, ref_depth), ("landmarks", dev_landmarks, ref_landmarks)):
            diff = (dev.float().cpu() - ref).abs()
            codes[f"{name}_map_max_abs"] = float(diff.max())
            codes[f"{name}_map_pixels_differing"] = float((diff.amax(1) > 0).float().mean())
        ref_style = reference.aeg.style_encoder(reference_crop := crops[:1])
        dev_style = models.aeg.style_encoder(reference_crop.to(device, models.dtype))
        codes["style_max_abs"] = _max_abs(dev_style, ref_style)
        ref_faces = generate_faces(reference.aeg.generator, ref_style, ref_depth, ref_landmarks, has_face)
        dev_faces = generate_faces(models.aeg.generator, ref_style, ref_depth, ref_landmarks, has_face, out_device="cpu")
    codes.update({f"faces_{k}": v for k, v in face_error(dev_faces, ref_faces).items()})
    return codes


def speed_rows(models, detector, frames: torch.Tensor, batches: list[int], crop_landmarks: str = "mapped") -> list[dict]:
    """End-to-end and generator-only frames/s at each batch (chunk = batch = B frames per call)."""
    from ..pipeline import ReenactOptions, Reenactor
    from .pipeline import _sync, generator_only_ms

    device = models.device
    rows = []
    for batch in batches:
        reenactor = Reenactor(models, detector, ReenactOptions(batch_size=batch, crop_landmarks=crop_landmarks))
        source = reenactor.encode_source(frames[0])
        reenactor.reenact(source, frames[:batch])  # warm-up at this batch size
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        chunks = []
        _sync(device)
        start = time.perf_counter()
        for chunk in reenactor.reenact_stream(source, frames.split(batch)):
            chunks.append(chunk)
        _sync(device)
        seconds = time.perf_counter() - start
        gen_ms, _ = generator_only_ms(models.aeg.generator, source.style, chunks, batch, device)
        row = {"batch": batch, "frames": frames.shape[0], "end_to_end_fps": frames.shape[0] / seconds,
               "generator_only_fps": 1000.0 / gen_ms, "end_to_end_vs_generator": seconds * 1000.0 / frames.shape[0] / gen_ms}
        if device.type == "cuda":
            row["peak_vram_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        rows.append(row)
    return rows


def gpu_check(args: argparse.Namespace) -> dict:
    from ..align import align_faces
    from . import common as bench
    from .models import bench_models
    from .pipeline import make_bench_detector

    device = torch.device(args.device)
    precision = args.precision or ("fp16" if device.type == "cuda" else "bf16")
    dtype = bench.DTYPES[precision]
    synthetic = True if args.synthetic else None
    reference, which = bench_models(args.weights_dir, "cpu", torch.float32, synthetic=synthetic)
    models, _ = bench_models(args.weights_dir, device, dtype, synthetic=synthetic)
    detector = make_bench_detector(args.backend, args.weights_dir, device)
    frames = _frames(Path(args.video), args.frames)
    alignment = align_faces(frames[: args.error_frames], detector=detector, require_face=False)
    errors = stage_errors(reference, models, alignment.crops, alignment.landmarks_crop, alignment.has_face)
    errors["frames"] = int(alignment.has_face.sum())
    rows = speed_rows(models, detector, frames, [b for b in args.batches if b <= frames.shape[0]], args.crop_landmarks)
    result = bench._result("gpu-check", args, device, rows, weights=which, precision=precision, backend=detector.name,
                           crop_landmarks=args.crop_landmarks,
                           video=str(args.video), errors_vs_cpu_fp32=errors)
    result["dtype"] = precision
    if device.type == "cuda":
        result["peak_vram_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def print_gpu_check(result: dict) -> None:
    print(f"# gpu-check on {result['device']} ({result['device_name']}), {result['precision']} vs CPU float32; {result['weights']}; "
          f"backend {result['backend']}, crop landmarks {result['crop_landmarks']}")
    for key, value in result["errors_vs_cpu_fp32"].items():
        print(f"{key:>32}: {value:.6g}" if isinstance(value, float) else f"{key:>32}: {value}")
    print(f"{'batch':>6} | {'end-to-end fps':>14} | {'generator fps':>13} | {'ratio':>6} | {'peak VRAM MB':>12}")
    for row in result["rows"]:
        vram = f"{row['peak_vram_mb']:>12.0f}" if "peak_vram_mb" in row else f"{'':>12}"
        print(f"{row['batch']:>6} | {row['end_to_end_fps']:>14.3f} | {row['generator_only_fps']:>13.3f} | "
              f"{row['end_to_end_vs_generator']:>6.2f} | {vram}")
    print(f"peak memory: {result['peak_memory_mb']:.0f} MB")


def add_parser(commands) -> None:
    default_video = Path(__file__).resolve().parents[3] / "shared" / "assets" / "faces" / "video" / "pyfeat_single_face.mp4"
    parser = commands.add_parser("gpu-check", help="per-stage error vs CPU float32, pipeline fps at batch 1/8/32, peak VRAM")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], help="default fp16 on CUDA, bf16 on the CPU")
    parser.add_argument("--video", default=str(default_video), help="driving video (default: ../shared's pyfeat_single_face.mp4)")
    parser.add_argument("--frames", type=int, default=32, help="frames of the speed runs")
    parser.add_argument("--error-frames", type=int, default=4, help="frames of the error comparison")
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--backend", choices=["auto", "fan", "dlib", "dlib-hog"], default="auto")
    parser.add_argument("--crop-landmarks", choices=["redetect", "mapped", "refit"], default="mapped",
                        help="DECA's crop box in the speed runs (default mapped: no second detection)")
    parser.add_argument("--weights-dir", action="append", default=[],
                        help="weight folder(s); FLAME or head_template.obj + landmark_embedding.npy are needed")
    parser.add_argument("--synthetic", action="store_true", help="synthetic AEG and DECA even when the real files are found")
    parser.add_argument("--json", help="also write the JSON result to this file")
    parser.set_defaults(run=gpu_check, table=print_gpu_check, repeat=1)
