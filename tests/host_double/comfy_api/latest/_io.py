"""``comfy_api.latest.io`` of ComfyUI 0.3.75, reduced to what the PASL pack uses.

Kept faithful: the constructor signatures (keyword names and order) of every ``.Input`` /
``.Output`` the pack builds, the ``Schema`` fields, its ``validate``/``finalize``, ``NodeOutput`` and
the ``ComfyNode`` classmethod contract. Left out: UI outputs, dynamic/multi types, V1 adapters,
resources, hidden-input plumbing beyond ``cls.hidden``. The host side (cloning, locking,
validation, ``inference_mode``) lives in ``double_execution.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


def _prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class _IO:
    """Base of inputs and outputs; ``Parent`` is the type class the socket belongs to."""

    Parent: type = None

    @property
    def io_type(self) -> str:
        return self.Parent.io_type


class Input(_IO):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None, extra_dict=None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}

    def as_dict(self) -> dict:
        return _prune({"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip, "lazy": self.lazy}) | _prune(
            self.extra_dict
        )

    def get_io_type(self) -> str:
        return self.io_type


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None, extra_dict=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self) -> dict:
        return super().as_dict() | _prune(
            {"default": self.default, "socketless": self.socketless, "widgetType": self.widget_type, "forceInput": self.force_input}
        )

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IO):
    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict:
        return _prune({"display_name": self.display_name, "tooltip": self.tooltip, "is_output_list": self.is_output_list})

    def get_io_type(self) -> str:
        return self.io_type


class ComfyTypeIO:
    """A socket type: ``io_type`` plus its ``Input`` / ``Output`` classes."""

    Type = Any
    io_type: str = None
    Input = Input
    Output = Output


def _comfytype(io_type: str):
    """Bind ``io_type`` and give the type its own ``Input``/``Output`` subclasses whose ``Parent`` is it."""

    def bind(cls):
        cls.io_type = io_type
        for name in ("Input", "Output"):
            base = getattr(cls, name)
            setattr(cls, name, type(base.__name__, (base,), {"Parent": cls, "__qualname__": f"{cls.__name__}.{name}"}))
        return cls

    return bind


@_comfytype("BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: bool = None, label_on: str = None, label_off: str = None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.label_on = label_on
            self.label_off = label_off


@_comfytype("INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: int = None, min: int = None, max: int = None, step: int = None, control_after_generate: bool = None,
                     display_mode: NumberDisplay = None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min = min
            self.max = max
            self.step = step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({"min": self.min, "max": self.max, "step": self.step})


@_comfytype("FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: float = None, min: float = None, max: float = None, step: float = None, round: float = None,
                     display_mode: NumberDisplay = None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min = min
            self.max = max
            self.step = step
            self.round = round
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({"min": self.min, "max": self.max, "step": self.step, "round": self.round})


@_comfytype("STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     multiline=False, placeholder: str = None, default: str = None, dynamic_prompts: bool = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts


@_comfytype("COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, options: list[str] | list[int] | type[Enum] = None, display_name: str = None, optional=False,
                     tooltip: str = None, lazy: bool = None, default: str | int | Enum = None, control_after_generate: bool = None,
                     upload: UploadType = None, image_folder: FolderType = None, remote=None, socketless: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({"multiselect": self.multiselect, "options": self.options})

    class Output(Output):
        def __init__(self, id: str = None, display_name: str = None, options: list[str] = None, tooltip: str = None, is_output_list=False):
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options if options is not None else []

        @property
        def io_type(self):
            return self.options


@_comfytype("IMAGE")
class Image(ComfyTypeIO):
    """``[B, H, W, C]`` float32 in [0, 1]."""

    Type = torch.Tensor


@_comfytype("MASK")
class Mask(ComfyTypeIO):
    """``[B, H, W]`` float32 in [0, 1]."""

    Type = torch.Tensor


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A socket type of the pack's own (``PASL_MODEL``, ...): a fresh type class per call, as in 0.3.75."""

    @_comfytype(io_type)
    class CustomComfyType(ComfyTypeIO):
        ...

    return CustomComfyType


class HiddenHolder:
    """``cls.hidden`` of an executing node clone (the pack declares no hidden inputs)."""

    def __init__(self, unique_id: str = None, prompt: Any = None, extra_pnginfo: Any = None, dynprompt: Any = None,
                 auth_token_comfy_org: str = None, api_key_comfy_org: str = None):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org


@dataclass
class Schema:
    """Definition of a V3 node (same fields and defaults as 0.3.75)."""

    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list[Input] = None
    outputs: list[Output] = None
    hidden: list = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self) -> None:
        """Input ids and output ids unique, and disjoint (ValueError otherwise)."""
        input_ids = [i.id for i in self.inputs or []]
        output_ids = [o.id for o in self.outputs or []]
        issues = []
        if len(set(input_ids)) != len(input_ids):
            issues.append(f"Input ids must be unique, but {[k for k, n in Counter(input_ids).items() if n > 1]} are not.")
        if len(set(output_ids)) != len(output_ids):
            issues.append(f"Output ids must be unique, but {[k for k, n in Counter(output_ids).items() if n > 1]} are not.")
        if set(input_ids) & set(output_ids):
            issues.append(f"Ids must be unique between inputs and outputs, but {set(input_ids) & set(output_ids)} are not.")
        if issues:
            raise ValueError("\n".join(issues))

    def finalize(self) -> None:
        """Outputs without an id get ``_{index}_{io_type}_``."""
        for i, output in enumerate(self.outputs or []):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"


class NodeOutput:
    """What ``execute`` returns: the output values in socket order (``.result``), plus UI data."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index) -> Any:
        return self.args[index]


class ComfyNode:
    """Base class of V3 nodes: classmethods only; the host calls them on a locked clone."""

    hidden: HiddenHolder = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        return [name for name in kwargs if kwargs[name] is None]
