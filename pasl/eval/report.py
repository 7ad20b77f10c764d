"""Score a finished run's folders (:mod:`pasl.eval.runner`) and write the paper-style table.

Scores are computed from the PNGs on disk, so they are the same whether the fakes were made in one go,
over several interrupted runs, or by another tool writing the release's layout. Outputs, in the run's
folder: ``scores.jsonl`` (one line per pair: paths and every per-pair value), ``results.json`` (the
summary, the options and the counts) and ``results.md`` (the table).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..atomic import atomic_output
from ..imageops import read_image
from .pairs import Pair
from .runner import RunLayout
from .scores import MetricModels, collect, distribution_scores, ground_truth_scores, markdown_table, score_faces, summarise


@dataclass(frozen=True)
class RunResults:
    summary: dict[str, dict]
    per_pair: list[dict]
    scored: int
    missing: int

    def table(self, title: str = "") -> str:
        return markdown_table(self.summary, title)


def read_crops(paths: list[Path]) -> torch.Tensor:
    """PNG crops -> ``(B, 3, H, W)`` float32 in [0, 1]."""
    arrays = np.stack([read_image(p) for p in paths])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def score_run(models: MetricModels, layout: RunLayout, pairs: list[Pair], batch_size: int = 16,
              progress: Callable[[int, int], None] | None = None) -> RunResults:
    """Score every pair whose fake exists in ``layout`` (the others count as ``missing``)."""
    done = [i for i in range(len(pairs)) if layout.is_done(i)]
    values: dict[str, list[float]] = {}
    per_pair: list[dict] = []
    fakes_all, sources_all = [], []
    for start in range(0, len(done), batch_size):
        batch = done[start : start + batch_size]
        fakes = read_crops([layout.file("fake", i) for i in batch])
        drivers = read_crops([layout.file("driver", i) for i in batch])
        sources = read_crops([layout.file("source", i) for i in batch])
        scores = score_faces(models, fakes, drivers, sources)
        rows = [row for row, i in enumerate(batch) if layout.file("gt", i).is_file()]  # self-reenactment pairs
        if rows:
            truth = ground_truth_scores(models, fakes[rows], read_crops([layout.file("gt", batch[row]) for row in rows]))
            for name, v in truth.items():
                scores[name] = torch.full((len(batch),), math.nan, dtype=torch.float64).index_put_((torch.tensor(rows),), v)
        for row, index in enumerate(batch):
            pair = pairs[index]
            record = {"index": index, "source": pair.source, "driver": pair.driver, "ground_truth": pair.ground_truth}
            record.update({name: _finite(float(v[row])) for name, v in scores.items()})
            per_pair.append(record)
        collect(values, scores)
        if models.fid:
            fakes_all.append(fakes)
            sources_all.append(sources)
        if progress is not None:
            progress(min(start + batch_size, len(done)), len(done))
    totals = None
    if models.fid and fakes_all:
        totals = distribution_scores(models, torch.cat(fakes_all), torch.cat(sources_all))
        totals["_pairs"] = len(done)
    return RunResults(summarise(values, totals), per_pair, len(done), len(pairs) - len(done))


def write_results(layout: RunLayout, results: RunResults, settings: dict) -> dict[str, Path]:
    """Write ``scores.jsonl``, ``results.json`` and ``results.md`` into the run's folder; returns their paths."""
    paths = {"scores": layout.out / "scores.jsonl", "json": layout.out / "results.json", "markdown": layout.out / "results.md"}
    with atomic_output(paths["scores"]) as temporary:
        temporary.write_text("".join(json.dumps(r) + "\n" for r in results.per_pair), encoding="utf-8")
    summary = {name: {**row, "mean": _finite(row["mean"])} for name, row in results.summary.items()}
    document = {"format": "pasl-eval/1", "scored_pairs": results.scored, "missing_pairs": results.missing,
                "settings": settings, "metrics": summary}
    with atomic_output(paths["json"]) as temporary:
        temporary.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    with atomic_output(paths["markdown"]) as temporary:
        temporary.write_text(results.table(f"PASL evaluation: {results.scored} pairs ({layout.out})"), encoding="utf-8")
    return paths
