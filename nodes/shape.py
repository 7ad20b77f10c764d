"""PASL Shape Recompose: the source's 3D face shape with the driver's expression, pose and camera."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.csg.codes import RECOMPOSE_MODES
from ..pasl.csg.cycle import CycleReport
from ..pasl.shape import CROP_LANDMARKS, ShapeCodes, recompose_shapes, shape_codes
from .host import Progress, chunks, crop_detector

FRAMES_PER_STEP = 16


class PASLShapeRecompose(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLShapeRecompose",
            display_name="PASL Shape Recompose",
            category="PASL",
            description="Cycle-consistent shape generator: reads FLAME codes of both faces (DECA) and recomposes "
            "the source's identity with the driver's expression, head pose and camera.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models"),
                io.Custom("PASL_ALIGN").Input("source_align", tooltip="From PASL Face Align on the source image (first face used)."),
                io.Custom("PASL_ALIGN").Input("driver_align", tooltip="From PASL Face Align on the driving frames."),
                io.Combo.Input("mode", options=list(RECOMPOSE_MODES), default="recompose",
                               tooltip="recompose = the paper; reference = the official demo (driver's own shape); "
                               "shape_only = the VoxCeleb test protocol."),
                io.Boolean.Input("cycle_check", default=False, tooltip="Measure how well each shape survives render -> re-encode."),
                io.Int.Input("refine_steps", default=0, min=0, max=20, tooltip="Cycle-consistency refinement steps (slow; 0 = off)."),
                io.Combo.Input("crop_landmarks", options=list(CROP_LANDMARKS), default="redetect", optional=True,
                               tooltip="redetect = DECA's own landmark pass on each aligned crop (the official code); "
                               "mapped = reuse Face Align's landmarks (one detection cheaper, slightly different crops)."),
            ],
            outputs=[io.Custom("PASL_SHAPE").Output(display_name="shape"), io.String.Output(display_name="cycle_report")],
        )

    @classmethod
    def execute(cls, models, source_align, driver_align, mode, cycle_check, refine_steps, crop_landmarks="redetect") -> io.NodeOutput:
        redetect = [crop_detector(a) for a in (source_align, driver_align)] if crop_landmarks == "redetect" else []
        loaded = models.load(detectors=redetect)
        loaded.require_shape_stage()
        progress = Progress(len(driver_align) + 1)

        def encode(alignment, part: slice) -> ShapeCodes:
            with torch.inference_mode():  # frames without a face are flagged and render as empty maps
                codes = shape_codes(loaded.shape_encoder, alignment.crops[part], alignment.landmarks_crop[part],
                                    alignment.has_face[part], crop_landmarks=crop_landmarks,
                                    detector=crop_detector(alignment) if crop_landmarks == "redetect" else None)
            progress.step(part.stop - part.start)
            return codes

        source = encode(source_align, slice(0, 1))
        shapes, reports = [], []
        for part in chunks(len(driver_align), FRAMES_PER_STEP):
            with torch.inference_mode():  # refine_codes switches gradients back on for itself
                shape, report = recompose_shapes(loaded, source, encode(driver_align, part), mode, refine_steps, cycle_check)
            shapes.append(shape)
            reports += [report] if report is not None else []
        text = CycleReport.cat(reports).summary() if reports else "cycle check off"
        return io.NodeOutput(ShapeCodes.cat(shapes), text)
