"""The only place that talks to ComfyUI internals: folders, devices, memory, progress.

Node files import from here so each stays a thin adapter over ``pasl``.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, replace

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

from ..pasl.catalog import PACK_WEIGHTS, entry
from ..pasl.models import PASLModels

MODEL_FOLDER = "pasl"
DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "fp32", "fp16", "bf16"]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def register_model_folder() -> None:
    """``models/pasl`` first, then the pack's ``weights/``; appending keeps extra_model_paths.yaml entries."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER), is_default=True)
    folder_paths.add_model_folder_path(MODEL_FOLDER, str(PACK_WEIGHTS))


def model_files(kind: str, placeholder: str) -> list[str]:
    """Files of catalogue ``kind`` in the ``pasl`` folders, or one placeholder naming what is missing."""
    patterns = entry(kind).patterns
    names = [n for n in folder_paths.get_filename_list(MODEL_FOLDER) if any(fnmatch.fnmatch(os.path.basename(n), p) for p in patterns)]
    return names or [placeholder]


def folders() -> list[str]:
    """The registered ``pasl`` folders (for files found by name, such as head_template.obj)."""
    return folder_paths.get_folder_paths(MODEL_FOLDER)


def model_path(name: str) -> str | None:
    """Full path of a listed file; ``None`` for the placeholder (the loader then explains)."""
    return folder_paths.get_full_path(MODEL_FOLDER, name)


PRESET_FOLDER = "presets"
NO_PRESET = "(none)"


def preset_folder() -> str:
    """``models/pasl/presets``: where PASL Shape Edit keeps its edit presets (small JSON files)."""
    return os.path.join(folders()[0], PRESET_FOLDER)


def preset_files() -> list[str]:
    """:data:`NO_PRESET`, then the ``*.json`` names in :func:`preset_folder`."""
    folder = preset_folder()
    names = sorted(n for n in os.listdir(folder) if n.endswith(".json")) if os.path.isdir(folder) else []
    return [NO_PRESET, *names]


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
class ManagedModels:
    """The ``PASL_MODEL`` socket payload: the networks under ComfyUI's memory manager.

    ``patcher.model`` is a ``ModuleDict`` (aeg, shape_encoder, flame, pae); :meth:`load` asks
    ComfyUI to place it on the compute device (evicting others if needed) and returns the
    library's :class:`pasl.models.PASLModels` view of it.
    """

    patcher: comfy.model_patcher.ModelPatcher
    library: PASLModels

    @property
    def dtype(self) -> torch.dtype:
        return self.library.dtype

    def load(self, memory_required: int = 0, detectors=()) -> PASLModels:
        """Ask ComfyUI for the networks (and the FAN ``detectors`` given) on the compute device, plus
        ``memory_required`` bytes of working memory (:mod:`pasl.memory`), in one call, so that loading
        one cannot evict the other; ``force_full_load`` because plain torch modules cannot run
        partly offloaded (ComfyUI's low-VRAM mode would leave some of their weights on the CPU)."""
        patchers = [self.patcher, *(p for p in map(_DETECTOR_PATCHERS.get, map(id, detectors)) if p is not None)]
        mm.load_models_gpu(patchers, memory_required=memory_required, force_full_load=True)
        device = next(self.patcher.model.parameters()).device
        return replace(self.library, device=device, faces=None if self.library.faces is None else self.library.faces.to(device))


def manage(models: PASLModels, device: torch.device) -> ManagedModels:
    networks = torch.nn.ModuleDict(
        {
            k: v
            for k, v in (("aeg", models.aeg), ("shape_encoder", models.shape_encoder), ("flame", models.flame), ("pae", models.pae))
            if v is not None
        }
    )
    return ManagedModels(wrap(networks, device), models)


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

    def to(self, done: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.bar.update_absolute(done)


def free_cache() -> None:
    """Give cached GPU memory back after a big stage, and before a halved retry (:mod:`pasl.oom`)."""
    mm.soft_empty_cache()


_DETECTORS: dict[tuple, object] = {}
_DETECTOR_PATCHERS: dict[int, comfy.model_patcher.ModelPatcher] = {}
"""The FAN networks of each cached detector (by ``id``), under ComfyUI's memory manager."""


def detector(backend: str, load: bool = True):
    """A face detector, created once per backend and reused (its models load once).

    Also reachable by the name it reports (``"auto"`` resolves to ``"fan"`` or ``"dlib"``), which
    is what a ``PASL_ALIGN`` records: later stages then reuse the same models. FAN's two networks
    are handed to ComfyUI's memory manager (so they can be offloaded like any model); ``load``
    asks for them on the compute device now. Nodes that also run PASL's networks pass the
    detector to :meth:`ManagedModels.load` instead, which loads both at once. The detector
    follows its networks wherever the manager puts them.
    """
    from ..pasl.align import make_detector
    from ..pasl.align.detect import FanDetector

    key = (backend, tuple(folders()))
    if key not in _DETECTORS:
        found = make_detector(backend, weights_dir=folders())
        found = _DETECTORS.setdefault((found.name, key[1]), found)
        if isinstance(found, FanDetector) and id(found) not in _DETECTOR_PATCHERS:
            networks = torch.nn.ModuleDict({"s3fd": found.s3fd, "fan": found.fan})
            _DETECTOR_PATCHERS[id(found)] = wrap(networks, mm.get_torch_device())
        _DETECTORS[key] = found
    found = _DETECTORS[key]
    if load and id(found) in _DETECTOR_PATCHERS:
        mm.load_models_gpu([_DETECTOR_PATCHERS[id(found)]], force_full_load=True)
    return found


def crop_detector(alignment, load: bool = False):
    """The detector that aligned ``alignment`` (a ``PASL_ALIGN``), for DECA's landmark pass on its
    crops; None for crops that were only resized without a detector. Not loaded by default: the
    node passes it to :meth:`ManagedModels.load` with PASL's networks."""
    return detector(alignment.backend, load) if alignment.backend else None


def chunks(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]
