"""PASL Shape Render: FLAME codes -> the depth map and landmark drawing the generator is conditioned on."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.shape import render_conditioning
from .host import Progress, chunks, to_comfy_image

FRAMES_PER_STEP = 16


class PASLShapeRender(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLShapeRender",
            display_name="PASL Shape Render",
            category="PASL",
            description="Renders the recomposed 3D shape as PASL's two conditioning maps (256x256): a normalised "
            "depth map (white = nearest) and white 68-landmark lines. Inspect or edit them before PASL Generate.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Custom("PASL_SHAPE").Input("shape", tooltip="The recomposed 3D face codes, from PASL Shape Recompose."),
                io.Boolean.Input("flatten", default=False, tooltip="The official test protocol's 'flattened' maps (off in the demos)."),
            ],
            outputs=[io.Image.Output(display_name="depth"), io.Image.Output(display_name="landmarks")],
        )

    @classmethod
    def execute(cls, models, shape, flatten) -> io.NodeOutput:
        loaded = models.load()
        loaded.require_shape_stage()
        progress = Progress(shape.batch_size)
        depth, landmarks = [], []
        for part in chunks(shape.batch_size, FRAMES_PER_STEP):
            with torch.inference_mode():
                depth_part, landmark_part = render_conditioning(loaded.flame, loaded.faces, shape[part], flatten=flatten)
            depth.append(to_comfy_image(depth_part))
            landmarks.append(to_comfy_image(landmark_part))
            progress.step(part.stop - part.start)
        return io.NodeOutput(torch.cat(depth), torch.cat(landmarks))
