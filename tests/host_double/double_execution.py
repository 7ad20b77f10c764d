"""The host side of the double: what ComfyUI 0.3.75's loader (``nodes.load_custom_node``) and
executor (``execution.py``) do to a V3 pack and its nodes, for one node at a time.

* :func:`load_custom_node` imports the pack as a package (relative imports), awaits
  ``comfy_entrypoint()`` and ``get_node_list()``, and checks every schema as the host does.
* :func:`validate` mirrors ``execution.validate_inputs`` for one node: required inputs, widget value
  conversion, min/max (skipped for inputs the node's own ``validate_inputs`` takes), link types, then
  the node's ``validate_inputs`` with only the arguments it names. As in 0.3.75, a V3 ``Combo``
  value outside its options is *not* rejected by the host (the node must do it).
* :func:`run_node` executes like ``execution.execute``: the interrupt flag cleared at the start
  of the prompt, ``execute`` called on a locked clone of the class under ``torch.inference_mode()``,
  the return value normalised to ``NodeOutput``, progress collected from the global hook.
  Beyond the host, it checks the socket contract of inputs and outputs (IMAGE ``[B,H,W,C]`` float32
  on CPU, MASK ``[B,H,W]``, STRING ``str``, one value per declared output), which the host leaves to
  the next node to trip over.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import ComfyExtension, io


def first_real_override(cls: type, name: str):
    """``cls.<name>`` if the node overrides the ``io.ComfyNode`` placeholder, else ``None``."""
    method = getattr(cls, name, None)
    if method is None or getattr(method, "__func__", None) is getattr(io.ComfyNode, name).__func__:
        return None
    return method


def get_schema(cls: type) -> io.Schema:
    """``GET_SCHEMA``: the class must define both classmethods; the schema is finalised and validated."""
    for name in ("define_schema", "execute"):
        if first_real_override(cls, name) is None:
            raise Exception(f"No {name} function was defined for node class {cls.__name__}.")
    schema = cls.define_schema()
    schema.finalize()
    schema.validate()
    return schema


def load_custom_node(pack_dir: str | os.PathLike, module_name: str) -> dict[str, type[io.ComfyNode]]:
    """Import ``pack_dir/__init__.py`` as package ``module_name``; return ``{node_id: class}``.

    The host logs and skips a failing pack; the double raises, so a test sees why.
    """
    pack_dir = os.fspath(pack_dir)
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(pack_dir, "__init__.py"), submodule_search_locations=[pack_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    entrypoint = module.comfy_entrypoint
    extension = asyncio.run(entrypoint()) if inspect.iscoroutinefunction(entrypoint) else entrypoint()
    if not isinstance(extension, ComfyExtension):
        raise TypeError(f"comfy_entrypoint in {pack_dir} did not return a ComfyExtension")
    node_list = asyncio.run(extension.get_node_list())
    if not isinstance(node_list, list):
        raise TypeError(f"comfy_entrypoint in {pack_dir} did not return a list of nodes")
    nodes = {}
    for node_cls in node_list:
        schema = get_schema(node_cls)
        nodes[schema.node_id] = node_cls
    return nodes


def locked_clone(cls: type, hidden: io.HiddenHolder | None = None) -> type:
    """A subclass copy of ``cls`` (``PREPARE_CLASS_CLONE`` + ``lock_class``): setting any class
    attribute on it raises ``AttributeError``, as on the host."""

    class LockedMeta(type(cls)):
        def __setattr__(self, name, value):
            raise AttributeError(f"Cannot modify class attribute '{name}' on locked class '{self.__name__}'")

    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    namespace["hidden"] = hidden if hidden is not None else io.HiddenHolder()
    return LockedMeta(cls.__name__, (cls,), namespace)


def _call_locked(cls: type, name: str, inputs: dict) -> Any:
    function = getattr(cls, name).__func__
    result = function(locked_clone(cls), **inputs)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


def _type_matches(received: str, expected: str) -> bool:
    """The host's ``validate_node_input`` for plain types: equal, ``*``, or overlapping comma unions."""
    if received == "*" or expected == "*":
        return True
    a, b = frozenset(received.split(",")), frozenset(expected.split(","))
    return a <= b or b <= a


