"""``comfy_api.v0_0_2`` of ComfyUI 0.3.75: the same ``io``, ``ui`` and ``ComfyExtension`` as ``latest``."""

from comfy_api.latest import ComfyExtension, io, ui

__all__ = ["ComfyExtension", "io", "ui"]
