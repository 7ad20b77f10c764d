"""ComfyUI V3 nodes of the PASL pack: one file per stage, thin adapters over ``pasl``."""

from __future__ import annotations


def node_list() -> list:
    """Import the node modules (only inside ComfyUI) and return their classes."""
    from .host import register_model_folder

    register_model_folder()  # before the loader's schema lists the folder's files
    from .align import PASLFaceAlign
    from .animate import PASLAnimatePortrait
    from .edit import PASLShapeEdit
    from .encode import PASLEncodeStyle
    from .generate import PASLGenerate
    from .identity import PASLIdentityScore
    from .load_models import PASLLoadModels
    from .metrics import PASLMetrics
    from .paste_back import PASLPasteBack
    from .reenact import PASLReenact
    from .render import PASLShapeRender
    from .shape import PASLShapeRecompose

    return [
        PASLLoadModels,
        PASLFaceAlign,
        PASLEncodeStyle,
        PASLShapeRecompose,
        PASLShapeEdit,
        PASLShapeRender,
        PASLGenerate,
        PASLPasteBack,
        PASLReenact,
        PASLIdentityScore,
        PASLAnimatePortrait,
        PASLMetrics,
    ]
