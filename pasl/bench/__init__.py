"""Benchmarks: ``python -m pasl.bench aeg [options]`` prints a table, then JSON.

Speed is measured here, never in unit tests. Each row is the median of ``--repeat`` timed
runs after one warm-up, in milliseconds per frame. With ``--official-file`` the authors'
``core/model_lm_talking.py`` (from a checkout you provide; never shipped) runs the same
weights and inputs in the same process, so the ratio column compares like with like.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .common import DTYPES, _flame_for_bench, _result

__all__ = ["DTYPES", "_flame_for_bench", "align_rows", "build_parser", "main", "print_table", "time_ms"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median wall time of ``fn`` in ms, after one warm-up call."""
    fn()
    _sync(device)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def _load_official(path: Path):
    """Import the official model file without its unused heavy imports (fastai, FAN, VGG)."""
    source = path.read_text()
    kept = [line for line in source.splitlines() if not line.startswith(("from fastai", "from core.", "from munch", "import torchvision"))]
    spec = importlib.util.spec_from_loader("official_model_lm_talking", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile("\n".join(kept), str(path), "exec"), module.__dict__)
    return module


def bench_aeg(args: argparse.Namespace) -> dict:
    from ..aeg import AEG
    from ..aeg_files import load_aeg

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if args.weights:
        ours = load_aeg(args.weights, device=device, dtype=dtype)
    else:
        ours = AEG().to(device=device, dtype=dtype).eval().requires_grad_(False)
    implementations = {"pasl": (ours.style_encoder, ours.generator)}
    if args.official_file:
        official = _load_official(Path(args.official_file))
        generator = official.Generator(256, 128, w_hpf=1)
        encoder = official.StyleEncoder(256, 128, 2, ours.style_encoder.self_attention)
        generator.load_state_dict(ours.generator.state_dict())
        encoder.load_state_dict(ours.style_encoder.state_dict())
        implementations["official"] = (encoder.to(device, dtype).eval(), generator.to(device, dtype).eval())

    rows = []
    for batch in args.batches:
        image = torch.rand(batch, 3, 256, 256, device=device, dtype=dtype)
        for name, (encoder, generator) in implementations.items():
            with torch.inference_mode():
                style = encoder(image)
                encode_ms = time_ms(lambda: encoder(image), device, args.repeat) / batch
                generate_ms = time_ms(lambda: generator(image, image, style), device, args.repeat) / batch
            rows.append({"impl": name, "batch": batch, "encode_ms_per_frame": encode_ms, "generate_ms_per_frame": generate_ms})
    if "official" in implementations:
        by_key = {(r["impl"], r["batch"]): r for r in rows}
        for row in rows:
            base = by_key[("official", row["batch"])]
            row["encode_vs_official"] = row["encode_ms_per_frame"] / base["encode_ms_per_frame"]
            row["generate_vs_official"] = row["generate_ms_per_frame"] / base["generate_ms_per_frame"]
    return _result("aeg", args, device, rows)


def bench_render(args: argparse.Namespace) -> dict:
    """FLAME + depth + landmark maps (the official recipe), ms per frame; pytorch3d as baseline when installed."""
    from ..csg.codes import FlameCodes
    from ..raster import RasterSettings
    from ..render import conditioning_maps, crop_to_image, orthographic_project

    device = torch.device(args.device)
    flame, faces, which = _flame_for_bench(args.weights_dir)
    flame, faces = flame.to(device), faces.to(device)
    backends = ["torch"] + (["pytorch3d"] if importlib.util.find_spec("pytorch3d") else [])
    rows = []
    for batch in args.batches:
        vector = torch.zeros(batch, 236, device=device)
        vector[:, 206] = 8.0
        vector[:, 201] = torch.linspace(-1.2, 1.2, batch)  # yaws up to ~70 degrees
        codes = FlameCodes.from_vector(vector)
        tform = torch.eye(3, device=device).expand(batch, 3, 3) * torch.tensor([224 / 256, 224 / 256, 1.0], device=device)[:, None]

        def run(backend: str):
            out = flame(codes.shape, codes.exp, codes.pose)
            verts = crop_to_image(orthographic_project(out.vertices, codes.cam), tform)
            lmk = crop_to_image(orthographic_project(out.landmarks2d, codes.cam)[..., :2], tform)
            return conditioning_maps(verts, lmk, faces, settings=RasterSettings(backend=backend))

        for backend in backends:
            with torch.inference_mode():
                ms = time_ms(lambda: run(backend), device, args.repeat) / batch
            rows.append({"impl": f"pasl ({backend} rasteriser)", "batch": batch, "ms_per_frame": ms})
    return _result("render", args, device, rows, flame=which)


