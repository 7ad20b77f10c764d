"""PASL Pose-Adapted Encode: source face(s) -> style code, and (with PAE weights) identity + pose bin."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.geometry import ALIGNED_SIZE
from ..pasl.identity import encode_identity
from ..pasl.imageops import resize_square
from ..pasl.pae import pose_bin
from ..pasl.shape import CROP_LANDMARKS, face_yaw, shape_codes
from .host import Progress, crop_detector, images_to_bchw


def _pose_text(yaw: torch.Tensor) -> str:
    return "\n".join(f"face {i}: {pose_bin(y)} (yaw {y:+.1f})" for i, y in enumerate(yaw.tolist()))


class PASLEncodeStyle(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLEncodeStyle",
            display_name="PASL Pose-Adapted Encode",
            category="PASL",
            description="Encodes the source face (an aligned 256x256 crop works best) into PASL's 128-d style code. "
            "With PAE weights loaded it also gives the source's identity (for PASL Identity Score) and its pose bin "
            "(F: |yaw| <= 30, S: 30-60, P: >= 60; the yaw needs DECA).",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Image.Input("source", tooltip="One face, or a batch (one code each)."),
                io.Custom("PASL_ALIGN").Input(
                    "source_align",
                    optional=True,
                    tooltip="PASL Face Align of the same source: its landmarks give DECA a tighter crop for the yaw.",
                ),
                io.Combo.Input(
                    "crop_landmarks",
                    options=list(CROP_LANDMARKS),
                    default="redetect",
                    optional=True,
                    tooltip="With source_align: where DECA's crop for the yaw comes from; keep it equal to "
                    "PASL Shape Recompose's so both read the same yaw.",
                ),
            ],
            outputs=[
                io.Custom("PASL_STYLE").Output(display_name="style"),
                io.Custom("PASL_IDENTITY").Output(display_name="identity", tooltip="None without PAE/ArcFace weights or DECA."),
                io.String.Output(display_name="pose_bin"),
            ],
        )

    @classmethod
    def execute(cls, models, source, source_align=None, crop_landmarks="redetect") -> io.NodeOutput:
        loaded = models.load()
        aeg, device = loaded.aeg, loaded.device
        progress = Progress(source.shape[0] + 1)
        codes = []
        for image in source.split(1):
            face = resize_square(images_to_bchw(image, device, models.dtype), ALIGNED_SIZE)
            with torch.inference_mode():
                codes.append(aeg.style_encoder(face).float().cpu())
            progress.step()
        identity, pose = None, "unknown: the yaw needs DECA and FLAME (PASL Load Models)"
        if loaded.shape_encoder is not None and loaded.flame is not None:
            faces = images_to_bchw(source, torch.device("cpu"), torch.float32)
            aligned = (
                source_align is not None and len(source_align) == source.shape[0] and source.shape[1:3] == (ALIGNED_SIZE, ALIGNED_SIZE)
            )
            with torch.inference_mode():
                shapes = shape_codes(
                    loaded.shape_encoder,
                    resize_square(faces, ALIGNED_SIZE),
                    source_align.landmarks_crop if aligned else None,
                    source_align.has_face if aligned else None,
                    crop_landmarks=crop_landmarks,
                    detector=crop_detector(source_align) if aligned and crop_landmarks == "redetect" else None,
                )
                if loaded.pae is not None:
                    identity = encode_identity(loaded, faces, shapes)
                pose = _pose_text(face_yaw(shapes))
        progress.step()
        return io.NodeOutput(torch.cat(codes), identity, pose)
