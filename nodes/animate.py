"""PASL Animate Portrait: one photo, no driver: the head moves along keyframes (e.g. to profile and back)."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.align import BACKENDS
from ..pasl.edit import CONTROL_NAMES, ExpressionControls
from ..pasl.geometry import ALIGNED_SIZE
from ..pasl.keyframes import EASINGS, animate_codes, parse_keyframes
from ..pasl.pipeline import ReenactOptions, Reenactor
from ..pasl.portrait import paste_posed, pose_source
from .host import Progress, chunks, detector, images_to_bchw, to_comfy_image

FRAMES_PER_STEP = 8
DEFAULT_KEYFRAMES = "0: yaw=0\n24: yaw=75\n48: yaw=0, smile=0.5\n72: yaw=-45, jaw=15\n96: yaw=0"


class PASLAnimatePortrait(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLAnimatePortrait",
            display_name="PASL Animate Portrait",
            category="PASL",
            description="Animates one portrait without a driving video: the head turns (to full profile), the jaw and "
            "expression change along keyframes; frames are pasted back into the photo. Feed them to Create Video.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models"),
                io.Image.Input("source", tooltip="The portrait (the first image is used)."),
                io.String.Input("keyframes", default=DEFAULT_KEYFRAMES, multiline=True,
                                tooltip="One keyframe per line: 'FRAME: yaw=.., pitch=.., roll=.., jaw=.., expression=.., "
                                f"{', '.join(n + '=..' for n in CONTROL_NAMES)}' (angles in degrees; a field left out keeps the photo's)."),
                io.Int.Input("frames", default=0, min=0, max=10000, tooltip="Frames to make; 0 = up to the last keyframe."),
                io.Combo.Input("easing", options=list(EASINGS), default="ease-in-out",
                               tooltip="How motion speeds up and slows down between keyframes."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto", tooltip="Face detector for the photo."),
                io.Boolean.Input("paste_back", default=True, tooltip="Blend into the photo; off = 256x256 faces."),
                io.Float.Input("color_match", default=0.0, min=0.0, max=1.0, step=0.05, tooltip="Match the face's colours to the photo."),
                io.Boolean.Input("source_is_crop", default=False, tooltip="The photo is already an aligned 256 face crop."),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Image.Output(display_name="faces"), io.String.Output(display_name="report")],
        )

    @classmethod
    def validate_inputs(cls, keyframes="", **_) -> bool | str:
        try:
            parse_keyframes(keyframes)
        except ValueError as err:
            return f"PASL Animate Portrait: {err}"
        return True

    @classmethod
    def execute(cls, models, source, keyframes, frames, easing, backend, paste_back, color_match, source_is_crop) -> io.NodeOutput:
        keys = parse_keyframes(keyframes)
        count = frames or keys[-1].frame + 1
        options = ReenactOptions(paste_back=paste_back, color_match=color_match, source_alignment="resize" if source_is_crop else "align")
        loaded = models.load()
        reenactor = Reenactor(loaded, detector(backend), options)
        photo = images_to_bchw(source[:1], torch.device("cpu"), torch.float32)
        face = reenactor.encode_source(photo)
        named = ExpressionControls.from_flame(loaded.flame) if any(k.edit.controls for k in keys) else None
        codes = animate_codes(face.shape.codes, keys, count, easing, named, loaded.flame)
        progress = Progress(count)
        images, faces = [], []
        for part in chunks(count, FRAMES_PER_STEP):
            posed = pose_source(loaded, face.style, face.shape, codes[part], batch_size=FRAMES_PER_STEP)
            faces.append(to_comfy_image(posed.faces))
            if paste_back:
                composite, _ = paste_posed(photo[0], face.alignment.frame_from_crop[0], face.alignment.landmarks_crop[0], posed,
                                           color_match=color_match)
                images.append(to_comfy_image(composite))
            else:
                images.append(faces[-1])
            progress.step(part.stop - part.start)
        report = f"{count} frames from {len(keys)} keyframes ({easing}); {ALIGNED_SIZE}x{ALIGNED_SIZE} faces"
        return io.NodeOutput(torch.cat(images), torch.cat(faces), report)
