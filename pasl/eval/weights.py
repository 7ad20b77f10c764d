"""The metric backbones as weight files: found by name like every other kind, loaded by kind.

FID, LPIPS and ArcFace-CSIM need networks that reenactment never does. They live in the catalogue
(:mod:`pasl.catalog`, by convention in an ``eval/`` sub-folder of a weights folder, found in any), are
fetched only by ``python -m pasl download eval``, and load from local files checked by sha256.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..catalog import advice, entry, find, search_folders
from ..errors import MissingWeightError
from .lpips import build_lpips, load_lpips
from .metrics import FID_KEYS, load_fid_backbone

FOUND_KEYS = ("fid_paper", "fid_standard", "lpips_alexnet", "lpips", "arcface")
"""The catalogue kinds :func:`find_metric_weights` looks for."""
METRICS = {"fid_paper": ("fid_paper",), "fid_standard": ("fid_standard",), "lpips": ("lpips_alexnet", "lpips"),
           "arcface": ("arcface",)}
"""What :func:`load_metric` loads, and the catalogue kinds of the files each one needs."""
LABELS = {"fid_paper": "The paper FID backbone", "fid_standard": "The standard FID backbone", "lpips": "LPIPS",
          "arcface": "ArcFace-CSIM"}


def find_metric_weights(folders: list[str | Path] | None = None) -> dict[str, Path]:
    """The metric weight files found, by catalogue kind (only those found; the first in search order wins).

    ``folders`` are searched first, then ``$PASL_WEIGHTS`` and the default folders
    (:func:`pasl.catalog.search_folders`), each with its sub-folders. Nothing is opened.
    """
    searched = search_folders(folders)
    return {key: found[0] for key in FOUND_KEYS if (found := find(key, searched))}


def _missing(metric: str, absent: list[str], searched: list[Path]) -> MissingWeightError:
    """One sentence: the files, where they were looked for, and per file the folder to put it in and how to get it."""
    names = [" or ".join(entry(key).patterns) for key in absent]
    todo = [advice(key, searched[0]) for key in absent]
    what = todo[0] if len(absent) == 1 else "; ".join(f"{name}: {line}" for name, line in zip(names, todo))
    return MissingWeightError(f"{LABELS[metric]} needs {' and '.join(names)}, not found under {', '.join(map(str, searched))}; {what}.")


def load_metric(kind: str, folders: list[str | Path] | None = None, check_hash: bool = True, *,
                device: str | torch.device = "cpu") -> torch.nn.Module:
    """The network of one metric, from the files :func:`find_metric_weights` finds, in eval mode on ``device``.

    ``kind``: ``"fid_paper"`` / ``"fid_standard"`` (:func:`pasl.eval.metrics.load_fid_backbone`),
    ``"lpips"`` (:func:`pasl.eval.lpips.load_lpips`, both its files) or ``"arcface"`` (a
    :class:`pasl.pae.PoseAdaptedEncoders` with one IR-50 for every pose pair). ``check_hash=False``
    skips the sha256 checks (tests with synthetic weights); ArcFace has no recorded sha256.

    Raises:
        MissingWeightError: a file is missing; the message names it, the folder to put it in and how to get it.
        WeightFileError: a file has the wrong sha256 or does not load.
        ValueError: ``kind`` is not one of the above.
    """
    if kind not in METRICS:
        raise ValueError(f"kind must be one of {', '.join(METRICS)}, got {kind!r}")
    searched = search_folders(folders)
    found = find_metric_weights(searched)
    absent = [key for key in METRICS[kind] if key not in found]
    if absent:
        raise _missing(kind, absent, searched)
    if kind == "arcface":
        from ..pae import load_pae

        return load_pae(arcface=found["arcface"], device=device)
    if kind == "lpips":
        model = load_lpips(found["lpips_alexnet"], found["lpips"], check_hash=check_hash)
    else:
        flavour = next(name for name, key in FID_KEYS.items() if key == kind)
        model = load_fid_backbone(flavour, found[kind], check_hash=check_hash)
    return model.to(device).eval()


def read_fid_paper(path: str | Path) -> torch.nn.Module:
    """The paper FID backbone from the file ``path``, keys and shapes checked but not its sha256
    (``python -m pasl download`` checks that first; this is its strict load)."""
    return load_fid_backbone("paper", path, check_hash=False)


def read_fid_standard(path: str | Path) -> torch.nn.Module:
    """The standard FID backbone from the file ``path``, as :func:`read_fid_paper`."""
    return load_fid_backbone("standard", path, check_hash=False)


def read_alexnet(path: str | Path) -> torch.nn.Module:
    """LPIPS with the AlexNet features of the file ``path`` (strict keys) and default layer weights, as :func:`read_fid_paper`."""
    return build_lpips(path)


__all__ = ["FOUND_KEYS", "METRICS", "find_metric_weights", "load_metric", "read_alexnet", "read_fid_paper", "read_fid_standard"]


def metric_models(models, detector, protocol: str = "fixed", folders: list[str | Path] | None = None,
                  optional: tuple[str, ...] = ("lpips", "fid_paper", "fid_standard", "arcface")):
    """The scoring networks of a run (:class:`pasl.eval.scores.MetricModels`): DECA and the identity networks
    ``models`` (a :class:`pasl.models.PASLModels`) loaded, the ``detector``, and each :data:`METRICS` kind of
    ``optional`` whose files are all found (an ArcFace file only when ``models`` has no identity network).
    Returns ``(metric_models, the optional kinds left out for want of their files)``."""
    from .scores import MetricModels

    metric = MetricModels(models.shape_encoder, detector, protocol=protocol)
    if models.pae is not None:
        setattr(metric, "arcface" if models.pae.single else "pae", models.pae)
    found = find_metric_weights(folders)
    absent = []
    for kind in optional:
        if kind == "arcface" and metric.arcface is not None:
            continue
        if not all(name in found for name in METRICS[kind]):
            absent.append(kind)
            continue
        loaded = load_metric(kind, folders, device=models.device)
        if kind.startswith("fid_"):
            metric.fid[kind.removeprefix("fid_")] = loaded
        else:
            setattr(metric, kind, loaded)
    return metric, absent
