"""``python -m pasl.bench pipeline``: where the time of a whole reenactment goes.

One process, one set of models: a photo (source and driver one image, models already
loaded) and the first ``--frames`` frames of a video go through :class:`pasl.pipeline.Reenactor`
with a :class:`pasl.timing.StageTimer`, decoding and encoding included (in background threads as the
CLI does, ``--io background``, or in the loop, ``--io inline``). The generator alone
(:func:`pasl.generate.generate_faces` on the very maps of the run, same batch size) is timed
after it, so ``end_to_end / generator`` says how far the whole path is from the speed of
its generator. The official demo's path (preset ``official-demo``, one frame per call) runs
the same frames as a last row. With ``--precision`` other than fp32 the generated faces are
compared with float32 ones on the same maps, and the ways of running that precision are timed.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

STAGES = ("decode", "align", "crop_landmarks", "shape", "recompose", "render", "generate", "paste", "encode")
"""Stage names in pipeline order (``shape``: DECA's crop and ``E_flame`` without the crop-landmark pass)."""
STAGE_WORDS = {
    "decode": "decode", "align": "align/detect", "crop_landmarks": "crop-landmark pass", "shape": "DECA / E_flame",
    "recompose": "recompose", "render": "render maps", "generate": "generator", "paste": "paste-back", "encode": "encode",
    "style": "style encoder", "identity": "identity", "other": "other (copies, checks)",
}


class _TimedCalls:
    """Every method call on ``inner`` charged to one stage (the crop-landmark detector)."""

    def __init__(self, inner: Any, timer, stage: str):
        self._inner, self._timer, self._stage = inner, timer, stage

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def timed(*args, **kwargs):
            with self._timer(self._stage):
                return value(*args, **kwargs)

        return timed


class TimedDetector:
    """A detector whose second pass (DECA's landmarks on the crop) is its own stage; all else delegated."""

    def __init__(self, detector: Any, timer):
        self._inner, self._timer = detector, timer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def for_crop_landmarks(self):
        return _TimedCalls(self._inner.for_crop_landmarks(), self._timer, "crop_landmarks")


def _timed_iter(items: Iterator[Any], timer, stage: str) -> Iterator[Any]:
    while True:
        with timer(stage):
            item = next(items, None)
        if item is None:
            return
        yield item


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def face_error(faces: torch.Tensor, reference: torch.Tensor) -> dict:
    """Max and mean absolute difference and PSNR (dB, peak 1) of faces in [0, 1] against float32 ones."""
    diff = (faces.float() - reference.float()).abs()
    mse = float(diff.pow(2).mean())
    return {
        "max_abs": float(diff.max()) if diff.numel() else 0.0,
        "mean_abs": float(diff.mean()) if diff.numel() else 0.0,
        "psnr_db": 10 * math.log10(1.0 / mse) if mse > 0 else None,  # None: identical
    }


def _stage_row(name: str, timer, frames: int, seconds: float, **extra) -> dict:
    stages = {stage: timer.ms.get(stage, 0.0) / frames for stage in (*STAGES, "style", "identity") if stage in timer.ms or stage in STAGES}
    stages["other"] = max(seconds * 1000.0 / frames - sum(stages.values()), 0.0)
    end_to_end_ms = seconds * 1000.0 / frames
    return {"run": name, "frames": frames, "ms_per_frame": stages, "end_to_end_ms_per_frame": end_to_end_ms,
            "fps": 1000.0 / end_to_end_ms, **extra}


def median_row(runs: list[dict]) -> dict:
    """One row from repeated runs of it: the median of every number (each stage's too), and
    ``end_to_end_vs_generator`` as the median of each run's own ratio, with its range over the runs.

    Example:
        >>> runs = [{"run": "video", "ms_per_frame": {"generate": g}, "end_to_end_ms_per_frame": e,
        ...          "generator_only_ms_per_frame": o} for g, e, o in ((10, 13, 10), (30, 36, 30), (20, 30, 20))]
        >>> row = median_row(runs)
        >>> row["ms_per_frame"], row["end_to_end_ms_per_frame"], row["end_to_end_vs_generator"], row["vs_generator_range"]
        ({'generate': 20.0}, 30, 1.3, [1.2, 1.5])
    """
    import statistics

    ratios = [r["end_to_end_ms_per_frame"] / r["generator_only_ms_per_frame"] for r in runs if r.get("generator_only_ms_per_frame")]
    row: dict = {}
    for key, value in runs[0].items():
        if key == "ms_per_frame":
            row[key] = {stage: float(statistics.median(r[key].get(stage, 0.0) for r in runs)) for stage in value}
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = statistics.median(r[key] for r in runs)
        else:
            row[key] = value
    if ratios:
        row["end_to_end_vs_generator"] = float(statistics.median(ratios))
        row["vs_generator_range"] = [round(min(ratios), 4), round(max(ratios), 4)]
    row["repeats"] = len(runs)
    return row


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_bench_detector(backend: str, folders: list[str], device: torch.device | str = "cpu"):
    """The detector of a run; FAN runs on the benchmark's device (dlib always on the CPU)."""
    from ..align import make_detector
    from ..align.detect import fan_files_present

    uses_fan = backend == "fan" or (backend == "auto" and fan_files_present(folders or None))
    return make_detector(backend, folders or None, **({"device": torch.device(device)} if uses_fan else {}))


def _photo_run(reenactor, image_path: Path, out_dir: Path, timer) -> tuple[dict, Any]:
    from PIL import Image

    from ..files import read_rgb
    from ..imageops import to_uint8_hwc

    def once():
        start = time.perf_counter()
        with timer("decode"):
            image = read_rgb(image_path)
        face = reenactor.encode_source(image)
        middle = time.perf_counter()
        chunk = reenactor.reenact(face, image)
        with timer("encode"):
            Image.fromarray(to_uint8_hwc(chunk.frames if chunk.frames is not None else chunk.faces)[0]).save(out_dir / "photo.png")
        return face, chunk, middle - start, time.perf_counter() - middle

    once()  # warm-up: first calls allocate and pick kernels
    timer.reset()
    face, chunk, source_s, driver_s = once()
    row = _stage_row("photo", timer, 1, source_s + driver_s, faces_found=int(chunk.has_face.sum()))
    row["source_ms"], row["driver_ms"] = source_s * 1000.0, driver_s * 1000.0
    return row, face, chunk


def _video_run(reenactor, source, video: Path, frames: int, chunk_size: int, out_path: Path, timer, name: str,
               io: str = "inline") -> tuple[dict, list]:
    """One timed run over the first ``frames`` frames. ``io="background"`` decodes ahead and encodes behind in
    threads as the CLI does (``pasl.files``), and the decode and encode rows then count only the time the
    networks waited for them; ``"inline"`` runs both in the loop, so their whole cost shows."""
    import contextlib

    from ..background import WriteBehind, read_ahead
    from ..files import READ_AHEAD
    from ..imageops import to_uint8_hwc
    from ..video import VideoWriter, iter_frame_chunks, probe

    info = probe(video)
    first = next(iter_frame_chunks(video, 1, count=1))
    with torch.inference_mode():
        reenactor.reenact(source, torch.from_numpy(first).permute(0, 3, 1, 2).float().div(255))  # warm-up
    timer.reset()
    kept = []
    rounding = reenactor.options.output_rounding
    start = time.perf_counter()
    writer = VideoWriter(out_path, info.fps)
    try:
        with contextlib.ExitStack() as stack:
            chunks = iter_frame_chunks(video, chunk_size, count=frames)
            write = writer.write
            if io == "background":
                chunks = stack.enter_context(contextlib.closing(read_ahead(chunks, READ_AHEAD)))
                write = stack.enter_context(WriteBehind(writer.write, READ_AHEAD)).submit
            decoded = (torch.from_numpy(c).permute(0, 3, 1, 2).float().div(255) for c in chunks)
            for chunk in reenactor.reenact_stream(source, _timed_iter(decoded, timer, "decode"), fps=float(info.fps)):
                with timer("encode"):
                    write(to_uint8_hwc(chunk.frames if chunk.frames is not None else chunk.faces, rounding))
                kept.append(chunk)
            with timer("encode"):
                stack.close()  # background: the last chunks' encoding, which nothing overlaps
    except BaseException:
        writer.abort()
        raise
    with timer("encode"):
        writer.close()
    seconds = time.perf_counter() - start
    count = sum(int(c.has_face.numel()) for c in kept)
    row = _stage_row(name, timer, count, seconds, faces_found=sum(int(c.has_face.sum()) for c in kept))
    row["io"] = io
    return row, kept


def generator_only_ms(generator, style: torch.Tensor, chunks: list, batch_size: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """ms per frame of :func:`generate_faces` alone on the maps of ``chunks`` (every frame counted), and its faces."""
    from ..generate import generate_faces

    faces = []
    with torch.inference_mode():
        generate_faces(generator, style, chunks[0].depth[:1], chunks[0].landmarks[:1], batch_size=batch_size)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for chunk in chunks:
            faces.append(generate_faces(generator, style, chunk.depth, chunk.landmarks, chunk.has_face, batch_size=batch_size,
                                        out_device="cpu"))
        _sync(device)
        seconds = time.perf_counter() - start
    frames = sum(c.depth.shape[0] for c in chunks)
    return seconds * 1000.0 / frames, torch.cat(faces)


def precision_variants(models, source, chunks: list, batch_size: int, max_frames: int) -> list[dict]:
    """The ways to run the generator in ``models.dtype``, timed on the run's maps, with their error vs float32.

    On the CPU bf16 runs as autocast over float32 weights (what :func:`pasl.aeg.place_aeg` picks) or with
    weights cast to bf16; each with and without channels-last memory layout.
    """
    from ..aeg import place_aeg

    depth = torch.cat([c.depth for c in chunks])[:max_frames]
    landmarks = torch.cat([c.landmarks for c in chunks])[:max_frames]
    has_face = torch.cat([c.has_face for c in chunks])[:max_frames]
    sample = [type("Maps", (), {"depth": depth, "landmarks": landmarks, "has_face": has_face})()]
    device, dtype = models.device, models.dtype
    reference = place_aeg(copy.deepcopy(models.aeg), device, torch.float32)
    with torch.inference_mode():
        style32 = reference.style_encoder(source.crop.float())
    fp32_ms, fp32_faces = generator_only_ms(reference.generator, style32, sample, batch_size, device)
    rows = [{"variant": "fp32 weights", "generator_ms_per_frame": fp32_ms, "max_abs": 0.0, "mean_abs": 0.0, "psnr_db": None}]
    variants: list[tuple[str, Any]] = [("as loaded (" + _how_loaded(models.aeg) + ")", models.aeg)]
    if device.type == "cpu" and dtype == torch.bfloat16:
        cast = copy.deepcopy(reference).to(torch.bfloat16)
        for network in (cast.generator, cast.style_encoder):
            network.autocast_dtype = None
        variants.append(("bf16 weights", cast))
        autocast = place_aeg(copy.deepcopy(reference), device, dtype)
        variants.append(("bf16 autocast + channels_last", autocast.to(memory_format=torch.channels_last)))
        variants.append(("bf16 weights + channels_last", copy.deepcopy(cast).to(memory_format=torch.channels_last)))
    for name, aeg in variants:
        with torch.inference_mode():
            style = aeg.style_encoder(source.crop.to(next(aeg.parameters()).dtype))
        ms, faces = generator_only_ms(aeg.generator, style, sample, batch_size, device)
        rows.append({"variant": name, "generator_ms_per_frame": ms, **face_error(faces[has_face], fp32_faces[has_face])})
    return rows


def _how_loaded(aeg) -> str:
    auto = aeg.generator.autocast_dtype
    weights = str(next(aeg.parameters()).dtype).replace("torch.", "")
    return f"{weights} weights" + (f", autocast {str(auto).replace('torch.', '')}" if auto is not None else "")


def _official_row(models, folders: list[str], fallback, source, video: Path, frames: int, out_path: Path, device) -> dict:
    """The authors' demo path on the same weights: preset official-demo, FAN with flip, one frame per call."""
    from ..errors import BackendUnavailableError, MissingWeightError
    from ..pipeline import ReenactOptions, Reenactor
    from ..timing import StageTimer

    note = "FAN (flip), as the official demo"
    try:
        detector = make_bench_detector("fan", folders, device)
    except (BackendUnavailableError, MissingWeightError, FileNotFoundError) as err:
        detector = fallback
        reason = str(err).split(";")[0].split(". ")[0]
        note = f"FAN weights not found ({reason}): ran with {fallback.name} instead, so not the official detector"
    timer = StageTimer(device)
    reenactor = Reenactor(models, TimedDetector(detector, timer), ReenactOptions.preset("official-demo", batch_size=1), timer=timer)
    official_source = reenactor.encode_source(source.crop[0].float().cpu())  # the demo's source is an aligned 256 crop
    row, _ = _video_run(reenactor, official_source, video, frames, 1, out_path, timer, "official-demo path")
    row["backend"] = detector.name
    row["note"] = note
    return row


def bench_pipeline(args: argparse.Namespace) -> dict:
    """The ``pipeline`` sub-command (see the module docstring)."""
    from ..files import read_rgb
    from ..pipeline import ReenactOptions, Reenactor
    from ..timing import StageTimer
    from ..video import iter_frames
    from . import common as bench
    from .models import bench_models

    device, dtype = torch.device(args.device), bench.DTYPES[args.precision]
    if args.repeat < 1:
        raise SystemExit(f"--repeat must be at least 1, got {args.repeat}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    models, which = bench_models(args.weights_dir, device, dtype, synthetic=True if args.synthetic else None)
    detector = make_bench_detector(args.backend, args.weights_dir, device)
    timer = StageTimer(device)
    options = ReenactOptions(crop_landmarks=args.crop_landmarks, batch_size=args.batch_size)
    reenactor = Reenactor(models, TimedDetector(detector, timer), options, timer=timer)
    video = Path(args.video)
    rows, variants = [], []
    with tempfile.TemporaryDirectory(prefix="pasl-bench-") as temporary:
        out_dir = Path(temporary)
        image = Path(args.image) if args.image else out_dir / "first_frame.png"
        if not args.image:
            from PIL import Image

            Image.fromarray(next(iter_frames(video, count=1))).save(image)
        read_rgb(image)
        photos, videos = [], []
        for _ in range(args.repeat):  # photo, video and the generator alone alternate, so drifts of the machine hit all
            photo, source, photo_chunk = _photo_run(reenactor, image, out_dir, timer)
            photo["generator_only_ms_per_frame"], _ = generator_only_ms(models.aeg.generator, source.style, [photo_chunk], 1, device)
            photos.append(photo)
            video_row, chunks = _video_run(reenactor, source, video, args.frames, args.chunk_size, out_dir / "video.mp4", timer, "video",
                                           args.io)
            video_row["generator_only_ms_per_frame"], _ = generator_only_ms(models.aeg.generator, source.style, chunks,
                                                                            args.batch_size, device)
            videos.append(video_row)
        for row in photos:
            row["driver_vs_generator"] = row["driver_ms"] / row["generator_only_ms_per_frame"]
        rows += [median_row(photos), median_row(videos)]
        video_row, gen_ms = rows[-1], rows[-1]["generator_only_ms_per_frame"]
        if args.official_frames > 0:
            official = _official_row(models, args.weights_dir, detector, source, video, min(args.official_frames, args.frames),
                                     out_dir / "official.mp4", device)
            official["end_to_end_vs_generator"] = official["end_to_end_ms_per_frame"] / gen_ms
            official["vs_this_run"] = official["end_to_end_ms_per_frame"] / video_row["end_to_end_ms_per_frame"]
            rows.append(official)
        if dtype != torch.float32:
            variants = precision_variants(models, source, chunks, args.batch_size, args.variant_frames)
    result = bench._result("pipeline", args, device, rows, weights=which, video=str(video), image=str(args.image or "first video frame"),
                           backend=detector.name, crop_landmarks=args.crop_landmarks, batch_size=args.batch_size,
                           chunk_size=args.chunk_size, precision_variants=variants, peak_rss_mb=_peak_rss_mb())
    result["dtype"] = args.precision
    if device.type == "cuda":
        result["peak_vram_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def print_pipeline_table(result: dict) -> None:
    """Stages as rows, runs as columns; then totals, ratios and the precision table."""
    print(f"# pipeline on {result['device']} ({result['device_name']}), {result['dtype']}, torch {result['torch']}, "
          f"{result['threads']} threads; {result['weights']}; backend {result['backend']}, crop landmarks "
          f"{result['crop_landmarks']}, batch {result['batch_size']}")
    runs = result["rows"]
    names = [r["run"] for r in runs]
    print(f"{'ms per frame':>24} | " + " | ".join(f"{n:>20}" for n in names))
    stages = list(dict.fromkeys(s for r in runs for s in r["ms_per_frame"]))
    for stage in stages:
        cells = [r["ms_per_frame"].get(stage) for r in runs]
        print(f"{STAGE_WORDS.get(stage, stage):>24} | " + " | ".join(f"{c:>20.1f}" if c is not None else f"{'':>20}" for c in cells))
    for key, word, fmt in (("end_to_end_ms_per_frame", "end to end", ".1f"), ("fps", "frames/s", ".3f"),
                           ("generator_only_ms_per_frame", "generator only", ".1f"),
                           ("end_to_end_vs_generator", "end to end / generator", ".2f"),
                           ("driver_ms", "of which driver (source ready)", ".1f"),
                           ("driver_vs_generator", "driver / generator", ".2f"), ("vs_this_run", "vs the video run", ".2f"),
                           ("frames", "frames", "d"), ("repeats", "runs (medians)", "d")):
        cells = [r.get(key) for r in runs]
        if fmt == "d":
            cells = [None if c is None else int(c) for c in cells]
        if any(c is not None for c in cells):
            print(f"{word:>24} | " + " | ".join(f"{c:>20{fmt}}" if c is not None else f"{'':>20}" for c in cells))
    for r in runs:
        if r.get("vs_generator_range") and r.get("repeats", 1) > 1:
            low, high = r["vs_generator_range"]
            print(f"{r['run']}: end to end / generator ranged {low:.2f}-{high:.2f} over the {r['repeats']} runs")
        if r.get("io") == "background":
            print(f"{r['run']}: decode and encode in background threads, as the CLI; their rows are the time the networks waited")
        if r.get("note"):
            print(f"note ({r['run']}): {r['note']}")
    if result.get("precision_variants"):
        print(f"# generator in {result['dtype']}, on the video's maps, vs float32 weights")
        print(f"{'variant':>34} | {'ms/frame':>10} | {'max abs':>10} | {'mean abs':>10} | {'PSNR dB':>8}")
        for v in result["precision_variants"]:
            psnr = f"{v['psnr_db']:>8.2f}" if v["psnr_db"] is not None else f"{'exact':>8}"
            print(f"{v['variant']:>34} | {v['generator_ms_per_frame']:>10.1f} | {v['max_abs']:>10.5f} | {v['mean_abs']:>10.6f} | {psnr}")
    memory = f"peak RSS {result['peak_rss_mb']:.0f} MB"
    if "peak_vram_mb" in result:
        memory += f", peak VRAM {result['peak_vram_mb']:.0f} MB"
    print(memory)


def add_parser(commands) -> None:
    parser = commands.add_parser("pipeline", help="the whole reenactment per stage, end-to-end fps and its ratio to the generator alone")
    parser.add_argument("--video", required=True, help="a driving video (its first --frames frames are used)")
    parser.add_argument("--image", help="a photo, source and driver of the photo run (default: the video's first frame)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--backend", choices=["auto", "fan", "dlib", "dlib-hog"], default="auto")
    parser.add_argument("--crop-landmarks", choices=["redetect", "mapped", "refit"], default="refit")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per generator call")
    parser.add_argument("--chunk-size", type=int, default=16, help="frames per pipeline call (the CLI's --chunk-size)")
    parser.add_argument("--official-frames", type=int, default=8, help="frames of the official-demo row (0: no such row)")
    parser.add_argument("--variant-frames", type=int, default=8, help="frames for the precision variants (not fp32)")
    parser.add_argument("--weights-dir", action="append", default=[],
                        help="weight folder(s); without every file the AEG and DECA are synthetic (FLAME/topology still needed)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic AEG and DECA even when the real files are found")
    parser.add_argument("--io", choices=["background", "inline"], default="background",
                        help="video decode/encode in threads as the CLI does (default; their rows are then the time the networks "
                             "waited), or in the loop")
    parser.add_argument("--json", help="also write the JSON result to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the photo, the video and the generator alone this many times, alternating; medians are reported")
    parser.set_defaults(run=bench_pipeline, table=print_pipeline_table)


__all__ = ["STAGES", "TimedDetector", "add_parser", "bench_pipeline", "face_error", "generator_only_ms", "median_row", "precision_variants",
           "print_pipeline_table"]