def bench_align(args: argparse.Namespace) -> dict:
    """Detection + 68 landmarks per backend, and the crop warp, ms per frame on a video's first frames."""
    from ..align import read_video

    frames = read_video(args.video, count=args.frames)
    rows = align_rows(frames, tuple(args.backends.split(",")), repeat=args.repeat, weights_dir=args.weights_dir or None)
    return _result("align", args, torch.device("cpu"), rows, video=str(args.video))


def _crop_pass_row(detector, frames: list[torch.Tensor], repeat: int) -> dict:
    """Cost of DECA's second landmark pass on the aligned 256 crops (``crop_landmarks="redetect"``)."""
    from ..align import align_faces
    from ..shape import detect_crop_landmarks

    crops = align_faces(frames, detector=detector, require_face=False).crops
    samples = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        _, found = detect_crop_landmarks(detector, crops)
        samples.append((time.perf_counter() - start) * 1000.0 / len(frames))
    return {
        "stage": "crop landmarks (DECA pass)",
        "backend": detector.name,
        "frames": len(frames),
        "size": "256x256",
        "ms_per_frame": statistics.median(samples),
        "faces_found": int(found.sum()),
    }


def align_rows(
    frames: Any, backends: tuple[str, ...] = ("dlib-hog", "dlib", "fan"), repeat: int = 1, weights_dir=None, **options
) -> list[dict]:
    """Milliseconds per frame of detection + landmarks per backend, and of the crop warp.

    Args:
        frames: a video path (every frame read, so pass a short clip) or frames in any
            layout :func:`align_faces` accepts.
        backends: detector names; one that cannot run here gives a row with ``skipped``.
        repeat: timed passes over all frames (the median is reported), after the detector
            is built (load time is reported separately).
        options: passed to :func:`make_detector` (e.g. ``max_side``, ``device``).

    Returns:
        Rows ``{"stage", "backend", "frames", "size", "ms_per_frame", "load_s", "faces_found"}``;
        each backend also has a ``"crop landmarks (DECA pass)"`` row (its second pass on the
        aligned crops); the warp rows have stage ``"crop"`` and backend ``"torch"`` / ``"cv2"``.
    """
    from ..align import (
        WARPS,
        BackendUnavailableError,
        alignment_transform,
        crop_frames,
        letterbox_transform,
        make_detector,
        read_video,
        to_frames,
    )
    from ..imageops import to_uint8_hwc

    if isinstance(frames, (str, Path)):
        frames = read_video(frames)
    frame_list = to_frames(frames)
    images = [to_uint8_hwc(f) for f in frame_list]
    size = f"{images[0].shape[1]}x{images[0].shape[0]}"
    rows: list[dict] = []
    found_faces: list = []
    for name in backends:
        try:
            start = time.perf_counter()
            detector = make_detector(name, weights_dir, **options)
            load_s = time.perf_counter() - start
        except (BackendUnavailableError, FileNotFoundError) as err:
            rows.append({"stage": "detect+landmarks", "backend": name, "skipped": str(err).split(". ")[0]})
            continue
        samples, found = [], 0
        for _ in range(max(1, repeat)):
            start = time.perf_counter()
            results = [detector.detect(image) for image in images]
            samples.append((time.perf_counter() - start) * 1000.0 / len(images))
            found = sum(1 for faces in results if faces)
            found_faces = found_faces or [faces[0] for faces in results if faces]
        rows.append(
            {
                "stage": "detect+landmarks",
                "backend": name,
                "frames": len(images),
                "size": size,
                "ms_per_frame": statistics.median(samples),
                "load_s": load_s,
                "faces_found": found,
            }
        )
        rows.append(_crop_pass_row(detector, frame_list, repeat))
    matrices = (
        alignment_transform(torch.stack([f.landmarks for f in found_faces[:1]] * len(images)))
        if found_faces
        else torch.stack([letterbox_transform(*images[0].shape[:2])] * len(images))
    )
    for warp in WARPS:
        try:
            samples = []
            for _ in range(max(1, repeat)):
                start = time.perf_counter()
                crop_frames(frame_list, matrices, warp)
                samples.append((time.perf_counter() - start) * 1000.0 / len(images))
        except ImportError as err:
            rows.append({"stage": "crop", "backend": warp, "skipped": str(err)})
            continue
        rows.append({"stage": "crop", "backend": warp, "frames": len(images), "size": size, "ms_per_frame": statistics.median(samples)})
    return rows


