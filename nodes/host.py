"""The only place that talks to ComfyUI internals: folders, devices, memory, progress.

Node files import from here so each stays a thin adapter over ``pasl``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

from ..pasl.catalog import PACK_WEIGHTS

MODEL_FOLDER = "pasl"
DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def register_model_folder() -> None:
    """``models/pasl`` first, then the pack's ``weights/``; appending keeps extra_model_paths.yaml entries."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER), is_default=True)
    folder_paths.add_model_folder_path(MODEL_FOLDER, str(PACK_WEIGHTS))


def model_files(placeholder: str) -> list[str]:
    """Files in the ``pasl`` folders, or a single placeholder telling the user what is missing."""
    names = [n for n in folder_paths.get_filename_list(MODEL_FOLDER) if not n.endswith((".md", ".txt"))]
    return names or [placeholder]


def model_path(name: str) -> str | None:
    """Full path of a listed file; ``None`` for the placeholder (the loader then explains)."""
    return folder_paths.get_full_path(MODEL_FOLDER, name)


def pick_device(name: str) -> torch.device:
    return mm.get_torch_device() if name == "auto" else torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp16 where ComfyUI says the device runs it well (CUDA), else fp32, unless asked."""
    if name != "auto":
        return _DTYPES[name]
    return torch.float16 if device.type != "cpu" and mm.should_use_fp16(device) else torch.float32


def wrap(model: torch.nn.Module, device: torch.device) -> comfy.model_patcher.ModelPatcher:
    """Hand the model to ComfyUI's memory manager (offloaded to CPU when others need the GPU)."""
    offload = torch.device("cpu") if device.type == "cpu" else mm.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=offload)


@dataclass(frozen=True)
class PASLModels:
    """The ``PASL_MODEL`` socket payload: managed models plus the chosen precision."""

    aeg: comfy.model_patcher.ModelPatcher
    dtype: torch.dtype

    def load_aeg(self):
        """Load onto the compute device (ComfyUI may evict other models) and return it."""
        mm.load_models_gpu([self.aeg])
        return self.aeg.model


def images_to_bchw(image: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """ComfyUI IMAGE ``[B,H,W,C]`` (C = 1, 3 or 4) -> ``[B,3,H,W]`` RGB; alpha is dropped."""
    if image.ndim == 3:
        image = image[None]
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(*image.shape[:-1], 3)
    elif channels == 4:
        image = image[..., :3]
    elif channels != 3:
        raise ValueError(f"expected an IMAGE with 1, 3 or 4 channels, got shape {tuple(image.shape)}")
    return image.movedim(-1, 1).to(device=device, dtype=dtype)


def to_comfy_image(bchw: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` on any device/dtype -> ComfyUI IMAGE ``[B,H,W,3]`` float32 on the intermediate device."""
    return bchw.movedim(1, -1).to(device=mm.intermediate_device(), dtype=torch.float32).clamp(0, 1)


class Progress:
    """A ComfyUI progress bar whose every step is also a cancel point."""

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(total)

    def step(self, amount: int = 1) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.bar.update(amount)
