"""``comfy_api.latest`` of ComfyUI 0.3.75: ``ComfyExtension`` and the ``io`` and ``ui`` modules."""

from __future__ import annotations

from abc import ABC, abstractmethod

from . import _io as io
from . import _ui as ui


class ComfyExtension(ABC):
    """What a V3 pack's ``async comfy_entrypoint()`` returns (0.3.75 never awaits ``on_load``)."""

    async def on_load(self) -> None:  # noqa: B027 - an optional hook, empty on purpose
        """Called when an extension is loaded (unused by the 0.3.75 loader)."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes of the extension."""


__all__ = ["ComfyExtension", "io", "ui"]
