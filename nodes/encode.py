"""PASL Pose-Adapted Encode: source face(s) -> style code."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.aeg import IMAGE_SIZE
from ..pasl.imageops import resize_square

from .host import Progress, images_to_bchw


class PASLEncodeStyle(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLEncodeStyle",
            display_name="PASL Pose-Adapted Encode",
            category="PASL",
            description="Encodes the source face (an aligned 256x256 crop works best) into PASL's 128-d style code.",
            inputs=[io.Custom("PASL_MODEL").Input("models"), io.Image.Input("source", tooltip="One face, or a batch (one code each).")],
            outputs=[io.Custom("PASL_STYLE").Output(display_name="style")],
        )

    @classmethod
    def execute(cls, models, source) -> io.NodeOutput:
        loaded = models.load()
        aeg, device = loaded.aeg, loaded.device
        progress = Progress(source.shape[0])
        codes = []
        for image in source.split(1):
            face = resize_square(images_to_bchw(image, device, models.dtype), IMAGE_SIZE)
            with torch.inference_mode():
                codes.append(aeg.style_encoder(face).float().cpu())
            progress.step()
        return io.NodeOutput(torch.cat(codes))
