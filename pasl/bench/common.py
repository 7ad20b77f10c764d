"""What every benchmark shares: the precision names, the result header, memory, and FLAME for benchmarks."""

from __future__ import annotations

import argparse
import os
import platform
import resource

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _flame_for_bench(folders: list[str]):
    """The real FLAME when its files are found; else the same-sized layer built from the freely
    available template mesh + landmark embedding with zero blend shapes (identical cost)."""
    import numpy as np

    from ..catalog import find, resolve_weights
    from ..flame import FLAME
    from ..flame_files import load_flame, read_head_template, read_landmark_embedding

    files = resolve_weights(folders, require_shape_stage=False)  # the same FLAME files a run would load
    searched, model, embedding = files.searched, files.flame, files.landmark_embedding
    template_path = files.head_template
    if template_path is None:
        raise SystemExit(
            "the render benchmark needs head_template.obj (https://github.com/yfeng95/DECA/tree/master/data); pass --weights-dir"
        )
    template = read_head_template(template_path)
    faces = torch.as_tensor(np.asarray(template.faces), dtype=torch.long)
    if model is not None and (embedding is not None or model.suffix != ".pkl"):
        return load_flame(model, embedding), faces, "FLAME 2020"
    embedding_path = (find("landmark_embedding", searched) or [None])[0]
    if embedding_path is None:
        raise SystemExit("the render benchmark needs landmark_embedding.npy (DECA's data folder); pass --weights-dir")
    lmk = read_landmark_embedding(embedding_path)
    v = np.asarray(template.vertices, dtype=np.float32)
    n = v.shape[0]
    weights = np.zeros((n, 5), np.float32)
    weights[:, 1] = 1
    arrays = {
        "v_template": v - v.mean(0),
        "shapedirs": np.zeros((n, 3, 150), np.float32),
        "posedirs": np.zeros((36, n * 3), np.float32),
        "J_regressor": np.full((5, n), 1.0 / n, np.float32),
        "lbs_weights": weights,
        "faces": faces.numpy(),
        "parents": np.array([-1, 0, 1, 1, 1]),
        **lmk,
    }
    return FLAME(arrays, source="template-only FLAME (zero blend shapes)"), faces, "template-only FLAME"


def _result(name: str, args: argparse.Namespace, device: torch.device, rows: list[dict], **extra) -> dict:
    return {
        "benchmark": name,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "dtype": getattr(args, "dtype", "fp32"),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "repeat": args.repeat,
        "peak_memory_mb": _memory_mb(device),
        **extra,
        "rows": rows,
    }


