"""How much working memory a batch needs, for a memory manager that must make room first.

ComfyUI's ``load_models_gpu(models, memory_required=...)`` frees that much room on the GPU
(besides the weights) before a node runs. These are the numbers the nodes ask for.

How they were measured: :func:`peak_activation_bytes` runs a forward pass under
``torch.inference_mode`` with a ``TorchDispatchMode`` that records the storage of every
tensor an operator returns and releases it when its last tensor dies; the peak of that live
total is the activation memory (weights and inputs made before the pass are not counted).
Run once on the CPU (torch 2.14.1) on the real architectures with random weights:

- AEG generator (256x256): 75,497,472 bytes (72 MiB) per frame in float32, exactly linear
  over batches 1, 2 and 4 (+512 bytes per pass); in bfloat16 exactly half (36 MiB per frame).
- DECA ``E_flame`` (ResNet-50, 224x224, always float32): 14,249,984 bytes (13.6 MiB) per frame.

``tests/test_memory.py`` re-measures both, so the constants cannot drift from the networks.
Not counted: cuDNN workspaces and the caching allocator's rounding on CUDA (not measured: no
GPU here); ComfyUI keeps its own reserve on top (``minimum_inference_memory``, about 1.2 GB
in 0.3.75), which is larger than these estimates for the default batch sizes.

Example:
    >>> generator_bytes(8, torch.float16) // 2**20
    288
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch

GENERATOR_BYTES_PER_FRAME = 72 * 2**20
"""Peak activation bytes of one 256x256 frame through the AEG generator in float32."""

SHAPE_ENCODER_BYTES_PER_FRAME = 14_249_984
"""Peak activation bytes of one 224x224 crop through DECA's ResNet-50 (always float32)."""


def generator_bytes(batch: int, dtype: torch.dtype) -> int:
    """Working memory of one generator call on ``batch`` frames at ``dtype`` (scales with its item size)."""
    return int(batch) * GENERATOR_BYTES_PER_FRAME * torch.empty(0, dtype=dtype).element_size() // 4


def shape_encoder_bytes(batch: int) -> int:
    """Working memory of DECA's encoder on ``batch`` crops."""
    return int(batch) * SHAPE_ENCODER_BYTES_PER_FRAME


def peak_activation_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak bytes of the tensors ``fn(*args, **kwargs)`` creates and holds at once (run in inference mode).

    Tensors that share a storage (views) count once; the result of ``fn`` counts too.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveStorages(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: dict[int, int] = {}
            self.owners: dict[int, int] = {}
            self.live = self.peak = 0

        def _release(self, key: int) -> None:
            self.owners[key] -= 1
            if self.owners[key] == 0:
                self.live -= self.sizes.pop(key)
                del self.owners[key]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor):
                    storage = tensor.untyped_storage()
                    key = storage.data_ptr()
                    if key not in self.sizes:
                        self.sizes[key], self.owners[key] = storage.nbytes(), 0
                        self.live += storage.nbytes()
                        self.peak = max(self.peak, self.live)
                    self.owners[key] += 1
                    weakref.finalize(tensor, self._release, key)
            return out

    with torch.inference_mode(), LiveStorages() as tracer:
        fn(*args, **kwargs)
    return tracer.peak
