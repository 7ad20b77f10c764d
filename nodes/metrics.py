"""PASL Metrics: score a workflow's results like the paper's benchmarks (identity, pose, expression, pixels)."""

from __future__ import annotations

import math

import torch
from comfy_api.v0_0_2 import io

from ..pasl.align.detect import BACKENDS
from ..pasl.eval.scores import collect, markdown_table, score_faces, summarise
from ..pasl.eval.weights import metric_models
from ..pasl.pae import PROTOCOLS
from .host import Progress, chunks, detector, folders, images_to_bchw

FACES_PER_STEP = 16


def _batch(images, part: slice, count: int) -> torch.Tensor | None:
    """Rows ``part`` of an optional IMAGE input (one image stands for every row)."""
    if images is None:
        return None
    chosen = images if images.shape[0] == 1 else images[part]
    batch = images_to_bchw(chosen, torch.device("cpu"), torch.float32)
    return batch.expand(part.stop - part.start, -1, -1, -1) if images.shape[0] == 1 and count > 1 else batch


class PASLMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLMetrics",
            display_name="PASL Metrics",
            category="PASL",
            description="Scores results as python -m pasl.eval does: head-pose error against the drivers (ARD = yaw), "
            "expression and landmark error, identity similarity to the source (PAE-CSIM, or ArcFace-CSIM with that "
            "network), and with ground truth SSIM, PSNR and LPIPS (when its weights are in models/pasl). Give aligned "
            "face crops (PASL Generate's faces, PASL Face Align's crops).",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models (DECA reads every face's pose; "
                                              "identity encoders give CSIM)."),
                io.Image.Input("results", tooltip="The faces to score: aligned crops, e.g. PASL Generate's output."),
                io.Image.Input("drivers", tooltip="The driving face crops, one per result (PASL Face Align's crops)."),
                io.Image.Input("sources", optional=True,
                               tooltip="The source face crop (one for all, or one per result): identity similarity."),
                io.Image.Input("ground_truth", optional=True,
                               tooltip="What each result should look like (self-reenactment): SSIM, PSNR, LPIPS."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto",
                               tooltip="Landmark detector for DECA's crop box and the landmark error."),
                io.Combo.Input("protocol", options=list(PROTOCOLS), default="fixed",
                               tooltip="PAE-CSIM recipe: fixed, or official (the authors' mean_pae_csim.py)."),
            ],
            outputs=[io.String.Output(display_name="report"), io.Float.Output(display_name="csim"),
                     io.Float.Output(display_name="ard")],
        )

    @classmethod
    def execute(cls, models, results, drivers, backend, protocol, sources=None, ground_truth=None) -> io.NodeOutput:
        count = results.shape[0]
        for name, images, one_for_all in (("drivers", drivers, False), ("sources", sources, True),
                                          ("ground_truth", ground_truth, True)):
            if images is not None and images.shape[0] != count and not (one_for_all and images.shape[0] == 1):
                raise ValueError(f"PASL Metrics: {count} results but {images.shape[0]} {name}; give one per result"
                                 + (" (or one for all)" if one_for_all else ""))
        if count == 0:
            return io.NodeOutput("no results given", math.nan, math.nan)
        found = detector(backend, load=False)
        loaded = models.load(detectors=(found,))
        loaded.require_shape_stage()
        metric, _ = metric_models(loaded, found, protocol, folders(), optional=("lpips",) if ground_truth is not None else ())
        progress = Progress(count)
        values: dict[str, list[float]] = {}
        for part in chunks(count, FACES_PER_STEP):
            scores = score_faces(metric, _batch(results, part, count), _batch(drivers, part, count),
                                 _batch(sources, part, count), _batch(ground_truth, part, count))
            collect(values, scores)
            progress.step(part.stop - part.start)
        summary = summarise(values)
        csim = summary.get("pae_csim", summary.get("arcface_csim", {"mean": math.nan}))["mean"]
        return io.NodeOutput(markdown_table(summary, f"PASL Metrics: {count} faces"), csim, summary["ard"]["mean"])

