"""ComfyUI entry point of the PASL node pack (V3 API).

Importing this module loads nothing heavy: the nodes (and torch models) are imported when
ComfyUI asks for the node list, and weights only when a workflow runs.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import ComfyExtension


class PASLExtension(ComfyExtension):
    async def get_node_list(self) -> list:
        from .nodes import node_list

        return node_list()


async def comfy_entrypoint() -> PASLExtension:
    return PASLExtension()
