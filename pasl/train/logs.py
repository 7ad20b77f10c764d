"""Loss logs of a run: always a JSON-lines file, and TensorBoard when it is installed.

``{output_dir}/train_log.jsonl`` gets one object per logged step (``{"step": 10, "d/real": ..., ...}``),
appended and flushed, so a crashed run keeps its history and any tool can plot it. With
``log: "tensorboard"`` (or ``"auto"`` and the ``tensorboard`` package importable) the same scalars
also go to ``{output_dir}/tensorboard``. At every checkpoint a sample grid of a fixed batch (one pair a
row: see each trainer's ``samples``) goes to ``{output_dir}/samples/{step}.png`` and to TensorBoard.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..errors import PASLError

log = logging.getLogger(__name__)

JSONL_NAME = "train_log.jsonl"


def tensorboard_writer(folder: Path, required: bool):
    """A ``SummaryWriter`` or None when TensorBoard is missing (an error if ``required``)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if required:
            raise PASLError(
                "config key 'log' is 'tensorboard' but the tensorboard package is not installed; "
                "pip install tensorboard, or use log 'jsonl'."
            ) from None
        return None
    return SummaryWriter(str(folder))


class TrainLog:
    """Writes scalars per step (main process only); use as a context manager or call :meth:`close`."""

    def __init__(self, folder: str | Path, kind: str = "auto"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JSONL_NAME
        self._file = open(self.path, "a", encoding="utf-8")
        self._board = None if kind == "jsonl" else tensorboard_writer(self.folder / "tensorboard", required=kind == "tensorboard")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self._file.write(json.dumps({"step": step, **scalars}, sort_keys=True) + "\n")
        self._file.flush()
        if self._board is not None:
            for key, value in scalars.items():
                self._board.add_scalar(key, value, step)
        log.info("step %d %s", step, " ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items())))

    def write_samples(self, step: int, grid: torch.Tensor) -> Path:
        """``grid`` ``(3, H, W)`` in [0, 1] as ``samples/{step:07d}.png`` (and a TensorBoard image)."""
        from ..imageops import write_png

        path = write_png(grid, self.folder / "samples" / f"{step:07d}.png")
        if self._board is not None:
            self._board.add_image("samples", grid.clamp(0, 1), step)
        return path

    def close(self) -> None:
        self._file.close()
        if self._board is not None:
            self._board.close()

    def __enter__(self) -> "TrainLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_log(path: str | Path) -> list[dict]:
    """The entries of a ``train_log.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
