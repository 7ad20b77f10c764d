"""Batches that shrink when the accelerator runs out of memory.

A batch size that fits one GPU does not fit another, and the free memory changes while
ComfyUI runs other models. :class:`Backoff` runs a stage batch by batch; when a batch raises
``torch.OutOfMemoryError`` it frees the allocator's cache, halves the batch and retries the
same frames, down to one frame, then raises :class:`pasl.errors.OutOfMemoryError` in one
sentence. The smaller size is kept for later batches (and later calls with the same object),
so a long clip pays for the failure once. The stage must write each batch's results to their
own slots, so that a retried batch overwrites nothing else.

Example:
    >>> seen = []
    >>> def run(part):
    ...     seen.append(part.stop - part.start)
    ...     if part.stop - part.start > 2:
    ...         raise torch.OutOfMemoryError("fake")
    >>> backoff = Backoff(8, empty_cache=lambda: None)
    >>> backoff.run(5, run)
    >>> seen, backoff.batch_size
    ([5, 2, 2, 1], 2)
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import OutOfMemoryError

OOM_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)
"""What counts as running out of memory (``torch.cuda.OutOfMemoryError`` is the same class)."""


def free_cached_memory() -> None:
    """Give the allocator's cached blocks back (the default callback outside ComfyUI)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


class Backoff:
    """A batch size that halves on out-of-memory errors.

    Args:
        batch_size: frames per call to start with (>= 1).
        empty_cache: called after an out-of-memory error, before the retry (ComfyUI's
            ``soft_empty_cache`` in the nodes); default :func:`free_cached_memory`.
        what: the stage, for the error message ("the generator").
    """

    def __init__(self, batch_size: int, empty_cache: Callable[[], None] | None = None, what: str = "the generator"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.start_size = self.batch_size = int(batch_size)
        self.empty_cache = empty_cache or free_cached_memory
        self.what = what

    def run(self, count: int, step: Callable[[slice], None], done: Callable[[int], None] | None = None) -> None:
        """Call ``step(slice)`` over ``range(count)`` in batches; ``done(frames_done)`` after each.

        Raises:
            OutOfMemoryError: a batch of one frame still ran out of memory.
        """
        start = 0
        while start < count:
            part = slice(start, min(start + self.batch_size, count))
            try:
                step(part)
            except OOM_ERRORS as error:
                if self.batch_size == 1:
                    raise OutOfMemoryError(
                        f"{self.what} ran out of GPU memory even one frame at a time (batch size {self.start_size} halved down "
                        "to 1); free GPU memory (unload other models, close other programs), use precision fp16, or run on the CPU"
                    ) from error
                failed = True
            else:
                failed = False
            if failed:  # outside the except block, so the error's frames (and their tensors) are gone
                self.empty_cache()
                self.batch_size = max(1, min(self.batch_size, part.stop - part.start) // 2)
                continue
            start = part.stop
            if done is not None:
                done(start)
