"""``comfy.model_patcher.ModelPatcher`` of ComfyUI 0.3.75: the wrapper the memory manager moves around."""

from __future__ import annotations

import torch

from . import model_management


class ModelPatcher:
    def __init__(self, model: torch.nn.Module, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if getattr(self.model, "device", None) is None:  # the host also tags the module with a device
            self.model.device = offload_device
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update

    def model_size(self) -> int:
        if self.size > 0:
            return self.size
        self.size = model_management.module_size(self.model)
        return self.size

    def clone(self) -> ModelPatcher:
        return ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)
