"""One process or many: PyTorch's own distributed engine, set up from ``torchrun``'s environment.

``torchrun --nproc_per_node N -m pasl.train ...`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_world` then joins the process group (NCCL on CUDA,
Gloo on the CPU) and picks ``cuda:LOCAL_RANK``. Without those variables the run is a world of one and
nothing distributed is touched. Trained networks are wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`, which averages gradients over the processes.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import PASLError


@dataclass(frozen=True)
class World:
    """This process's place in the run."""

    rank: int
    local_rank: int
    size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; otherwise the named device."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PASLError(f"config key 'device' must be auto, cpu, cuda or cuda:N; got {name!r}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PASLError(f"config key 'device' is {name!r} but CUDA is not available here; use cpu or auto.")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def init_world(device: str = "auto") -> World:
    """Join ``torchrun``'s process group when its environment says so, else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local_rank)
    if size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return World(rank, local_rank, size, chosen)


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)
"""Newer PyTorch renamed ``broadcast_buffers`` (and warns about the old name)."""


def wrap(module: nn.Module, world: World) -> nn.Module:
    """``module`` in DDP when the world has several processes (no buffer broadcast: the AEG has no running
    statistics), else itself."""
    if not world.distributed:
        return module
    device_ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, **_NO_BUFFER_SYNC)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def no_sync(modules: list[nn.Module], skip: bool):
    """Skip the gradient all-reduce of every DDP module in ``modules`` while ``skip`` (accumulation steps)."""
    stack = contextlib.ExitStack()
    if skip:
        for module in modules:
            if isinstance(module, DistributedDataParallel):
                stack.enter_context(module.no_sync())
    return stack


def mean_over_world(values: dict[str, float], world: World) -> dict[str, float]:
    """Average scalars over the processes (for the logs)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return {k: v / world.size for k, v in zip(keys, tensor.tolist())}


def gather_objects(obj: object, world: World) -> list:
    """``obj`` of every process, in rank order (a list of one without distribution)."""
    if not world.distributed:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
