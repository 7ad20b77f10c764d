"""PASL Load Models: pick the weight files, the device and the precision once."""

from __future__ import annotations

import os

from comfy_api.v0_0_2 import io

from ..pasl.aeg import load_aeg
from ..pasl.catalog import where_to_get

from .host import DEVICES, PRECISIONS, PASLModels, model_files, model_path, pick_device, pick_dtype, wrap

NO_AEG = "(no AEG checkpoint found: put e.g. 204000_nets_ema.ckpt in models/pasl)"


class PASLLoadModels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLLoadModels",
            display_name="PASL Load Models",
            category="PASL",
            description="Loads the PASL networks from ComfyUI/models/pasl (or the pack's weights/ folder).",
            inputs=[
                io.Combo.Input(
                    "aeg_checkpoint",
                    options=model_files(NO_AEG),
                    tooltip="Official {step}_nets_ema.ckpt (204000 = the demo model) or its .safetensors conversion.",
                ),
                io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto = ComfyUI's device (honours --cpu)."),
                io.Combo.Input(
                    "precision", options=PRECISIONS, default="auto", tooltip="auto = fp16 on GPUs (as the official demo), fp32 on CPU."
                ),
            ],
            outputs=[io.Custom("PASL_MODEL").Output(display_name="models")],
        )

    @classmethod
    def validate_inputs(cls, aeg_checkpoint, device="auto", precision="auto"):
        if aeg_checkpoint == NO_AEG or model_path(aeg_checkpoint) is None:
            return f"AEG checkpoint '{aeg_checkpoint}' is not in models/pasl. " + where_to_get("aeg")
        return True

    @classmethod
    def fingerprint_inputs(cls, aeg_checkpoint, device, precision):
        path = model_path(aeg_checkpoint)
        return (aeg_checkpoint, os.path.getmtime(path) if path else None, device, precision)

    @classmethod
    def execute(cls, aeg_checkpoint, device, precision) -> io.NodeOutput:
        path = model_path(aeg_checkpoint)
        torch_device = pick_device(device)
        dtype = pick_dtype(precision, torch_device)
        model = load_aeg(path, device="cpu", dtype=dtype)
        return io.NodeOutput(PASLModels(aeg=wrap(model, torch_device), dtype=dtype))
