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
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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
    exec(compile("\n".join(kept), str(path), "exec"), module.__dict__)  # noqa: S102
    return module


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_aeg(args: argparse.Namespace) -> dict:
    from .aeg import AEG, load_aeg

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
    return {
        "benchmark": "aeg",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeat": args.repeat,
        "peak_memory_mb": _memory_mb(device),
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(f"# {result['benchmark']} on {result['device']} ({result['device_name']}), {result['dtype']}, torch {result['torch']}, "
          f"{result['threads']} threads, median of {result['repeat']}")
    columns = list(result["rows"][0])
    print(" | ".join(f"{c:>22}" for c in columns))
    for row in result["rows"]:
        print(" | ".join(f"{row[c]:>22.2f}" if isinstance(row[c], float) else f"{row[c]!s:>22}" for c in columns))
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.run(args)
    print_table(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
