"""Training checkpoints in the release's layout, plus the little a run needs to resume exactly.

Every ``save_every`` steps a run writes, in ``output_dir`` (``pasl-reference.md`` §7):

* ``{step}_nets_ema.ckpt``: ``{"generator", "style_encoder"}`` state dicts (the EMA copies): the file
  inference uses, readable strictly by :func:`pasl.aeg_files.load_aeg`;
* ``{step}_nets.ckpt``: ``{"generator", "style_encoder", "discriminator", "discriminator2"}``;
* ``{step}_optims.ckpt``: the same four names -> Adam state dicts;
* ``{step}_state.ckpt`` (ours): step, seeds and random-number states, gradient-scaler states, the
  number of processes and the config; without it (the release's own training files) a run resumes
  with fresh random states.

All are plain ``torch.save`` dicts of CPU tensors and Python numbers, loadable with
``weights_only=True``; each appears only once completely written (:func:`pasl.atomic.atomic_output`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_output
from ..errors import MissingWeightError, WeightFileError
from ..weights import checkpoint_kind, load_pickle_weights, strict_load
from .nets import EMA_NAMES, NET_NAMES

FILES = ("nets", "nets_ema", "optims", "state")
_STEP_FILE = re.compile(r"^(\d+)_nets_ema\.ckpt$")


def checkpoint_path(folder: str | Path, step: int, part: str) -> Path:
    return Path(folder) / f"{step}_{part}.ckpt"


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(value) for value in obj)
    return obj


def _save(obj: object, path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(
    folder: str | Path, step: int, nets: nn.ModuleDict, ema: nn.ModuleDict, optims: dict[str, torch.optim.Optimizer], state: dict
) -> list[Path]:
    """Write the four files of ``step`` (module docstring); the EMA file last, so its presence means complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [checkpoint_path(folder, step, part) for part in ("nets", "optims", "state", "nets_ema")]
    _save({name: _cpu_state(nets[name]) for name in NET_NAMES}, paths[0])
    _save({name: _to_cpu(optims[name].state_dict()) for name in NET_NAMES}, paths[1])
    _save(_to_cpu(state), paths[2])
    _save({name: _cpu_state(ema[name]) for name in EMA_NAMES}, paths[3])
    return paths


def latest_step(folder: str | Path) -> int | None:
    """The highest step with a complete ``nets``/``nets_ema``/``optims`` triple in ``folder``, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = sorted((int(m.group(1)) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))), reverse=True)
    for step in steps:
        if all(checkpoint_path(folder, step, part).is_file() for part in ("nets", "optims")):
            return step
    return None


def _read(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MissingWeightError(
            f"{what} not found: {path}; resume from a folder holding {{step}}_nets.ckpt, _nets_ema.ckpt and _optims.ckpt."
        )
    obj = load_pickle_weights(path, expected=what)
    if not isinstance(obj, dict):
        raise WeightFileError(f"{path} is not a training checkpoint ({what}): it holds a {type(obj).__name__}, not a dict.")
    return obj


def _parts(obj: dict, names: tuple[str, ...], path: Path) -> dict:
    missing = [name for name in names if not isinstance(obj.get(name), dict)]
    if missing:
        raise WeightFileError(f"{path} lacks the entries {', '.join(missing)}; it is not a PASL training checkpoint of this kind.")
    return {name: obj[name] for name in names}


def load_checkpoint(
    folder: str | Path, step: int, nets: nn.ModuleDict, ema: nn.ModuleDict, optims: dict[str, torch.optim.Optimizer]
) -> dict:
    """Fill ``nets``, ``ema`` (strictly) and ``optims`` from the files of ``step``; return its state (``{}`` when
    there is no ``_state.ckpt``, e.g. the release's own training files)."""
    folder = Path(folder)
    paths = {part: checkpoint_path(folder, step, part) for part in FILES}
    net_states = _parts(_read(paths["nets"], "a training checkpoint (_nets.ckpt)"), NET_NAMES, paths["nets"])
    ema_states = _parts(_read(paths["nets_ema"], "an EMA checkpoint (_nets_ema.ckpt)"), EMA_NAMES, paths["nets_ema"])
    optim_states = _parts(_read(paths["optims"], "an optimiser checkpoint (_optims.ckpt)"), NET_NAMES, paths["optims"])
    for name in NET_NAMES:
        strict_load(nets[name], net_states[name], paths["nets"], name)
    for name in EMA_NAMES:
        strict_load(ema[name], ema_states[name], paths["nets_ema"], name)
    for name in NET_NAMES:
        try:
            optims[name].load_state_dict(optim_states[name])
        except (ValueError, KeyError) as err:
            raise WeightFileError(f"{paths['optims']}: the '{name}' optimiser state does not fit this network ({err}).") from None
    return _read(paths["state"], "a training state file (_state.ckpt)") if paths["state"].is_file() else {}


def read_init_states(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Network states to fine-tune from: a ``{step}_nets_ema.ckpt`` or our ``.safetensors`` conversion
    (generator, style_encoder), or a ``{step}_nets.ckpt`` (also both discriminators)."""
    from ..aeg_files import read_aeg_state

    path = Path(path)
    if path.suffix == ".safetensors" or not path.is_file():
        return read_aeg_state(path)  # also the missing-file message with where to get it
    obj = load_pickle_weights(path, expected="an AEG checkpoint")
    if checkpoint_kind(obj) != "aeg":
        return read_aeg_state(path)  # its precise message about what the file is instead
    return {name: obj[name] for name in NET_NAMES if isinstance(obj.get(name), dict)}


def init_from(path: str | Path, nets: nn.ModuleDict, ema: nn.ModuleDict) -> list[str]:
    """Start ``nets`` and ``ema`` from a released checkpoint (:func:`read_init_states`), strictly; return the
    networks filled. Both generator and style-encoder copies take the file's weights; discriminators keep
    their He init unless the file has them."""
    states = read_init_states(path)
    for name, state in states.items():
        strict_load(nets[name], state, path, name)
        if name in ema:
            strict_load(ema[name], state, path, name)
    return list(states)
