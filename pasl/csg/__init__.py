"""CSG: the shape stage of PASL, i.e. DECA's FLAME code regressor and the code swap.

- :func:`deca_crop_transform` / :func:`deca_crop`: DECA's 224x224 face crop from 68 landmarks;
- :func:`load_shape_encoder`: DECA's ``E_flame`` from ``deca_model.tar``, giving :class:`FlameCodes`;
- :func:`recompose`: source identity + driver motion (the paper's recomposed shape).

Rendering the codes (FLAME, depth and landmark images) lives elsewhere.
"""

from .codes import CODE_LAYOUT, NUM_CODE_PARAMS, RECOMPOSE_MODES, FlameCodes, recompose
from .crop import (
    DECA_CROP_SCALE,
    box_crop_transform,
    deca_crop,
    deca_crop_transform,
    full_image_box,
    full_image_crop_transform,
    landmarks_box,
)
from .encoder import (
    DECA_FILE,
    DECA_SOURCE,
    FlameEncoder,
    build_shape_encoder,
    convert_deca_to_safetensors,
    load_shape_encoder,
    read_deca_state,
)

__all__ = [
    "CODE_LAYOUT",
    "DECA_CROP_SCALE",
    "DECA_FILE",
    "DECA_SOURCE",
    "NUM_CODE_PARAMS",
    "RECOMPOSE_MODES",
    "FlameCodes",
    "FlameEncoder",
    "box_crop_transform",
    "build_shape_encoder",
    "convert_deca_to_safetensors",
    "deca_crop",
    "deca_crop_transform",
    "full_image_box",
    "full_image_crop_transform",
    "landmarks_box",
    "load_shape_encoder",
    "read_deca_state",
    "recompose",
]