def print_table(result: dict) -> None:
    print(
        f"# {result['benchmark']} on {result['device']} ({result['device_name']}), {result['dtype']}, torch {result['torch']}, "
        f"{result['threads']} threads, median of {result['repeat']}"
    )
    columns = list(dict.fromkeys(key for row in result["rows"] for key in row))
    print(" | ".join(f"{c:>22}" for c in columns))
    for row in result["rows"]:
        cells = (row.get(c, "") for c in columns)
        print(" | ".join(f"{v:>22.2f}" if isinstance(v, float) else f"{v!s:>22}" for v in cells))
    print(f"peak memory: {result['peak_memory_mb']:.0f} MB")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pasl.bench", description="PASL benchmarks (table + JSON).")
    commands = parser.add_subparsers(dest="command", required=True)
    aeg = commands.add_parser("aeg", help="style encoding and generation, ms per frame")
    aeg.add_argument("--device", default="cpu")
    aeg.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    aeg.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    aeg.add_argument("--repeat", type=int, default=3)
    aeg.add_argument("--weights", help="an AEG checkpoint (default: random weights, same speed)")
    aeg.add_argument("--official-file", help="core/model_lm_talking.py of an AvLab-CV/PASL checkout: time it as the baseline")
    aeg.add_argument("--json", help="also write the JSON result to this file")
    aeg.set_defaults(run=bench_aeg)

    render = commands.add_parser("render", help="FLAME + depth + landmark maps, ms per frame (pytorch3d too when installed)")
    render.add_argument("--device", default="cpu")
    render.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    render.add_argument("--repeat", type=int, default=3)
    render.add_argument("--weights-dir", action="append", default=[], help="folder with FLAME / head_template.obj / landmark_embedding.npy")
    render.add_argument("--json", help="also write the JSON result to this file")
    render.set_defaults(run=bench_render)

    align = commands.add_parser("align", help="face detection + landmarks per backend, and the crop, ms per frame")
    align.add_argument("video", help="a video whose first frames are used")
    align.add_argument("--frames", type=int, default=10)
    align.add_argument("--backends", default="dlib-hog,dlib,fan")
    align.add_argument("--repeat", type=int, default=1)
    align.add_argument("--weights-dir", action="append", default=[], help="folder with the FAN files (face_alignment/)")
    align.add_argument("--json", help="also write the JSON result to this file")
    align.set_defaults(run=bench_align)

    from .gpu_check import add_parser as add_gpu_check
    from .pipeline import add_parser as add_pipeline
    from .train import add_parser as add_train

    add_pipeline(commands)
    add_gpu_check(commands)
    add_train(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.run(args)
    getattr(args, "table", print_table)(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
