"""Reenact every pair of a benchmark list into the release's evaluation folders, resumably.

The release's ``test_sample_*.py`` writes four folders under ``<out>/<tag>`` (``tag``: the checkpoint's
step, e.g. ``250000``): the fakes in ``<tag>/``, the sources in ``<tag>real/``, the depth maps in
``<tag>lm/`` and, in ``<tag>ground_truth/``, the *driving* image (not the list's ``gt`` column;
docs/official-code.md §6.1). We write the same four, plus ``<tag>gt/`` with the list's third column
when it has one, so SSIM/PSNR/LPIPS can use the real ground truth. Every folder holds the aligned 256
crop the generator saw or made, named ``%04d_00.png`` by the pair's line index in the list (one output
per pair), rounded to 8 bit as ``save_image`` does.

Where the release differs and we chose otherwise: it drops an incomplete last batch (``drop_last``);
we reenact every pair. A pair is done once its fake exists (written last, atomically), so a run that was
interrupted starts again where it stopped. Pairs that cannot be reenacted (no face in the source or the
driver) are listed with the reason in ``failed.json`` and retried by the next run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..align import align_faces
from ..atomic import atomic_output
from ..errors import NoFaceError, PASLError
from ..files import read_rgb
from ..imageops import write_png
from ..pipeline import Reenactor, SourceFace
from ..shape import ShapeCodes
from .pairs import Pair

log = logging.getLogger(__name__)

KINDS = {"fake": "", "source": "real", "depth": "lm", "driver": "ground_truth", "gt": "gt"}
"""Folder suffix of each image kind, after the tag (the release's names; ``gt`` is ours)."""
FAILED_FILE = "failed.json"


@dataclass(frozen=True)
class RunLayout:
    """Where a run's images go: ``out/<tag><suffix>/<index>_00.png``."""

    out: Path
    tag: str

    def folder(self, kind: str) -> Path:
        return self.out / f"{self.tag}{KINDS[kind]}"

    def file(self, kind: str, index: int) -> Path:
        return self.folder(kind) / f"{index:04d}_00.png"

    def is_done(self, index: int) -> bool:
        return self.file("fake", index).is_file()


def checkpoint_tag(aeg_path: str | Path | None) -> str:
    """The release's folder tag: the step in ``<step>_nets_ema.ckpt`` (``"fake"`` when there is none)."""
    name = Path(aeg_path).name if aeg_path else ""
    step = name.split("_", 1)[0]
    return step if step.isdigit() else "fake"


@dataclass
class GenerationReport:
    """What one :func:`generate_pairs` call did, by pair index."""

    done: list[int] = field(default_factory=list)
    already_done: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def _batched(sources: list[SourceFace]) -> SourceFace:
    """One :class:`SourceFace` whose row ``i`` is ``sources[i]`` (pairs with different sources in one batch)."""
    if len(sources) == 1:
        return sources[0]
    return SourceFace(
        crop=torch.cat([s.crop for s in sources]), style=torch.cat([s.style for s in sources]),
        shape=ShapeCodes.cat([s.shape for s in sources]), alignment=type(sources[0].alignment).cat([s.alignment for s in sources]),
    )


def generate_pairs(
    reenactor: Reenactor,
    pairs: list[Pair],
    layout: RunLayout,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationReport:
    """Reenact the pairs not done yet, ``batch_size`` pairs per generator batch, into ``layout``.

    The reenactor's options decide alignment, recomposition and flattening (``official-test`` is the
    release's protocol); paste-back, identity scores and the cycle check are switched off here (the
    benchmark wants the aligned crops; :mod:`pasl.eval.scores` measures them afterwards).
    ``progress(done, total)`` is called after each batch (it may raise to cancel: the pairs written so
    far stay done).
    """
    if batch_size < 1:
        raise PASLError(f"batch size must be a whole number >= 1, got {batch_size}.")
    options = dataclasses.replace(reenactor.options, paste_back=False, identity_score=False, cycle_check=False,
                                  select="largest" if reenactor.options.select == "all" else reenactor.options.select)
    runner = Reenactor(reenactor.models, reenactor.detector, options, timer=reenactor.timer)
    report = GenerationReport()
    todo = []
    for index in range(len(pairs)):
        (report.already_done if layout.is_done(index) else todo).append(index)
    sources: dict[str, SourceFace | str] = {}  # path -> encoded face, or why it failed
    last_use = {pairs[i].source: n for n, i in enumerate(todo)}  # a source leaves the cache after its last pair
    total = len(pairs)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        ready, faces, frames = [], [], []
        for index in batch:
            pair = pairs[index]
            if pair.source not in sources:
                try:
                    sources[pair.source] = runner.encode_source(read_rgb(pair.source))
                except NoFaceError:
                    sources[pair.source] = f"no face found in the source {pair.source}"
            face = sources[pair.source]
            if isinstance(face, str):
                report.failed[index] = face
                continue
            ready.append(index)
            faces.append(face)
            frames.append(read_rgb(pair.driver))
        if ready:
            _reenact_batch(runner, pairs, layout, ready, faces, frames, report)
        for path in [p for p, n in last_use.items() if n < start + batch_size and p in sources]:
            del sources[path]
        if progress is not None:
            progress(len(report.already_done) + len(report.done) + len(report.failed), total)
    _write_failures(layout, pairs, report.failed)
    return report


def _reenact_batch(runner: Reenactor, pairs: list[Pair], layout: RunLayout, indices: list[int], faces: list[SourceFace],
                   frames: list[np.ndarray], report: GenerationReport) -> None:
    chunk = runner.reenact(_batched(faces), frames)
    for row, index in enumerate(indices):
        pair = pairs[index]
        if not bool(chunk.has_face[row]):
            report.failed[index] = f"no face found in the driver {pair.driver}"
            continue
        write_png(faces[row].crop[0].cpu(), layout.file("source", index))
        write_png(chunk.depth[row], layout.file("depth", index))
        write_png(chunk.driver_crops[row], layout.file("driver", index))
        if pair.ground_truth is not None:
            same = pair.ground_truth == pair.driver
            truth = chunk.driver_crops[row] if same else _driver_crops(runner, [read_rgb(pair.ground_truth)])[0]
            write_png(truth, layout.file("gt", index))
        write_png(chunk.faces[row], layout.file("fake", index))  # last: its presence marks the pair done
        report.done.append(index)


def _driver_crops(runner: Reenactor, images: list[np.ndarray]) -> torch.Tensor:
    """Aligned crops of driving-side images, cut as the reenactor cuts its drivers."""
    o = runner.options
    alignment = align_faces(images, select=o.select, mode=o.driver_alignment, detector=runner.detector, warp=o.warp,
                            require_face=False)
    return alignment.crops.cpu()


def _write_failures(layout: RunLayout, pairs: list[Pair], failed: dict[int, str]) -> None:
    path = layout.out / FAILED_FILE
    if not failed:
        path.unlink(missing_ok=True)
        return
    records = [{"index": i, "source": pairs[i].source, "driver": pairs[i].driver, "reason": why} for i, why in sorted(failed.items())]
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
