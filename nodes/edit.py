"""PASL Shape Edit: turn the head (to full profile), open the jaw, change the expression, on FLAME codes."""

from __future__ import annotations

import os

import torch
from comfy_api.v0_0_2 import io, ui

from ..pasl.edit import (
    CONTROL_NAMES,
    MAX_JAW,
    MAX_PITCH,
    MAX_ROLL,
    MAX_YAW,
    ExpressionControls,
    HeadEdit,
    edit_codes,
    load_preset,
    save_preset,
)
from ..pasl.geometry import ALIGNED_SIZE
from ..pasl.masks import face_mask
from ..pasl.shape import face_points, render_conditioning, shape_codes
from .host import NO_PRESET, Progress, chunks, crop_detector, preset_files, preset_folder, to_comfy_image

FRAMES_PER_STEP = 16
CONTROL_TOOLTIPS = {
    "smile": "Mouth corners out and up.",
    "mouth_open": "Lower lip down (the jaw slider opens the jaw itself).",
    "brows_up": "Both brows up.",
    "brows_frown": "Inner brows down and together.",
    "eyes_closed": "Upper lids down onto the lower lids.",
}


def preset_name(text: str) -> str:
    """``text`` as a preset file name (``smile`` -> ``smile.json``), or "" when it has nothing usable:
    no folders, nothing hidden, so a name can never write outside the presets folder."""
    stem = "".join(c for c in text.strip().removesuffix(".json") if c.isalnum() or c in " -_").strip()
    return f"{stem}.json" if stem else ""


def preview(depth: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """The edited shape as one picture: the depth map in grey with the landmark drawing in orange."""
    lines = landmarks[:, :1]
    orange = torch.tensor([1.0, 0.55, 0.1]).view(1, 3, 1, 1)
    return depth * (1 - lines) + orange * lines


class PASLShapeEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        angle = dict(step=0.5, display_mode=io.NumberDisplay.slider)
        return io.Schema(
            node_id="PASLShapeEdit",
            display_name="PASL Shape Edit",
            category="PASL",
            description="Edits a face's 3D shape codes: head yaw/pitch/roll (yaw up to a full profile, ±90°), jaw opening, "
            "expression strength and named expression controls. Feed the result to PASL Shape Render -> PASL Generate; "
            "give its mask to PASL Paste Back (mask_space crop) so a turned face also covers where the old one was.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Custom("PASL_ALIGN").Input("source_align", optional=True,
                                              tooltip="PASL Face Align of the photo to edit (its faces are read by DECA here)."),
                io.Custom("PASL_SHAPE").Input("shape", optional=True,
                                              tooltip="Or shapes from PASL Shape Recompose (edit a reenactment); wins over source_align."),
                io.Combo.Input("angles", options=["add", "set"], default="add",
                               tooltip="add = turn by these angles (0 = unchanged); set = these are the head's angles and jaw opening."),
                io.Float.Input("yaw", default=0.0, min=-MAX_YAW, max=MAX_YAW,
                               tooltip="Degrees; + turns the face towards the image's right.", **angle),
                io.Float.Input("pitch", default=0.0, min=-MAX_PITCH, max=MAX_PITCH, tooltip="Degrees; + turns the face down.", **angle),
                io.Float.Input("roll", default=0.0, min=-MAX_ROLL, max=MAX_ROLL, tooltip="Degrees; + tilts the head counter-clockwise.",
                               **angle),
                io.Float.Input("jaw", default=0.0, min=-MAX_JAW, max=MAX_JAW, tooltip="Jaw opening in degrees (set: 0 = closed).", **angle),
                io.Float.Input("expression", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Factor on the face's own expression (0 = neutral, 1 = unchanged, 2 = exaggerated)."),
                *[io.Float.Input(name, default=0.0, min=-2.0, max=2.0, step=0.05, tooltip=CONTROL_TOOLTIPS[name])
                  for name in CONTROL_NAMES],
                io.Boolean.Input("keep_centre", default=True, optional=True,
                                 tooltip="Keep the face centred in its crop (FLAME turns about the neck)."),
                io.Combo.Input("preset", options=preset_files(), default=NO_PRESET, optional=True,
                               tooltip="An edit saved before (models/pasl/presets/*.json); when chosen it replaces the sliders."),
                io.String.Input("save_preset_as", default="", optional=True,
                                tooltip="A name to keep this edit as models/pasl/presets/<name>.json (empty = don't save)."),
            ],
            outputs=[
                io.Custom("PASL_SHAPE").Output(display_name="shape"),
                io.Image.Output(display_name="preview"),
                io.Mask.Output(display_name="mask"),
            ],
        )

    @classmethod
    def validate_inputs(cls, angles="add", jaw=0.0, save_preset_as="", **_) -> bool | str:
        if angles == "set" and jaw < 0:
            return "PASL Shape Edit: with angles = set, jaw is the opening itself and must be >= 0"
        if save_preset_as.strip() and not preset_name(save_preset_as):
            return f"PASL Shape Edit: {save_preset_as!r} is not a usable preset name (letters, digits, spaces, - and _)"
        return True

    @classmethod
    def execute(cls, models, angles, yaw, pitch, roll, jaw, expression, source_align=None, shape=None, keep_centre=True,
                preset=NO_PRESET, save_preset_as="", **controls) -> io.NodeOutput:
        loaded = models.load(detectors=[crop_detector(source_align)] if shape is None and source_align is not None else [])
        loaded.require_shape_stage()
        if shape is None and source_align is None:
            raise ValueError("PASL Shape Edit: connect source_align (a photo's Face Align) or shape (from PASL Shape Recompose)")
        if shape is None:
            with torch.inference_mode():
                shape = shape_codes(loaded.shape_encoder, source_align.crops, source_align.landmarks_crop, source_align.has_face,
                                    crop_landmarks="refit", detector=crop_detector(source_align))
        amounts = {name: float(controls.get(name, 0.0)) for name in CONTROL_NAMES}
        edit = HeadEdit(yaw=yaw, pitch=pitch, roll=roll, add=angles == "add", jaw=jaw, expression=expression, controls=amounts,
                        keep_centre=keep_centre)
        if preset != NO_PRESET:
            edit = load_preset(os.path.join(preset_folder(), preset))
        if save_preset_as.strip():
            save_preset(edit, os.path.join(preset_folder(), preset_name(save_preset_as)))
        named = ExpressionControls.from_flame(loaded.flame) if any(edit.controls.values()) else None
        progress = Progress(shape.batch_size)
        edited, pictures, masks = [], [], []
        for part in chunks(shape.batch_size, FRAMES_PER_STEP):
            with torch.inference_mode():
                before = shape[part]
                after = before.with_codes(edit_codes(before.codes, edit, named, loaded.flame))
                depth, landmarks = render_conditioning(loaded.flame, loaded.faces, after)
                outline = torch.maximum(face_mask(face_points(loaded.flame, before).cpu(), ALIGNED_SIZE),
                                        face_mask(face_points(loaded.flame, after).cpu(), ALIGNED_SIZE))
                outline = outline * after.face_mask.view(-1, 1, 1, 1)
            edited.append(after)
            pictures.append(to_comfy_image(preview(depth.cpu(), landmarks.cpu())))
            masks.append(outline[:, 0])
            progress.step(part.stop - part.start)
        picture = torch.cat(pictures)
        return io.NodeOutput(type(shape).cat(edited), picture, torch.cat(masks), ui=ui.PreviewImage(picture, cls=cls))
