"""PASL Load Models: pick the weight files, the device and the precision once."""

from __future__ import annotations

import os

from comfy_api.v0_0_2 import io

from ..pasl.catalog import where_to_get
from ..pasl.models import load_models
from .host import DEVICES, PRECISIONS, folders, manage, model_files, model_path, pick_device, pick_dtype

NO_AEG = "(no AEG checkpoint found: put e.g. 204000_nets_ema.ckpt in models/pasl)"
NO_DECA = "(no deca_model.tar found: the shape stage is off)"
NO_FLAME = "(no FLAME model found: the shape stage is off)"
PLACEHOLDERS = (NO_AEG, NO_DECA, NO_FLAME)
IDENTITY_CHOICES = ["auto", "none"]
"""Before the ArcFace files found: auto = the six PAE networks if all are in models/pasl/POE, else an ArcFace file."""


def identity_options() -> list[str]:
    return IDENTITY_CHOICES + [n for n in model_files("arcface", "") if n]


class PASLLoadModels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLLoadModels",
            display_name="PASL Load Models",
            category="PASL",
            description="Loads PASL's networks from ComfyUI/models/pasl (or the pack's weights/ folder). "
            "landmark_embedding.npy and head_template.obj are found there by name.",
            inputs=[
                io.Combo.Input("aeg_checkpoint", options=model_files("aeg", NO_AEG),
                               tooltip="Official {step}_nets_ema.ckpt (204000 = the demo model) or its .safetensors conversion."),
                io.Combo.Input("deca_model", options=model_files("deca", NO_DECA),
                               tooltip="DECA's deca_model.tar (the CSG shape encoder), or its conversion."),
                io.Combo.Input("flame_model", options=model_files("flame", NO_FLAME),
                               tooltip="FLAME 2020 generic_model.pkl (registration at flame.is.tue.mpg.de), or pasl_flame.safetensors."),
                io.Combo.Input("identity_encoders", options=identity_options(), default="auto", optional=True,
                               tooltip="For the identity outputs and PASL Identity Score: auto = the six PAE networks "
                               "(models/pasl/POE/FF ... PP) when present, else an ArcFace IR-50 file; none = skip."),
                io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto = ComfyUI's device (honours --cpu)."),
                io.Combo.Input("precision", options=PRECISIONS, default="auto",
                               tooltip="Generator precision. auto = fp16 on GPUs (as the official demo), fp32 on CPU."),
            ],
            outputs=[io.Custom("PASL_MODEL").Output(display_name="models")],
        )

    @classmethod
    def validate_inputs(
        cls, aeg_checkpoint, deca_model=NO_DECA, flame_model=NO_FLAME, identity_encoders="auto", device="auto", precision="auto"
    ):
        if aeg_checkpoint == NO_AEG or model_path(aeg_checkpoint) is None:
            return f"AEG checkpoint '{aeg_checkpoint}' is not in models/pasl. " + where_to_get("aeg")
        for name, placeholder in ((deca_model, NO_DECA), (flame_model, NO_FLAME)):
            if name != placeholder and model_path(name) is None:
                return f"'{name}' is not in models/pasl"
        if identity_encoders not in IDENTITY_CHOICES and model_path(identity_encoders) is None:
            return f"'{identity_encoders}' is not in models/pasl"
        return True

    @classmethod
    def fingerprint_inputs(cls, aeg_checkpoint, deca_model, flame_model, identity_encoders="auto", device="auto", precision="auto"):
        paths = [model_path(n) for n in (aeg_checkpoint, deca_model, flame_model, identity_encoders)]
        return (*paths, *(os.path.getmtime(p) if p else None for p in paths), identity_encoders, device, precision)

    @classmethod
    def execute(cls, aeg_checkpoint, deca_model, flame_model, identity_encoders="auto", device="auto", precision="auto") -> io.NodeOutput:
        torch_device = pick_device(device)
        models = load_models(
            folders(),
            aeg=model_path(aeg_checkpoint),
            deca=model_path(deca_model) if deca_model != NO_DECA else None,
            flame=model_path(flame_model) if flame_model != NO_FLAME else None,
            dtype=pick_dtype(precision, torch_device),
            require_shape_stage=False,
            identity=identity_encoders if identity_encoders in IDENTITY_CHOICES else model_path(identity_encoders),
        )
        return io.NodeOutput(manage(models, torch_device))
