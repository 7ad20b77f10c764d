"""FLAME codes regressed by DECA's ``E_flame``, and how PASL recombines them.

``E_flame`` outputs one 236-d vector per image. DECA cuts it in the order of its config
``param_list`` (``decalib/utils/config.py``: ``['shape', 'tex', 'exp', 'pose', 'cam',
'light']`` with ``n_shape=100, n_tex=50, n_exp=50, n_pose=6, n_cam=3, n_light=27``) and
reshapes ``light`` to (9, 3). :class:`FlameCodes` is that split as a frozen dataclass.

The "recomposed shape" of the paper (PASL §3, and the official ``fuse_shape`` /
``get_depth_render``) is a plain code swap, see :func:`recompose`.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Iterator, Literal

import torch

CODE_LAYOUT: tuple[tuple[str, int], ...] = (
    ("shape", 100),  # FLAME identity shape coefficients
    ("tex", 50),  # BFM albedo PCA coefficients
    ("exp", 50),  # FLAME expression coefficients
    ("pose", 6),  # global rotation (3) + jaw (3), axis-angle in radians
    ("cam", 3),  # orthographic camera [s, tx, ty]
    ("light", 27),  # 9 spherical-harmonic coefficients x RGB
)
"""Fields of the ``E_flame`` vector, in order (DECA ``cfg.model.param_list`` and ``n_*``)."""
NUM_CODE_PARAMS = sum(n for _, n in CODE_LAYOUT)
"""236: the output width of ``E_flame``."""
LIGHT_SHAPE = (9, 3)
"""``light`` is reshaped to 9 SH bands x 3 colour channels (DECA ``decompose_code``)."""

_TRAILING = {name: ((n,) if name != "light" else LIGHT_SHAPE) for name, n in CODE_LAYOUT}
FIELDS = tuple(name for name, _ in CODE_LAYOUT)

RecomposeMode = Literal["recompose", "reference", "shape_only"]
RECOMPOSE_MODES: dict[str, tuple[str, ...]] = {
    # fields taken from the source; all others stay the driver's
    "recompose": ("shape", "tex", "light"),  # the paper; official fuse_shape / MPIE get_depth_render
    "reference": (),  # official demos (get_shape): the driver's own codes
    "shape_only": ("shape",),  # official VoxCeleb test loaders (*_vox1.py get_depth_render)
}
"""For each mode of :func:`recompose`, the fields copied from the source."""


@dataclass(frozen=True, eq=False)
class FlameCodes:
    """DECA's FLAME, camera and lighting codes for a batch of B faces.

    Attributes:
        shape: ``(B, 100)`` FLAME identity coefficients.
        tex: ``(B, 50)`` albedo coefficients (unused by PASL's renderings).
        exp: ``(B, 50)`` FLAME expression coefficients.
        pose: ``(B, 6)`` axis-angle in radians: global head rotation ``[:, :3]``, jaw ``[:, 3:]``.
        cam: ``(B, 3)`` orthographic camera ``[s, tx, ty]``: ``x_ndc = s * (x + tx)``.
        light: ``(B, 9, 3)`` spherical-harmonic lighting (unused by PASL's renderings).

    All fields share one batch size, device and dtype. The container is immutable;
    :meth:`replace` returns a new one. Access by name works like a dict
    (``codes["shape"]``); an int or slice selects along the batch
    (``codes[1:3]``, ``codes.index(0)``), always keeping the batch dimension.

    Example:
        >>> codes = FlameCodes.from_vector(torch.zeros(2, 236))
        >>> codes["light"].shape, codes.index(1).batch_size
        (torch.Size([2, 9, 3]), 1)
    """

    shape: torch.Tensor
    tex: torch.Tensor
    exp: torch.Tensor
    pose: torch.Tensor
    cam: torch.Tensor
    light: torch.Tensor

    def __post_init__(self) -> None:
        batch = None
        for name in FIELDS:
            value = getattr(self, name)
            if not torch.is_tensor(value):
                raise TypeError(f"FlameCodes.{name} must be a torch.Tensor, got {type(value).__name__}")
            if value.ndim != 1 + len(_TRAILING[name]) or tuple(value.shape[1:]) != _TRAILING[name]:
                raise ValueError(f"FlameCodes.{name} must have shape (B, {', '.join(map(str, _TRAILING[name]))}), got {tuple(value.shape)}")
            if batch is None:
                batch, device, dtype = value.shape[0], value.device, value.dtype
            elif (value.shape[0], value.device, value.dtype) != (batch, device, dtype):
                raise ValueError(
                    f"FlameCodes fields disagree: shape has batch {batch} on {device} {dtype}, "
                    f"{name} has batch {value.shape[0]} on {value.device} {value.dtype}"
                )

    @classmethod
    def from_vector(cls, vector: torch.Tensor) -> "FlameCodes":
        """Split a ``(B, 236)`` ``E_flame`` output in DECA's order (views, no copy)."""
        if not torch.is_tensor(vector):
            raise TypeError(f"vector must be a torch.Tensor, got {type(vector).__name__}")
        if vector.ndim != 2 or vector.shape[1] != NUM_CODE_PARAMS:
            raise ValueError(f"vector must have shape (B, {NUM_CODE_PARAMS}), got {tuple(vector.shape)}")
        fields, start = {}, 0
        for name, n in CODE_LAYOUT:
            fields[name] = vector[:, start : start + n].reshape(vector.shape[0], *_TRAILING[name])
            start += n
        return cls(**fields)

    def to_vector(self) -> torch.Tensor:
        """The inverse of :meth:`from_vector`: ``(B, 236)``."""
        return torch.cat([getattr(self, name).reshape(self.batch_size, -1) for name in FIELDS], dim=1)

    @classmethod
    def cat(cls, items: "list[FlameCodes] | tuple[FlameCodes, ...]") -> "FlameCodes":
        """Concatenate along the batch."""
        if not items:
            raise ValueError("FlameCodes.cat needs at least one FlameCodes")
        return cls(**{name: torch.cat([getattr(c, name) for c in items]) for name in FIELDS})

    @property
    def batch_size(self) -> int:
        return self.shape.shape[0]

    @property
    def device(self) -> torch.device:
        return self.shape.device

    @property
    def dtype(self) -> torch.dtype:
        return self.shape.dtype

    def keys(self) -> tuple[str, ...]:
        return FIELDS

    def values(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in FIELDS)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((name, getattr(self, name)) for name in FIELDS)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """A new dict of the (shared, not copied) tensors, like DECA's codedict."""
        return dict(self.items())

    def __contains__(self, key: object) -> bool:
        return key in FIELDS

    def get(self, key: str, default=None):
        """``dict.get`` on the field names (DECA code that reads a codedict keeps working; ``dict(codes)`` too)."""
        return getattr(self, key) if key in FIELDS else default

    def __getitem__(self, key: str | int | slice) -> "torch.Tensor | FlameCodes":
        if isinstance(key, str):
            if key not in FIELDS:
                raise KeyError(f"{key!r} is not a FLAME code; the fields are {', '.join(FIELDS)}")
            return getattr(self, key)
        if isinstance(key, slice):
            return FlameCodes(**{name: value[key] for name, value in self.items()})
        try:
            i = operator.index(key)
        except TypeError:
            raise TypeError(f"index FlameCodes with a field name, an int or a slice, got {type(key).__name__}") from None
        return self.index(i)

    def index(self, i: int) -> "FlameCodes":
        """Item ``i`` of the batch as a batch of one (negative ``i`` counts from the end)."""
        if not -self.batch_size <= i < self.batch_size:
            raise IndexError(f"index {i} is out of range for a batch of {self.batch_size}")
        i %= self.batch_size
        return self[i : i + 1]

    def select(self, rows: torch.Tensor) -> "FlameCodes":
        """The batch entries at ``rows`` (a 1-d index or bool tensor), in that order."""
        return FlameCodes(**{name: value[rows.to(value.device)] for name, value in self.items()})

    def replace(self, **fields: torch.Tensor) -> "FlameCodes":
        """A copy with some fields swapped (``codes.replace(shape=other.shape)``)."""
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise KeyError(f"unknown FLAME code field(s) {unknown}; the fields are {', '.join(FIELDS)}")
        return dataclasses.replace(self, **fields)

    def to(self, *args, **kwargs) -> "FlameCodes":
        """``Tensor.to`` on every field (device and/or dtype)."""
        return FlameCodes(**{name: value.to(*args, **kwargs) for name, value in self.items()})

    def detach(self) -> "FlameCodes":
        return FlameCodes(**{name: value.detach() for name, value in self.items()})

    def clone(self) -> "FlameCodes":
        return FlameCodes(**{name: value.clone() for name, value in self.items()})

    def expand(self, batch: int) -> "FlameCodes":
        """Repeat a batch of one ``batch`` times (a copy, not a view)."""
        if self.batch_size == batch:
            return self.clone()
        if self.batch_size != 1:
            raise ValueError(f"only a batch of 1 can be expanded, this one has {self.batch_size} (asked for {batch})")
        return FlameCodes(**{name: value.expand(batch, *value.shape[1:]).clone() for name, value in self.items()})

    def __repr__(self) -> str:
        return f"FlameCodes(batch_size={self.batch_size}, device={self.device}, dtype={self.dtype})"


def recompose(source: FlameCodes, driver: FlameCodes, mode: RecomposeMode = "recompose") -> FlameCodes:
    """Combine the source person's identity with the driver's motion.

    Modes (the fields taken from ``source``; every other field is the driver's):

    - ``"recompose"`` (default, the paper's recomposed shape; official ``fuse_shape`` and
      the MPIE test loader ``get_depth_render``): ``shape``, ``tex`` and ``light`` from the
      source; ``exp``, the full ``pose`` (global rotation and jaw) and ``cam`` from the
      driver. ``tex``/``light`` do not change PASL's depth or landmark renderings.
    - ``"reference"`` (official demos, ``get_shape``): the driver's codes unchanged; the
      source is used only for its batch size.
    - ``"shape_only"`` (official VoxCeleb test loaders): only ``shape`` from the source.

    Batches: equal sizes pair item by item; a batch of one on either side is repeated
    over the other (one source over N driving frames, or one frame over N sources as in
    the official demo's four sources).

    Args:
        source: codes of the source (identity) images, batch S.
        driver: codes of the driving (reference) frames, batch N.
        mode: one of ``"recompose"``, ``"reference"``, ``"shape_only"``.

    Returns:
        New codes of batch ``max(S, N)``; their tensors are fresh copies, so neither input
        can be changed through them, and the inputs are never modified.

    Example:
        >>> src, drv = FlameCodes.from_vector(torch.ones(1, 236)), FlameCodes.from_vector(torch.zeros(3, 236))
        >>> out = recompose(src, drv)
        >>> out.batch_size, out.shape.sum().item(), out.exp.sum().item()
        (3, 300.0, 0.0)
    """
    for name, value in (("source", source), ("driver", driver)):
        if not isinstance(value, FlameCodes):
            raise TypeError(f"{name} must be FlameCodes, got {type(value).__name__}")
    if mode not in RECOMPOSE_MODES:
        raise ValueError(f"unknown recompose mode {mode!r}; use one of {', '.join(map(repr, RECOMPOSE_MODES))}")
    if (source.device, source.dtype) != (driver.device, driver.dtype):
        raise ValueError(
            f"source and driver codes must share device and dtype, got {source.device} {source.dtype} "
            f"and {driver.device} {driver.dtype}"
        )
    s, n = source.batch_size, driver.batch_size
    if s != n and 1 not in (s, n):
        raise ValueError(f"source and driver batches must be equal or one of them 1, got {s} and {n}")
    batch = n if s == 1 else s
    source, driver = source.expand(batch), driver.expand(batch)  # copies: the result owns its tensors
    return driver.replace(**{name: getattr(source, name) for name in RECOMPOSE_MODES[mode]})
