"""``comfy.model_management`` of ComfyUI 0.3.75 as started with ``--cpu``, reduced to what the pack uses.

Devices are the CPU; ``load_models_gpu`` moves each patcher's model to its ``load_device`` (no
eviction); the interrupt flag behaves as the host's: set from outside (the /interrupt route, here
:func:`interrupt_current_processing`), raised and cleared by the node's next
:func:`throw_exception_if_processing_interrupted`.
"""

from __future__ import annotations

import threading

import torch

OOM_EXCEPTION = torch.cuda.OutOfMemoryError

current_loaded_models: list = []
"""Patchers passed to :func:`load_models_gpu`, most recent first (as the host's list)."""


class InterruptProcessingException(Exception):
    pass


interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


def interrupt_current_processing(value: bool = True) -> None:
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted() -> bool:
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted() -> None:
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()


def get_torch_device() -> torch.device:
    return torch.device("cpu")


def unet_offload_device() -> torch.device:
    return torch.device("cpu")


def intermediate_device() -> torch.device:
    return torch.device("cpu")


def is_device_cpu(device) -> bool:
    return getattr(device, "type", device) == "cpu"


def is_device_mps(device) -> bool:
    return getattr(device, "type", device) == "mps"


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False) -> bool:
    """As 0.3.75 under ``--cpu``: False for the CPU and CUDA alike, True for an MPS device."""
    return device is not None and is_device_mps(device)


def module_size(module: torch.nn.Module) -> int:
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False) -> None:
    for patcher in models:
        patcher.model.to(patcher.load_device)
        if patcher in current_loaded_models:
            current_loaded_models.remove(patcher)
        current_loaded_models.insert(0, patcher)


def free_memory(memory_required, device, keep_loaded=[]) -> list:  # noqa: B006  (the host's signature)
    unloaded = []
    for patcher in list(current_loaded_models):
        if patcher not in keep_loaded:
            patcher.model.to(patcher.offload_device)
            current_loaded_models.remove(patcher)
            unloaded.append(patcher)
    return unloaded


def soft_empty_cache(force: bool = False) -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
