"""ComfyUI entry point of the PASL node pack (V3 API).

Importing this module imports nothing at all (not even ComfyUI, so tools such as pytest
can import the package outside the host): the nodes, torch and the models are loaded
when ComfyUI calls ``comfy_entrypoint``, and weights only when a workflow runs.
"""

from __future__ import annotations


async def comfy_entrypoint():
    from comfy_api.v0_0_2 import ComfyExtension

    from .nodes import node_list

    class PASLExtension(ComfyExtension):
        async def get_node_list(self) -> list:
            return node_list()

    return PASLExtension()
