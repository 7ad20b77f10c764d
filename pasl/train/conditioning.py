"""Conditioning maps of training pairs: computed by the CSG, or read from a cache written once.

A pair ``(source, reference)`` is conditioned on the depth and landmark maps of the shape the
generator must draw (by default the source's shape in the reference's expression and pose, as the
release's test loaders recompose it) and on the two faces' yaws (they pick the PAE network of the
identity loss). Computing them needs DECA and FLAME and costs far more than a training step of the
maps' consumer, so :func:`cache_conditioning` can write them to disk once.

Maps are 8-bit images in the official pipeline (uint8 depth resized by PIL, white lines on black),
so they are stored as uint8 and every map, computed or cached, is rounded to 1/255 steps
(:func:`quantize_map`): a cached run and an on-the-fly run see the same numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..atomic import atomic_output
from ..errors import PASLError
from ..geometry import ALIGNED_SIZE
from ..imageops import to_uint8

CACHE_FORMAT = "pasl-train-conditioning"
MAP_SHAPE = (3, ALIGNED_SIZE, ALIGNED_SIZE)


@dataclass(frozen=True)
class Conditioning:
    """What the generator of one pair is conditioned on.

    Attributes:
        depth, landmarks: ``(3, 256, 256)`` float32 in [0, 1], multiples of 1/255.
        yaw_source, yaw_reference: head yaw of the two faces in degrees.
    """

    depth: torch.Tensor
    landmarks: torch.Tensor
    yaw_source: float
    yaw_reference: float


ConditioningFn = Callable[[torch.Tensor, torch.Tensor], Conditioning]
"""``(source, reference)``, each ``(3, 256, 256)`` RGB in [0, 1] -> :class:`Conditioning`."""


def quantize_map(x: torch.Tensor) -> torch.Tensor:
    """Round a map in [0, 1] to the nearest 1/255 (float32, CPU)."""
    return to_uint8(x.detach().float().cpu()).float() / 255


def checked(conditioning: Conditioning, where: str) -> Conditioning:
    """``conditioning`` with quantised maps, or a :class:`PASLError` naming ``where`` when its shapes or yaws are wrong."""
    for name in ("depth", "landmarks"):
        value = getattr(conditioning, name)
        if not torch.is_tensor(value) or tuple(value.shape) != MAP_SHAPE:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise PASLError(f"{where}: the {name} map must be a {MAP_SHAPE} tensor, got {shape}.")
    yaws = (float(conditioning.yaw_source), float(conditioning.yaw_reference))
    if not all(abs(y) < float("inf") for y in yaws):
        raise PASLError(f"{where}: the source or reference yaw is not finite ({yaws}); the pair has no readable face.")
    return Conditioning(quantize_map(conditioning.depth), quantize_map(conditioning.landmarks), *yaws)


def csg_conditioning(
    models, *, mode: str = "recompose", flatten: bool = False, crop_landmarks: str = "redetect", detector=None
) -> ConditioningFn:
    """A :data:`ConditioningFn` made of the package's shape stage (:mod:`pasl.shape`).

    Both crops go through :func:`pasl.shape.shape_codes`; the codes are recomposed by
    :func:`pasl.shape.recompose_shapes` (``mode``: ``"recompose"``, the source's shape in the
    reference's expression and pose; ``"reference"``, the reference's own codes, as maps read from
    ``LM_256``/``depths_256`` folders would be) and drawn by :func:`pasl.shape.render_conditioning`
    (``flatten``: the test protocol's flattening). Yaws are :func:`pasl.shape.face_yaw`.

    Args:
        models: a :class:`pasl.models.PASLModels` with the shape stage.
        crop_landmarks, detector: DECA's landmark pass (:func:`pasl.shape.shape_codes`); without a
            detector DECA crops the whole 256 image.
    """
    from ..shape import face_yaw, recompose_shapes, render_conditioning, shape_codes

    models.require_shape_stage()

    @torch.no_grad()
    def condition(source: torch.Tensor, reference: torch.Tensor) -> Conditioning:
        crops = torch.stack((source, reference)).float()
        shapes = shape_codes(models.shape_encoder, crops, crop_landmarks=crop_landmarks, detector=detector)
        yaw = face_yaw(shapes)
        drawn, _ = recompose_shapes(models, shapes[0:1], shapes[1:2], mode)
        depth, landmarks = render_conditioning(models.flame, models.faces, drawn, flatten=flatten)
        return Conditioning(depth[0].cpu(), landmarks[0].cpu(), float(yaw[0]), float(yaw[1]))

    return condition


def cache_key(source: str, reference: str) -> str:
    """File stem of a pair's cache entry: a digest of the two paths as written in the pairs list."""
    return hashlib.sha256(f"{source}\n{reference}".encode()).hexdigest()[:24]


def cache_path(folder: str | Path, source: str, reference: str) -> Path:
    return Path(folder) / f"{cache_key(source, reference)}.safetensors"


def write_cached(path: Path, conditioning: Conditioning, source: str, reference: str) -> None:
    """Write one entry (uint8 maps, float32 yaws, the pair's paths as metadata), atomically."""
    from safetensors.torch import save_file

    tensors = {
        "depth": to_uint8(conditioning.depth.float().cpu()).contiguous(),
        "landmarks": to_uint8(conditioning.landmarks.float().cpu()).contiguous(),
        "yaw": torch.tensor([conditioning.yaw_source, conditioning.yaw_reference], dtype=torch.float32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": CACHE_FORMAT, "source": source, "reference": reference})


def read_cached(path: Path, source: str, reference: str) -> Conditioning:
    """One cache entry, checked to belong to the pair; a missing or foreign entry is a :class:`PASLError`."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise PASLError(f"{path}: no cached conditioning for the pair {source} {reference}; run the cache step again (cache_conditioning).")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise PASLError(f"{path} is not a readable conditioning cache entry ({err}); delete it and cache again.") from None
    if metadata.get("format") != CACHE_FORMAT or (metadata.get("source"), metadata.get("reference")) != (source, reference):
        raise PASLError(f"{path} belongs to another pair or format ({metadata}); delete the cache folder and cache again.")
    yaw = tensors["yaw"].tolist()
    return checked(Conditioning(tensors["depth"].float() / 255, tensors["landmarks"].float() / 255, yaw[0], yaw[1]), str(path))


def cache_conditioning(dataset, conditioning: ConditioningFn, folder: str | Path, *, overwrite: bool = False,
                       rank: int = 0, world_size: int = 1, progress: Callable[[int, int], None] | None = None) -> int:
    """Compute and store the conditioning of the pairs of ``dataset`` (a :class:`pasl.train.data.PairsDataset`);
    return how many entries were written. Existing entries are kept unless ``overwrite``.

    With ``world_size`` > 1, rank ``r`` takes pairs ``r, r + world_size, ...``, so the processes of a
    distributed run share the work; writes are atomic, so no reader ever sees half a file.
    """
    written = 0
    pairs = dataset.pairs
    for i in range(rank, len(pairs), world_size):
        pair = pairs[i]
        path = cache_path(folder, pair.source, pair.driver)
        if overwrite or not path.is_file():
            source, reference = dataset.read_image(pair.source), dataset.read_image(pair.driver)
            value = checked(conditioning(source, reference), f"pair {i + 1} ({pair.source} {pair.driver})")
            write_cached(path, value, pair.source, pair.driver)
            written += 1
        if progress is not None:
            progress(i + 1, len(pairs))
    return written
