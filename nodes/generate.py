"""PASL Generate: style code + depth and landmark maps -> face."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.generate import generate_faces
from .host import Progress, images_to_bchw, to_comfy_image


def _match_batches(style: torch.Tensor, depth: torch.Tensor, landmarks: torch.Tensor) -> int:
    sizes = {"style": style.shape[0], "depth": depth.shape[0], "landmarks": landmarks.shape[0]}
    frames = max(sizes.values())
    wrong = {k: v for k, v in sizes.items() if v not in (1, frames)}
    if wrong:
        raise ValueError(f"PASL Generate: batch sizes must be equal or 1, got {sizes}")
    return frames


class PASLGenerate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLGenerate",
            display_name="PASL Generate",
            category="PASL",
            description="The attention-embedded generator: draws the source's face in the shape given by the depth and landmark maps. "
            "Frames whose maps are both empty (no face found there) give a black face without running the generator.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Custom("PASL_STYLE").Input("style", tooltip="The source's style code, from PASL Pose-Adapted Encode."),
                io.Image.Input("depth", tooltip="Depth map, white = nearest (from PASL Shape Render)."),
                io.Image.Input("landmarks", tooltip="White 68-landmark line drawing on black (from PASL Shape Render)."),
                io.Int.Input("batch_size", default=8, min=1, max=256, tooltip="Frames per generator call; lower it if memory runs out."),
            ],
            outputs=[io.Image.Output(display_name="face")],
        )

    @classmethod
    def execute(cls, models, style, depth, landmarks, batch_size=8) -> io.NodeOutput:
        frames = _match_batches(style, depth, landmarks)
        loaded = models.load()
        cpu = torch.device("cpu")
        maps = [images_to_bchw(t, cpu, torch.float32) for t in (depth, landmarks)]  # views: moved per batch
        maps = [m.expand(frames, -1, -1, -1) if m.shape[0] == 1 else m for m in maps]  # batch-1 inputs broadcast
        progress = Progress(frames)
        faces = generate_faces(loaded.aeg.generator, style, *maps, batch_size=batch_size, progress=progress.to, out_device=cpu)
        return io.NodeOutput(to_comfy_image(faces))
