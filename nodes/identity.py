"""PASL Identity Score: does the result still look like the source? (the paper's PAE-CSIM)."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..pasl.identity import IdentityScores, score_identity
from ..pasl.pae import PROTOCOLS
from .host import Progress, chunks, images_to_bchw

FRAMES_PER_STEP = 16


class PASLIdentityScore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLIdentityScore",
            display_name="PASL Identity Score",
            category="PASL",
            description="Cosine similarity (CSIM) between the source's identity and each face, judged by the PAE network "
            "chosen from both faces' yaws (frontal/semi/profile pairs). 1 = same embedding. Black faces "
            "(frames without a face) are skipped.",
            inputs=[
                io.Custom("PASL_MODEL").Input("models", tooltip="From PASL Load Models."),
                io.Custom("PASL_IDENTITY").Input("identity", tooltip="From PASL Pose-Adapted Encode (first source face used)."),
                io.Image.Input("faces", tooltip="Face crops to judge, e.g. PASL Generate's output."),
                io.Combo.Input("protocol", options=list(PROTOCOLS), default="fixed",
                               tooltip="fixed = RGB, normalised input, PP network for profile pairs; official = the "
                               "authors' mean_pae_csim.py (BGR, no normalisation, SS network for profile pairs)."),
                io.Custom("PASL_ALIGN").Input("align", optional=True,
                                              tooltip="PASL Face Align of the driving frames: frames without a face are skipped."),
            ],
            outputs=[io.Float.Output(display_name="mean_csim"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(cls, models, identity, faces, protocol, align=None) -> io.NodeOutput:
        if identity is None:
            raise ValueError("PASL Identity Score: the identity input is empty; PASL Load Models needs PAE or ArcFace "
                             "weights (identity_encoders) and DECA + FLAME for PASL Pose-Adapted Encode to make one.")
        loaded = models.load()
        loaded.require_identity()
        loaded.require_shape_stage()
        if faces.shape[0] == 0:
            return io.NodeOutput(float("nan"), "no faces given")
        if align is not None and len(align) != faces.shape[0]:
            raise ValueError(f"PASL Identity Score: {faces.shape[0]} faces but {len(align)} aligned frames")
        progress = Progress(faces.shape[0])
        parts = []
        for part in chunks(faces.shape[0], FRAMES_PER_STEP):
            batch = images_to_bchw(faces[part], torch.device("cpu"), torch.float32)
            skip = None if align is None else ~align.has_face[part].cpu()
            with torch.inference_mode():
                parts.append(score_identity(loaded, identity, batch, protocol, skip=skip))
            progress.step(part.stop - part.start)
        scores = IdentityScores.cat(parts)
        return io.NodeOutput(scores.mean, scores.summary())
