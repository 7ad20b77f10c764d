"""A training run's settings: one dataclass, read from a JSON (or, with PyYAML installed, YAML) file.

Defaults are the release's (``pasl-reference.md`` §5): Adam lr 1e-4, betas (0, 0.99), weight decay
1e-4, EMA 0.999, seed 777, the loss weights of ``compute_g_loss``. Relative paths in a file are read
from the file's folder. Every bad value is one :class:`~pasl.errors.PASLError` sentence naming the key.

:data:`PRESETS` holds ready-made starting points (``python -m pasl.train --preset NAME --set key=value``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PASLError
from .losses import LossWeights
from .nets import NET_KINDS
from .vgg import NORMALIZATIONS

PRECISIONS = ("fp32", "bf16", "fp16")
CONDITIONING = ("cache", "online")
LOGS = ("auto", "jsonl", "tensorboard")
PAE_PROTOCOLS = ("fixed", "official")
RECOMPOSE = ("recompose", "reference")
STAGES = ("aeg", "csg")
"""What a run trains: the AEG (generator, style encoder, discriminators) or the CSG's shape encoder (L_cc)."""
PATH_KEYS = ("pairs", "images", "root", "cache_dir", "output_dir", "init_from", "vgg19_weights", "pae_folder", "arcface")


@dataclass
class TrainConfig:
    """Every setting of a training run (see the module docstring for defaults and paths).

    Data: ``pairs`` (a ``src ref [gt]`` list) or ``images`` (a folder of one person's 256 crops, paired
    with each other: self-reenactment), ``root`` (where relative list paths start), ``conditioning``
    (``"cache"``: maps computed once into ``cache_dir``; ``"online"``: every time), ``weights_dirs`` and
    ``detector`` (the shape stage that computes them; ``detector`` None: DECA crops the whole image),
    ``recompose_mode``, ``flatten``, ``randcrop_prob``, ``max_pairs`` (for ``images``), ``num_workers``.

    Networks: ``model`` (``"official"`` AEG, or ``"tiny"`` stand-ins for smoke runs), ``init_from``
    (a ``{step}_nets_ema.ckpt`` or ``{step}_nets.ckpt`` to fine-tune from; ``"auto"``: the AEG checkpoint found in
    the weight folders, as the reenactment finds it).

    Files left out are found like every weight file (``weights_dirs``, ``$PASL_WEIGHTS``, ``ComfyUI/models/pasl``,
    the pack's ``weights/``): ``vgg19_weights`` (``train/vgg19-dcbb9e9d.pth``, ``python -m pasl download train``),
    the PAE networks (``POE/...``); ``cache_dir`` defaults to ``<output_dir>/conditioning``.

    Optimisation: ``batch_size`` (per process), ``grad_accum``, ``total_steps``, ``lr``, ``beta1``,
    ``beta2``, ``weight_decay``, ``ema_beta``, ``precision``, ``seed``, ``device``.

    Losses: ``lambda_*``; ``vgg19_weights`` (``vgg19-dcbb9e9d.pth`` or its folder), ``vgg_normalization``,
    ``vgg_check_hash``; ``pae_folder`` (holding ``POE/FF/...``) or ``arcface`` (one IR-50 for every pair),
    ``pae_protocol``.

    Output: ``output_dir``, ``save_every``, ``log_every``, ``log``.

    ``stage``: ``"aeg"`` (default) trains the generator and style encoder with the losses above; ``"csg"``
    fine-tunes DECA's shape encoder with the cycle consistency (:mod:`pasl.train.csg`: ``lambda_cc``,
    ``lambda_anchor``; starts from the DECA file found in the weight folders; no maps, VGG19 or PAE needed).
    """

    stage: str = "aeg"
    pairs: str | None = None
    images: str | None = None
    root: str | None = None
    conditioning: str = "cache"
    cache_dir: str | None = None
    weights_dirs: list[str] = field(default_factory=list)
    detector: str | None = None
    recompose_mode: str = "recompose"
    flatten: bool = False
    randcrop_prob: float = 0.5
    max_pairs: int = 20000
    num_workers: int = 0

    model: str = "official"
    init_from: str | None = None

    batch_size: int = 4
    grad_accum: int = 1
    total_steps: int = 100000
    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.99
    weight_decay: float = 1e-4
    ema_beta: float = 0.999
    precision: str = "fp32"
    seed: int = 777
    device: str = "auto"

    lambda_adv: float = LossWeights.adv  # the release's weights, stated once (pasl.train.losses.LossWeights)
    lambda_id: float = LossWeights.id
    lambda_sty: float = LossWeights.sty
    lambda_l2: float = LossWeights.l2
    lambda_vgg: float = LossWeights.vgg
    lambda_reg: float = LossWeights.reg
    lambda_cc: float = 1000.0  # L_cc is a mesh distance in metres: x1000 weighs millimetres against the anchor's code units
    lambda_anchor: float = 1.0
    vgg19_weights: str | None = None
    vgg_normalization: str = "imagenet"
    vgg_check_hash: bool = True
    pae_folder: str | None = None
    arcface: str | None = None
    pae_protocol: str = "fixed"

    output_dir: str = "runs/pasl"
    save_every: int = 5000
    log_every: int = 10
    log: str = "auto"

    def __post_init__(self) -> None:
        self.validate()
        if self.conditioning == "cache" and self.cache_dir is None:
            self.cache_dir = str(Path(self.output_dir) / "conditioning")

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(self.lambda_adv, self.lambda_id, self.lambda_sty, self.lambda_l2, self.lambda_vgg, self.lambda_reg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`PASLError` (one sentence, naming the key) for the first bad value."""
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        choices = {
            "conditioning": CONDITIONING, "recompose_mode": RECOMPOSE, "model": NET_KINDS, "precision": PRECISIONS,
            "vgg_normalization": NORMALIZATIONS, "pae_protocol": PAE_PROTOCOLS, "log": LOGS, "stage": STAGES,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise PASLError(f"config key {key!r} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}.")
        for key in ("batch_size", "grad_accum", "total_steps", "save_every", "log_every", "max_pairs"):
            if getattr(self, key) < 1:
                raise PASLError(f"config key {key!r} must be at least 1; got {getattr(self, key)!r}.")
        if self.num_workers < 0:
            raise PASLError(f"config key 'num_workers' must be 0 or more; got {self.num_workers!r}.")
        for key in ("lr", "weight_decay", "randcrop_prob", "beta1", "beta2", "ema_beta",
                    *(f"lambda_{n}" for n in ("adv", "id", "sty", "l2", "vgg", "reg", "cc", "anchor"))):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise PASLError(f"config key {key!r} must be a finite number >= 0; got {value!r}.")
        for key in ("randcrop_prob", "ema_beta"):
            if getattr(self, key) > 1:
                raise PASLError(f"config key {key!r} must lie in [0, 1]; got {getattr(self, key)!r}.")
        for key in ("beta1", "beta2"):
            if getattr(self, key) >= 1:
                raise PASLError(f"config key {key!r} must lie in [0, 1); got {getattr(self, key)!r}.")
        if self.lr == 0:
            raise PASLError("config key 'lr' must be > 0; got 0.")
        if (self.pairs is None) == (self.images is None):
            raise PASLError(
                "the config needs exactly one of 'pairs' (a 'src ref [gt]' list file) and 'images' (a folder of one person's crops)."
            )
        if self.stage == "csg" and self.grad_accum != 1:
            raise PASLError("config key 'grad_accum' must be 1 with stage 'csg'; raise batch_size instead.")
        if self.conditioning == "online" and self.num_workers > 0:
            raise PASLError("config key 'num_workers' must be 0 with conditioning 'online' (the shape stage runs in the main process); "
                            "cache the maps to use workers.")
        if self.pae_folder is not None and self.arcface is not None:
            raise PASLError("config keys 'pae_folder' and 'arcface' exclude each other; give the six PAE networks or one ArcFace IR-50.")


_SIMPLE = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _check_type(key: str, value: Any, annotation: str) -> None:
    """One sentence when ``value`` does not match the field's annotation (a string, with ``from __future__``)."""
    optional = annotation.endswith("| None")
    base = annotation.removesuffix(" | None")
    if value is None and optional:
        return
    if base == "list[str]":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return
        raise PASLError(f"config key {key!r} must be a list of strings; got {value!r}.")
    wanted = _SIMPLE[base]
    ok = isinstance(value, wanted) and not (base in ("int", "float") and isinstance(value, bool))
    if not ok:
        article = "an" if base == "int" else "a"
        raise PASLError(f"config key {key!r} must be {article} {base}{' or null' if optional else ''}; got {value!r}.")


def from_mapping(values: dict[str, Any], where: str = "the config") -> TrainConfig:
    """A :class:`TrainConfig` from a dict; unknown keys are an error (a typo would otherwise be ignored)."""
    if not isinstance(values, dict):
        raise PASLError(f"{where} must hold a mapping of settings, got {type(values).__name__}.")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PASLError(f"{where}: unknown config keys {', '.join(unknown)} (known: {', '.join(sorted(known))}).")
    try:
        return TrainConfig(**values)
    except PASLError as err:
        raise PASLError(f"{where}: {err}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.json`` file, or in a ``.yaml``/``.yml`` file when PyYAML is installed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PASLError(f"config file {path} could not be read ({err.strerror or err}).") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise PASLError(
                f"config file {path} is YAML but PyYAML is not installed; pip install pyyaml, or write the config as JSON."
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise PASLError(f"config file {path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PASLError(f"config file {path} is not valid JSON ({err.msg} at line {err.lineno}).") from None


def load_config(path: str | Path | None = None, *, preset: str | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config of a run: a preset, then the file's keys (relative paths from its folder), then ``overrides``
    (relative paths from the current folder)."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise PASLError(f"unknown preset {preset!r}; the presets are {', '.join(PRESETS)}.")
        values.update(PRESETS[preset])
    base = Path.cwd()
    if path is not None:
        from_file = read_config_file(path)
        if not isinstance(from_file, dict):
            raise PASLError(f"config file {path} must hold a mapping of settings, got {type(from_file).__name__}.")
        base = Path(path).resolve().parent
        file_values = {k: _relative_to(base, k, v) for k, v in from_file.items()}
        values.update(file_values)
    values.update({k: _relative_to(Path.cwd(), k, v) for k, v in (overrides or {}).items()})
    return from_mapping(values, str(path) if path is not None else "the config")


def _relative_to(base: Path, key: str, value: Any) -> Any:
    if key in PATH_KEYS and isinstance(value, str) and value != "auto" and not Path(value).is_absolute():
        return str(base / value)
    if key == "weights_dirs" and isinstance(value, list):
        return [str(base / v) if isinstance(v, str) and not Path(v).is_absolute() else v for v in value]
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as JSON (numbers, true, null, lists), else kept as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise PASLError(f"--set takes key=value, got {text!r}.")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


PRESETS: dict[str, dict[str, Any]] = {
    "finetune-person": {
        "images": None,
        "init_from": "auto",
        "conditioning": "cache",
        "batch_size": 4,
        "total_steps": 2000,
        "save_every": 500,
        "log_every": 10,
        "lr": 1e-5,
        "randcrop_prob": 0.5,
        "max_pairs": 5000,
    },
    "finetune-csg": {
        "stage": "csg",
        "conditioning": "online",
        "batch_size": 4,
        "total_steps": 2000,
        "save_every": 500,
        "log_every": 10,
        "lr": 1e-6,
        "randcrop_prob": 0.0,
    },
}
"""``finetune-person``: adapt the released model (the AEG checkpoint found in the weight folders) to one person's
crops (``images``: their folder), with the release's losses at a tenth of its learning rate for 2000 steps. The
VGG19 and PAE networks are found in the weight folders (or their lambdas set to 0).

``finetune-csg``: the CSG's cycle-consistency fine-tuning of DECA's encoder (``pairs`` or ``images``), 2000 steps at
lr 1e-6 (a pretrained encoder without DECA's own losses: small steps); the result,
``pasl_deca_cc_{step}.safetensors``, replaces ``deca_model.tar``."""
