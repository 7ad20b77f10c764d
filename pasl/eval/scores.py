"""Score reenacted faces against their drivers, sources and ground truths: the benchmark's numbers.

One function, :func:`score_faces`, turns batches of aligned crops into per-pair values; whichever
metric networks are loaded (:class:`MetricModels`) decide which values there are. The runner
(:mod:`pasl.eval.report`) and the ``PASL Metrics`` node both call it, so a workflow's numbers and a
benchmark's are the same numbers. :func:`summarise` averages them into the paper-style table.

Pose and expression are read by DECA on every face (:func:`pasl.eval.measure.measure_crops`), so the
pose error compares the fake with its driver measured the same way (ARD = mean |yaw error|, the
paper's metric, which it measured with 3DDFA-V2 instead: see :func:`pasl.eval.metrics.pose_errors`).
CSIM follows the release: the PAE network is picked by the two faces' measured yaws, and the
identity score is fake vs *source*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..geometry import ALIGNED_SIZE
from ..imageops import resize_square
from ..pae import PoseAdaptedEncoders, Protocol
from .measure import FaceMeasures, measure_crops
from .metrics import expression_error, fid, fid_features, landmark_distance, pose_errors, psnr, ssim_official

SSIM_RANGE = 2.0
"""SSIM's ``L`` in the release's ``[-1, 1]`` units: what its auto-detection gives for any batch holding a pixel
darker than 0.25 (every real photo), fixed here so a pair's SSIM does not depend on its batch."""


@dataclass
class MetricModels:
    """The networks scoring needs. ``shape_encoder`` (DECA) and ``detector`` are required; every other
    entry is optional and its metrics are left out without it."""

    shape_encoder: torch.nn.Module
    detector: object
    pae: PoseAdaptedEncoders | None = None
    arcface: PoseAdaptedEncoders | None = None
    lpips: torch.nn.Module | None = None
    fid: dict[str, torch.nn.Module] = field(default_factory=dict)
    protocol: Protocol = "fixed"

    def available(self) -> list[str]:
        """Names of the optional metrics these models give (for messages and the report)."""
        names = ["pose", "expression", "landmarks", "ssim", "psnr"]
        names += [n for n, m in (("pae_csim", self.pae), ("arcface_csim", self.arcface), ("lpips", self.lpips)) if m is not None]
        return names + [f"fid_{flavour}" for flavour in sorted(self.fid)]


METRICS: dict[str, tuple[str, str]] = {
    "pae_csim": ("higher", "PAE-CSIM, fake vs source (identity kept; the paper's CSIM)"),
    "arcface_csim": ("higher", "ArcFace-CSIM, fake vs source"),
    "ard": ("lower", "ARD: |yaw fake - yaw driver|, degrees (DECA)"),
    "pitch_error": ("lower", "|pitch fake - pitch driver|, degrees"),
    "roll_error": ("lower", "|roll fake - roll driver|, degrees"),
    "exp_l1": ("lower", "expression error: mean |FLAME exp fake - driver|"),
    "jaw_deg": ("lower", "jaw rotation error, degrees"),
    "lmd": ("lower", "landmark distance fake vs driver, / outer-eye distance"),
    "ssim": ("higher", "SSIM fake vs ground truth (release's definition)"),
    "psnr": ("higher", "PSNR fake vs ground truth, dB"),
    "lpips": ("lower", "LPIPS fake vs ground truth (release's AlexNet)"),
    "pae_csim_driver": ("", "PAE-CSIM, fake vs driver"),
    "pae_csim_source_driver": ("", "PAE-CSIM, source vs driver"),
    "arcface_csim_driver": ("", "ArcFace-CSIM, fake vs driver"),
    "fid_paper": ("lower", "FID fakes vs sources, torchvision Inception (release)"),
    "fid_standard": ("lower", "FID fakes vs sources, pytorch-fid Inception"),
}
"""Every reported metric: which way is better, and what it is. The table lists them in this order."""


