"""``python -m pasl.bench train``: seconds per training step of the release's objective, by batch size.

The official networks (69 M + 21 M + two discriminators of 21 M and 18 M parameters) with every loss
term: the two discriminators with R1, the PAE identity loss (six IR-50s; one runs per pair), the style
cycle, L2 and VGG19 perceptual. Weights are random (He init, random VGG19 and IR-50s): a step costs the
same whatever their values, so no file is needed. Inputs are random 256 crops and maps, the data loader
and the conditioning (cached in a real run) are not timed. The first step of each batch size is a
warm-up; the table gives the median of the next ``--repeat`` steps, and images per second.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .common import _result


def _batch(size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def images() -> torch.Tensor:
        return torch.rand(size, 3, 256, 256, generator=generator)

    yaw = torch.tensor([0.0, 45.0, 75.0, -20.0] * (size // 4 + 1))[:size]
    return {"source": images(), "reference": images(), "target": images(), "depth": images(), "landmarks": images(),
            "yaw_source": yaw, "yaw_reference": yaw.flip(0)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(args: argparse.Namespace) -> dict:
    from ..models import auto_device
    from ..pae import IR50, PAIR_KINDS, PoseAdaptedEncoders
    from ..train.config import TrainConfig
    from ..train.distributed import World
    from ..train.loop import Trainer, seed_everything
    from ..train.nets import build_nets
    from ..train.vgg import VGG19Perceptual, vgg19_features

    device = auto_device(args.device)
    seed_everything(0)
    vgg = VGG19Perceptual({f"features.{k}": v for k, v in vgg19_features().state_dict().items()})
    pae = PoseAdaptedEncoders({kind: IR50() for kind in PAIR_KINDS}, {kind: kind for kind in PAIR_KINDS})
    world = World(0, 0, 1, device)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for size in args.batches:
        nets, ema = build_nets(args.model)
        config = TrainConfig(pairs="unused", cache_dir="unused", batch_size=size, precision=args.precision, device=str(device))
        trainer = Trainer(nets, ema, config, world, vgg, pae)
        trainer.seed()
        seconds = []
        for step in range(args.repeat + 1):
            batch = _batch(size, generator)
            _sync(device)
            start = time.perf_counter()
            losses = trainer.train_step([batch])
            _sync(device)
            if step:  # the first step is a warm-up
                seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        rows.append({"batch": size, "s_per_step": median, "images_per_s": size / median, "g_total": losses.get("g/total", float("nan"))})
        del trainer, nets, ema
    args.dtype = args.precision
    objective = "adv + 100 id (PAE) + 1 style cycle + 100 L2 + 5 VGG19; D with R1"
    return _result("train", args, device, rows, model=args.model, objective=objective)


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="seconds per training step (official networks, every loss term), by batch size")
    train.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    train.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    train.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    train.add_argument("--repeat", type=int, default=2, help="timed steps per batch size, after one warm-up step")
    train.add_argument("--model", choices=("official", "tiny"), default="official",
                       help="official networks (default), or the tiny stand-ins (a smoke run of the benchmark itself)")
    train.add_argument("--json", help="also write the JSON result to this file")
    train.set_defaults(run=bench_train)
