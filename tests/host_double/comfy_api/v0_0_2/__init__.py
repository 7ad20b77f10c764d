"""``comfy_api.v0_0_2`` of ComfyUI 0.3.75: the same ``io`` and ``ComfyExtension`` as ``latest``."""

from comfy_api.latest import ComfyExtension, io

__all__ = ["ComfyExtension", "io"]
