"""Let a CPU run reuse the memory it frees instead of asking the kernel for fresh pages on every call.

Why: the generator's activations are 72 MiB a frame in float32 (:mod:`pasl.memory`). glibc's malloc
gives every block over 32 MiB its own ``mmap``, unmaps it on ``free`` and gives the top of its heap
back to the kernel past a threshold, so the next call faults in and zeroes all of it again. Measured
on the 2-core build machine (the generator alone, 16 frames of 256x256, torch 2.14.1, fp32): about
230,000 page faults and 370 ms of kernel time per frame at batch 8, against a wall time of 556 ms.
Holding on to freed memory (``M_MMAP_MAX=0``: big blocks come from the heap; a 2 GiB
``M_TRIM_THRESHOLD``: the heap is not given back) took the generator to 431-460 ms/frame at batch 8
and from 472 to 380 ms/frame at batch 1, with no page fault left at batch 1. The price: the process
keeps its high-water mark (peak RSS 1.8 -> 2.6 GB in that loop), which then stays flat over a clip.

The command lines (``python -m pasl``, ``pasl.bench``, ``pasl.eval``, ``pasl.train``) call
:func:`retain_freed_memory` as they start; ``PASL_RETAIN_MEMORY=0`` turns it off. The ComfyUI nodes do
not: the host process's allocator belongs to the host (:data:`HOST_ENVIRONMENT` gives a user the same
settings for it). Only glibc (Linux) has these settings; elsewhere
nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
"""glibc ``mallopt`` parameter: free memory at the top of the heap above this many bytes is given back."""
M_MMAP_MAX = -4
"""glibc ``mallopt`` parameter: how many blocks may be served by their own ``mmap`` (0: none)."""
TRIM_THRESHOLD_BYTES = 2**31 - 1
"""The largest value ``mallopt`` takes (an ``int``): in practice the heap is never trimmed."""
HOST_ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES)}
"""The same two settings as glibc's own environment variables, for a process we do not start (a
CPU-only ComfyUI: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 python main.py --cpu``)."""
ENVIRONMENT_SWITCH = "PASL_RETAIN_MEMORY"
"""Set to ``0`` (or ``false``, ``no``, ``off``) to leave the C library's allocator as it is."""


def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (see the module docstring); True when it took.

    False, and nothing changed, when :data:`ENVIRONMENT_SWITCH` turns it off, off Linux, or when the C
    library has no ``mallopt`` (musl). Call it once, early, in a process of our own.
    """
    if os.environ.get(ENVIRONMENT_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


__all__ = ["ENVIRONMENT_SWITCH", "HOST_ENVIRONMENT", "retain_freed_memory"]
