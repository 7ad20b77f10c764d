"""PASL Reenact: the whole method in one node (align, recompose, render, generate, paste back)."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.align import BACKENDS, DEFAULT_DETECT_EVERY
from ..pasl.csg.codes import RECOMPOSE_MODES
from ..pasl.edit import CHANNELS, MAX_STRENGTH, MotionStrengths
from ..pasl.geometry import ALIGNED_SIZE
from ..pasl.memory import generator_bytes, shape_encoder_bytes
from ..pasl.pipeline import MOTIONS, ReenactOptions, Reenactor, RunSummary, frames_to_chunks
from .align import tracking_inputs
from .host import Progress, detector, free_cache, images_to_bchw, to_comfy_image
from .shape import STRENGTH_TOOLTIPS, motion_problem

FRAMES_PER_STEP = 8


class PASLReenact(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLReenact",
            display_name="PASL Reenact",
            category="PASL",
            description="Renders the source person with the driving face's head pose and expression (large poses "
            "included), pasted back into the driving frames. Frames without a face pass through unchanged.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Image.Input("source", tooltip="A photo of the source person (identity); the first image is used."),
                io.Image.Input("driving", tooltip="A driving photo or video frames (pose and expression)."),
                io.Combo.Input("mode", options=list(RECOMPOSE_MODES), default="recompose",
                               tooltip="recompose = the paper (source face shape); reference = the official demo."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto", tooltip="Face detector."),
                io.Float.Input("smoothing", default=1.0, min=0.0, max=10.0, step=0.1, tooltip="Video crop smoothing (0 = off)."),
                io.Boolean.Input("lock_scale", default=False, tooltip="Fix the video crop's scale (no head-size wobble)."),
                io.Boolean.Input("paste_back", default=True, tooltip="Blend into the driving frames; off = 256x256 faces."),
                io.Float.Input("color_match", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Match the face's colours to the frame (0 = off, 1 = full; with paste_back)."),
                io.Boolean.Input("source_is_crop", default=False, tooltip="The source is already an aligned 256 face crop."),
                io.Boolean.Input("identity_score", default=False, optional=True,
                                 tooltip="Add the PAE identity score (CSIM to the source) of every result to the report; "
                                 "needs identity encoders in PASL Load Models."),
                io.Float.Input("fps", default=25.0, min=0.01, max=1000.0, step=0.01, optional=True,
                               tooltip="Frame rate of the driving frames, for the smoothing (its cutoffs are in Hz); "
                               "link Get Video Components' fps. 25 when unknown."),
                io.Combo.Input("motion", options=list(MOTIONS), default="absolute", optional=True,
                               tooltip="absolute = the driver's pose and expression (the paper); relative = the driver's motion "
                               "since its first face, on top of the source's own pose and expression (recompose only)."),
                *[io.Float.Input(f"{channel}_strength", default=1.0, min=0.0, max=MAX_STRENGTH, step=0.05, optional=True,
                                 tooltip=STRENGTH_TOOLTIPS[channel]) for channel in CHANNELS],
                *tracking_inputs("as the official demo"),
            ],
            outputs=[
                io.Image.Output(display_name="image"),
                io.Image.Output(display_name="faces"),
                io.Mask.Output(display_name="mask"),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def validate_inputs(cls, mode="recompose", motion="absolute", **strengths) -> bool | str:
        return motion_problem("PASL Reenact", mode, motion, strengths) or True

    @classmethod
    def execute(cls, models, source, driving, mode, backend, smoothing, lock_scale, paste_back, color_match, source_is_crop,
                identity_score=False, fps=25.0, tracking=True, detect_every=DEFAULT_DETECT_EVERY, motion="absolute",
                **strengths) -> io.NodeOutput:
        chosen = MotionStrengths(**{c: float(strengths.get(f"{c}_strength", 1.0)) for c in CHANNELS})
        options = ReenactOptions(mode=mode, smoothing=smoothing, lock_scale=lock_scale, paste_back=paste_back,
                                 color_match=color_match, source_alignment="resize" if source_is_crop else "align",
                                 identity_score=identity_score, tracking=tracking, detect_every=detect_every, motion=motion,
                                 strengths=chosen)
        found = detector(backend, load=False)
        frames_per_call = min(FRAMES_PER_STEP, driving.shape[0])
        memory = max(generator_bytes(min(options.batch_size, frames_per_call), models.dtype), shape_encoder_bytes(frames_per_call))
        reenactor = Reenactor(models.load(memory_required=memory, detectors=[found]), found, options, empty_cache=free_cache)
        face = reenactor.encode_source(images_to_bchw(source[:1], torch.device("cpu"), torch.float32))
        progress = Progress(driving.shape[0])
        summary = RunSummary()
        frames = images_to_bchw(driving, torch.device("cpu"), torch.float32)
        images, faces, masks = [], [], []
        for chunk in reenactor.reenact_stream(face, frames_to_chunks(frames, FRAMES_PER_STEP), summary=summary, progress=progress.to,
                                                fps=fps):
            faces.append(to_comfy_image(chunk.faces))
            images.append(to_comfy_image(chunk.frames) if paste_back else faces[-1])
            masks.append(chunk.masks[:, 0] if paste_back else torch.ones(chunk.faces.shape[0], ALIGNED_SIZE, ALIGNED_SIZE))
        free_cache()
        return io.NodeOutput(torch.cat(images), torch.cat(faces), torch.cat(masks), summary.text())
