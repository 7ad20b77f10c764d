"""PASL Paste Back: put generated faces back into the original frames with a feathered mask."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.composite import MASK_SPACES, paste_back, resize_crop_frame
from ..pasl.geometry import ALIGNED_SIZE
from ..pasl.masks import FOREHEAD, MASK_KINDS
from .host import Progress, chunks, free_cache, images_to_bchw, to_comfy_image

FRAMES_PER_STEP = 8


class PASLPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLPasteBack",
            display_name="PASL Paste Back",
            category="PASL",
            description="Warps 256x256 faces back into the frames they were aligned from and blends them in. "
            "Frames without a face come back unchanged (mask 0).",
            inputs=[
                io.Image.Input("faces", tooltip="256x256 faces (from PASL Generate, or after a face restorer/upscaler)."),
                io.Custom("PASL_ALIGN").Input("align", tooltip="From PASL Face Align on the same frames."),
                io.Image.Input("frames", tooltip="The original frames given to PASL Face Align."),
                io.Combo.Input("mask_kind", options=list(MASK_KINDS), default="landmarks",
                               tooltip="landmarks = the face outline; crop = the whole aligned square."),
                io.Float.Input("erode", default=0.05, min=0.0, max=0.5, step=0.01, tooltip="Shrink the mask (fraction of face size)."),
                io.Float.Input("blur", default=0.1, min=0.0, max=0.5, step=0.01, tooltip="Feather width (fraction of face size)."),
                io.Float.Input("color_match", default=0.0, min=0.0, max=1.0, step=0.05, tooltip="Match the face's colours to the frame."),
                io.Mask.Input("mask", optional=True, tooltip="Optional mask that limits where the face goes (see mask_space)."),
                io.Float.Input("forehead", default=FOREHEAD, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip="How far the landmark mask reaches above the brows (fraction of the chin-to-brow distance)."),
                io.Combo.Input("mask_space", options=list(MASK_SPACES), default="frame", optional=True,
                               tooltip="frame = the mask has the frames' size; crop = it is drawn on the 256x256 face crop."),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Mask.Output(display_name="mask")],
        )

    @classmethod
    def execute(cls, faces, align, frames, mask_kind, erode, blur, color_match, mask=None, forehead=FOREHEAD,
                mask_space="frame") -> io.NodeOutput:
        count = frames.shape[0]
        if faces.shape[0] not in (1, count) or len(align) != count:
            raise ValueError(f"PASL Paste Back: {count} frames, {len(align)} alignments and {faces.shape[0]} faces must match")
        if faces.shape[1] != faces.shape[2]:
            raise ValueError(f"PASL Paste Back: faces must be square crops, got {faces.shape[2]}x{faces.shape[1]}")
        size = faces.shape[1]  # 256 from PASL Generate; larger after an upscaler or face restorer
        frame_from_crop, landmarks = resize_crop_frame(align.frame_from_crop, align.landmarks_crop, ALIGNED_SIZE, size)
        progress = Progress(count)
        images, masks = [], []
        for part in chunks(count, FRAMES_PER_STEP):
            face = images_to_bchw(faces if faces.shape[0] == 1 else faces[part], torch.device("cpu"), torch.float32)
            user_mask = None if mask is None else (mask if mask.shape[0] == 1 else mask[part]).reshape(-1, 1, *mask.shape[-2:])
            with torch.inference_mode():
                image, blend = paste_back(
                    images_to_bchw(frames[part], torch.device("cpu"), torch.float32), face.expand(part.stop - part.start, -1, -1, -1),
                    frame_from_crop[part], landmarks[part], align.has_face[part], user_mask,
                    mask_kind=mask_kind, erode=erode, blur=blur, color_match=color_match, forehead=forehead, mask_space=mask_space,
                )
            images.append(to_comfy_image(image))
            masks.append(blend[:, 0].float())
            progress.step(part.stop - part.start)
        if count > FRAMES_PER_STEP:
            free_cache()
        return io.NodeOutput(torch.cat(images), torch.cat(masks))
