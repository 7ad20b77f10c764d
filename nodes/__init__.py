"""ComfyUI V3 nodes of the PASL pack: one file per stage, thin adapters over ``pasl``."""

from __future__ import annotations


def node_list() -> list:
    """Import the node modules (only inside ComfyUI) and return their classes."""
    from .encode import PASLEncodeStyle
    from .generate import PASLGenerate
    from .host import register_model_folder

    register_model_folder()
    from .load_models import PASLLoadModels

    return [PASLLoadModels, PASLEncodeStyle, PASLGenerate]