def _nan_where(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.where(keep, values.double(), torch.full_like(values, math.nan, dtype=torch.float64))


def _csim(encoders: PoseAdaptedEncoders, a: torch.Tensor, b: torch.Tensor, yaw_a: torch.Tensor, yaw_b: torch.Tensor,
          protocol: Protocol) -> torch.Tensor:
    with torch.inference_mode():
        values, _ = encoders.similarity(a, b, yaw_a.float(), yaw_b.float(), protocol)
    return values.double().cpu()


def score_faces(
    models: MetricModels,
    fakes: torch.Tensor,
    drivers: torch.Tensor,
    sources: torch.Tensor | None = None,
    ground_truth: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-pair values ``{name: (B,) float64}`` for ``(B, 3, H, W)`` crops in [0, 1] (resized to 256).

    ``sources`` (the identities) enable the CSIM metrics; ``ground_truth`` (self-reenactment) enables
    SSIM, PSNR and LPIPS. Also returned: ``yaw_fake``, ``yaw_driver`` (and ``yaw_source``) and
    ``found_fake``/``found_driver`` (1 where the landmark detector found the face; landmark distance
    is NaN where it did not, pose and expression fall back to DECA on the whole crop).
    """
    count = fakes.shape[0]
    if drivers.shape[0] != count or (sources is not None and sources.shape[0] != count) or (
            ground_truth is not None and ground_truth.shape[0] != count):
        raise ValueError("score_faces needs one driver (and source / ground truth, when given) per fake, "
                         f"got {count} fakes, {drivers.shape[0]} drivers"
                         + ("" if sources is None else f", {sources.shape[0]} sources")
                         + ("" if ground_truth is None else f", {ground_truth.shape[0]} ground truths"))
    fakes, drivers = (resize_square(x.detach().float().cpu(), ALIGNED_SIZE) for x in (fakes, drivers))
    fake_m = measure_crops(models.shape_encoder, models.detector, fakes)
    driver_m = measure_crops(models.shape_encoder, models.detector, drivers)
    out: dict[str, torch.Tensor] = {
        "yaw_fake": fake_m.yaw, "yaw_driver": driver_m.yaw,
        "found_fake": fake_m.found.double(), "found_driver": driver_m.found.double(),
    }
    pose = pose_errors(fake_m.codes, driver_m.codes)
    out.update(ard=pose["yaw"], pitch_error=pose["pitch"], roll_error=pose["roll"])
    expression = expression_error(fake_m.codes, driver_m.codes)
    out.update(exp_l1=expression["exp_l1"], jaw_deg=expression["jaw_deg"])
    both = fake_m.found & driver_m.found
    lmd = torch.full((count,), math.nan, dtype=torch.float64)
    if bool(both.any()):
        lmd[both] = landmark_distance(fake_m.landmarks[both], driver_m.landmarks[both])
    out["lmd"] = lmd
    if sources is not None:
        sources = resize_square(sources.detach().float().cpu(), ALIGNED_SIZE)
        source_m: FaceMeasures = measure_crops(models.shape_encoder, models.detector, sources)
        out["yaw_source"] = source_m.yaw
        for name, encoders in (("pae_csim", models.pae), ("arcface_csim", models.arcface)):
            if encoders is None:
                continue
            out[name] = _csim(encoders, fakes, sources, fake_m.yaw, source_m.yaw, models.protocol)
            out[f"{name}_driver"] = _csim(encoders, fakes, drivers, fake_m.yaw, driver_m.yaw, models.protocol)
            if name == "pae_csim":
                out["pae_csim_source_driver"] = _csim(encoders, sources, drivers, source_m.yaw, driver_m.yaw, models.protocol)
    if ground_truth is not None:
        out.update(ground_truth_scores(models, fakes, ground_truth))
    return out


def ground_truth_scores(models: MetricModels, fakes: torch.Tensor, ground_truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """SSIM, PSNR (and LPIPS when loaded) of fakes against their ground truths, ``(B,)`` float64 each."""
    fakes, gt = (resize_square(x.detach().float().cpu(), ALIGNED_SIZE).double() for x in (fakes, ground_truth))
    out = {"ssim": ssim_official(fakes, gt, data_range=SSIM_RANGE), "psnr": psnr(fakes, gt)}
    if models.lpips is not None:
        param = next(models.lpips.parameters())
        with torch.inference_mode():
            out["lpips"] = models.lpips(fakes.to(param.device, param.dtype), gt.to(param.device, param.dtype)).double().cpu()
    return out


def distribution_scores(models: MetricModels, fakes: torch.Tensor, sources: torch.Tensor) -> dict[str, float]:
    """FID of every loaded flavour between the fakes and the sources (the release's pairing); NaN with
    fewer than two images (a covariance needs two). Meaningful only over hundreds of images."""
    scores = {}
    for flavour, backbone in sorted(models.fid.items()):
        if fakes.shape[0] < 2:
            scores[f"fid_{flavour}"] = math.nan
            continue
        scores[f"fid_{flavour}"] = fid(fid_features(fakes, backbone), fid_features(sources, backbone))
    return scores


def collect(values: dict[str, list[float]], scores: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Append one batch's :func:`score_faces` values to ``values`` (name -> every pair's value so far)."""
    for name, batch in scores.items():
        values.setdefault(name, []).extend(batch.tolist())
    return values


def summarise(values: dict[str, list[float]], totals: dict[str, float] | None = None) -> dict[str, dict]:
    """``{metric: {"mean", "n", "better", "what"}}`` over the finite per-pair values of each metric in
    :data:`METRICS` (``totals``: values already aggregated, e.g. FID, ``n`` = pairs)."""
    summary = {}
    for name, (better, what) in METRICS.items():
        if totals is not None and name in totals:
            summary[name] = {"mean": totals[name], "n": totals.get("_pairs", 0), "better": better, "what": what}
            continue
        finite = [v for v in values.get(name, []) if math.isfinite(v)]
        if name in values:
            summary[name] = {"mean": sum(finite) / len(finite) if finite else math.nan, "n": len(finite), "better": better,
                             "what": what}
    return summary


def markdown_table(summary: dict[str, dict], title: str = "") -> str:
    """The summary as a Markdown table (metric, value, pairs, better, meaning)."""
    arrows = {"higher": "↑", "lower": "↓", "": ""}
    lines = ([f"### {title}", ""] if title else []) + ["| metric | value | pairs | | what |", "|---|---:|---:|:-:|---|"]
    for name, row in summary.items():
        value = "n/a" if not math.isfinite(row["mean"]) else f"{row['mean']:.4f}"
        what = row["what"].replace("|", "\\|")  # a bare | would end the cell
        lines.append(f"| {name} | {value} | {row['n']} | {arrows[row['better']]} | {what} |")
    return "\n".join(lines) + "\n"
