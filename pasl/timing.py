"""Per-stage wall time of a run, for ``python -m pasl.bench pipeline``.

:class:`pasl.pipeline.Reenactor` takes an optional ``timer`` and wraps each of its stages
in ``timer(name)``; without one nothing is measured and nothing is synchronised. Stages may
nest (the crop-landmark pass inside the shape stage): each stage is charged only the time
spent outside its inner stages, so the stages add up to the time measured.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import torch


class StageTimer:
    """Exclusive milliseconds per stage name, summed over calls (one thread).

    Args:
        device: CUDA work is synchronised at every stage boundary, so a stage is charged
            the kernels it queued rather than the next stage that waits for them.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.ms: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[str] = []
        self._since = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _charge(self, now: float) -> None:
        if self._stack:
            name = self._stack[-1]
            self.ms[name] = self.ms.get(name, 0.0) + (now - self._since) * 1000.0
        self._since = now

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._sync()
        self._charge(time.perf_counter())
        self._stack.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        try:
            yield
        finally:
            self._sync()
            self._charge(time.perf_counter())
            self._stack.pop()

    def reset(self) -> None:
        self.ms.clear()
        self.calls.clear()

    def total_ms(self) -> float:
        return sum(self.ms.values())
