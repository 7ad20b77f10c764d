"""PASL Shape Recompose: the source's 3D face shape with the driver's expression, pose and camera."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.csg.codes import RECOMPOSE_MODES
from ..pasl.csg.cycle import CycleReport
from ..pasl.edit import CHANNELS, MAX_STRENGTH, MotionStrengths
from ..pasl.shape import CROP_LANDMARKS, ShapeCodes, recompose_shapes, shape_codes
from .host import Progress, chunks, crop_detector

FRAMES_PER_STEP = 16
MOTIONS = ("absolute", "relative")
STRENGTH_TOOLTIPS = {
    "head": "How much of the driver's head rotation (0 = keep the source's, 1 = all, 2 = twice).",
    "jaw": "How much of the driver's jaw opening.",
    "expression": "How much of the driver's expression.",
    "camera": "How much of the driver's framing (head size and position in the crop).",
}


def motion_problem(node: str, mode: str, motion: str, strengths: dict) -> str | None:
    """Why these motion inputs cannot run (relative or weighted motion needs the source's own shape), or None."""
    moved = motion == "relative" or any(strengths.get(f"{c}_strength", 1.0) != 1.0 for c in CHANNELS)
    if moved and mode != "recompose":
        return f"{node}: relative motion and strengths need mode = recompose (the source's own shape)"
    return None


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
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Custom("PASL_ALIGN").Input("source_align", tooltip="From PASL Face Align on the source image (first face used)."),
                io.Custom("PASL_ALIGN").Input("driver_align", tooltip="From PASL Face Align on the driving frames."),
                io.Combo.Input("mode", options=list(RECOMPOSE_MODES), default="recompose",
                               tooltip="recompose = the paper; reference = the official demo (driver's own shape); "
                               "shape_only = the VoxCeleb test protocol."),
                io.Boolean.Input("cycle_check", default=False, tooltip="Measure how well each shape survives render -> re-encode."),
                io.Int.Input("refine_steps", default=0, min=0, max=20, tooltip="Cycle-consistency refinement steps (slow; 0 = off)."),
                io.Combo.Input("crop_landmarks", options=list(CROP_LANDMARKS), default="refit", optional=True,
                               tooltip="redetect = DECA's own detection on each aligned crop (the official code); "
                               "mapped = reuse Face Align's landmarks (one detection cheaper, slightly different crops); "
                               "refit = the landmark stage alone in the box of Face Align's landmarks."),
                io.Combo.Input("motion", options=list(MOTIONS), default="absolute", optional=True,
                               tooltip="absolute = the driver's pose and expression (the paper); relative = the driver's motion "
                               "since its first frame with a face, on top of the source's own pose and expression (recompose only)."),
                *[io.Float.Input(f"{channel}_strength", default=1.0, min=0.0, max=MAX_STRENGTH, step=0.05, optional=True,
                                 tooltip=STRENGTH_TOOLTIPS[channel]) for channel in CHANNELS],
            ],
            outputs=[io.Custom("PASL_SHAPE").Output(display_name="shape"), io.String.Output(display_name="cycle_report")],
        )

    @classmethod
    def validate_inputs(cls, mode="recompose", motion="absolute", **strengths) -> bool | str:
        return motion_problem("PASL Shape Recompose", mode, motion, strengths) or True

    @classmethod
    def execute(cls, models, source_align, driver_align, mode, cycle_check, refine_steps, crop_landmarks="refit",
                motion="absolute", **strengths) -> io.NodeOutput:
        chosen = MotionStrengths(**{c: float(strengths.get(f"{c}_strength", 1.0)) for c in CHANNELS})
        relative = motion == "relative"
        weighted = chosen if (relative or chosen != MotionStrengths()) else None  # None: the paper's code swap, bit for bit
        reference = None
        uses_detector = crop_landmarks in ("redetect", "refit")
        loaded = models.load(detectors=[crop_detector(a) for a in (source_align, driver_align)] if uses_detector else [])
        loaded.require_shape_stage()
        progress = Progress(len(driver_align) + 1)

        def encode(alignment, part: slice) -> ShapeCodes:
            with torch.inference_mode():  # frames without a face are flagged and render as empty maps
                codes = shape_codes(loaded.shape_encoder, alignment.crops[part], alignment.landmarks_crop[part],
                                    alignment.has_face[part], crop_landmarks=crop_landmarks,
                                    detector=crop_detector(alignment) if crop_landmarks in ("redetect", "refit") else None)
            progress.step(part.stop - part.start)
            return codes

        source = encode(source_align, slice(0, 1))
        shapes, reports = [], []
        for part in chunks(len(driver_align), FRAMES_PER_STEP):
            driver = encode(driver_align, part)
            if relative and reference is None and bool(driver.face_mask.any()):
                reference = driver.codes.index(int(driver.face_mask.nonzero()[0]))  # the first frame with a face
            with torch.inference_mode():  # refine_codes switches gradients back on for itself
                shape, report = recompose_shapes(loaded, source, driver, mode, refine_steps, cycle_check, strengths=weighted,
                                                 reference=reference if relative else None)
            shapes.append(shape)
            reports += [report] if report is not None else []
        text = CycleReport.cat(reports).summary() if reports else "cycle check off"
        return io.NodeOutput(ShapeCodes.cat(shapes), text)
