"""PASL Generate: style code + depth and landmark maps -> face."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.aeg import IMAGE_SIZE
from ..pasl.imageops import resize_square

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
                io.Custom("PASL_MODEL").Input("models"),
                io.Custom("PASL_STYLE").Input("style"),
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
        aeg, device = loaded.aeg, loaded.device
        progress = Progress(frames)
        faces = []
        for start in range(0, frames, batch_size):
            index = torch.arange(start, min(start + batch_size, frames))
            pick = lambda t: t[index.clamp(max=t.shape[0] - 1)]  # noqa: E731  (batch-1 inputs broadcast)
            maps = [resize_square(images_to_bchw(pick(t), device, models.dtype), IMAGE_SIZE) for t in (depth, landmarks)]
            drawn = (maps[0].flatten(1).amax(1) > 0) | (maps[1].flatten(1).amax(1) > 0)
            out = torch.zeros_like(maps[0])
            if bool(drawn.any()):
                with torch.inference_mode():
                    out[drawn] = aeg.generator(maps[0][drawn], maps[1][drawn], pick(style)[drawn.cpu()].to(device=device, dtype=models.dtype))
            faces.append(to_comfy_image(out))
            progress.step(len(index))
        return io.NodeOutput(torch.cat(faces))