_CONVERT = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def validate(cls: type, widgets: dict[str, Any], links: dict[str, str] | None = None) -> list[dict]:
    """Errors the host would report for one node of a prompt (empty list: valid).

    Args:
        widgets: widget values by input name, as in an API prompt.
        links: ``{input name: io_type of the output linked to it}``; linked values are
            unknown at validation, so the node's ``validate_inputs`` receives ``None`` for them.
    """
    links = links or {}
    schema = get_schema(cls)
    custom = first_real_override(cls, "validate_inputs")
    spec = inspect.getfullargspec(custom) if custom is not None else None
    takes = set(spec.args) if spec else set()
    takes_all = bool(spec and spec.varkw)
    errors, values = [], {}
    for item in schema.inputs or []:
        name, io_type = item.id, item.get_io_type()
        if name not in widgets and name not in links:
            if not item.optional:
                errors.append({"type": "required_input_missing", "details": name})
            continue
        if name in links:
            if not _type_matches(links[name], io_type):
                details = f"{name}, received_type({links[name]}) mismatch input_type({io_type})"
                errors.append({"type": "return_type_mismatch", "details": details})
                continue
            values[name] = None
            continue
        value = widgets[name]
        try:
            value = _CONVERT[io_type](value) if io_type in _CONVERT else value
        except (TypeError, ValueError) as error:
            errors.append({"type": "invalid_input_type", "details": f"{name}, {value}, {error}"})
            continue
        values[name] = value
        if name not in takes and not takes_all:
            low, high = getattr(item, "min", None), getattr(item, "max", None)
            if low is not None and value < low:
                errors.append({"type": "value_smaller_than_min", "details": name})
            elif high is not None and value > high:
                errors.append({"type": "value_bigger_than_max", "details": name})
    if custom is not None:
        passed = {k: v for k, v in values.items() if takes_all or k in takes}
        result = _call_locked(cls, "validate_inputs", passed)
        if result is not True:
            suffix = "" if result is False else f" - {result}"
            errors += [{"type": "custom_validation_failed", "details": name + suffix} for name in passed]
    return errors


def fingerprint(cls: type, **inputs) -> Any:
    """The node's ``fingerprint_inputs`` (``None`` if it has none), run as the host's IsChanged cache does."""
    if first_real_override(cls, "fingerprint_inputs") is None:
        return None
    with torch.inference_mode():
        return _call_locked(cls, "fingerprint_inputs", inputs)


def check_socket(io_type: str, value: Any, where: str) -> None:
    """The value contract of the core socket types (TypeError naming ``where`` otherwise)."""
    if io_type in ("IMAGE", "MASK"):
        ndim = 4 if io_type == "IMAGE" else 3
        if not isinstance(value, torch.Tensor) or value.ndim != ndim or value.dtype != torch.float32 or value.device.type != "cpu":
            got = type(value).__name__
            if isinstance(value, torch.Tensor):
                got += f" {tuple(value.shape)} {value.dtype} {value.device}"
            layout = "[B,H,W,C]" if io_type == "IMAGE" else "[B,H,W]"
            raise TypeError(f"{where}: {io_type} must be a float32 CPU tensor {layout}, got {got}")
    elif io_type in ("STRING", "INT", "FLOAT", "BOOLEAN"):
        kind = {"STRING": str, "INT": int, "FLOAT": (int, float), "BOOLEAN": bool}[io_type]
        if not isinstance(value, kind):
            raise TypeError(f"{where}: {io_type} must be {kind}, got {type(value).__name__}")


@dataclass
class Run:
    """One node execution: its outputs in socket order, and every progress report ``(value, total)``."""

    outputs: tuple
    progress: list[tuple[int, int]] = field(default_factory=list)
    ui: Any = None

    def __getitem__(self, index):
        return self.outputs[index]


def run_node(cls: type, **inputs) -> Run:
    """Execute one node as the host would after validation (inputs given are passed; absent
    optional inputs are left to the node's defaults)."""
    schema = get_schema(cls)
    declared = {item.id: item for item in schema.inputs or []}
    unknown = set(inputs) - set(declared)
    missing = [k for k, item in declared.items() if not item.optional and k not in inputs]
    if unknown or missing:
        raise ValueError(f"{schema.node_id}: unknown inputs {sorted(unknown)}, missing required inputs {missing}")
    for name, value in inputs.items():
        check_socket(declared[name].get_io_type(), value, f"{schema.node_id} input '{name}'")

    progress: list[tuple[int, int]] = []
    outer = comfy.utils.PROGRESS_BAR_HOOK

    def hook(value, total, preview, node_id=None):
        progress.append((value, total))
        if outer is not None:
            outer(value, total, preview, node_id=node_id)

    mm.interrupt_current_processing(False)  # the host clears it when a prompt starts
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with torch.inference_mode():
            returned = _call_locked(cls, "execute", inputs)
    finally:
        comfy.utils.set_progress_bar_global_hook(outer)

    if returned is None:
        returned = io.NodeOutput()
    elif isinstance(returned, tuple):
        returned = io.NodeOutput(*returned)
    elif not isinstance(returned, io.NodeOutput):
        raise Exception(f"Invalid return type from node: {type(returned)}")
    if returned.expand is not None and not schema.enable_expand:
        raise Exception(f"Node {cls.__name__} is not expandable, but expand included in NodeOutput")
    outputs = returned.result or ()
    if len(outputs) != len(schema.outputs or []):
        raise TypeError(f"{schema.node_id} returned {len(outputs)} values for {len(schema.outputs or [])} outputs")
    for item, value in zip(schema.outputs or [], outputs):
        check_socket(item.get_io_type(), value, f"{schema.node_id} output '{item.display_name or item.id}'")
    return Run(tuple(outputs), progress, returned.ui)
