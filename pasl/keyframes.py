"""Animate a portrait without a driver: head edits at keyframes, interpolated frame by frame.

A keyframe is a frame number and a :class:`pasl.edit.HeadEdit` of the source (``yaw 0 -> 75 -> 0``
turns a portrait to profile and back). Between keyframes the head rotation follows the shortest
arc (quaternion slerp), jaw, expression and camera are blended linearly, both along an easing
curve. Frames on a keyframe get that keyframe's codes exactly.

The text form the command line and the node take: ``"0: yaw=0; 24: yaw=75, jaw=10; 48: yaw=0"``
(fields of :class:`HeadEdit`: ``yaw pitch roll jaw expression`` and the named expression controls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .csg.codes import FlameCodes
from .edit import CONTROL_NAMES, ExpressionControls, HeadEdit, edit_codes
from .rotations import axis_angle_to_quaternion, quaternion_to_axis_angle, slerp

EASINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda t: t,
    "ease-in-out": lambda t: t * t * (3 - 2 * t),  # smoothstep: starts and stops at rest
    "ease-in": lambda t: t * t,
    "ease-out": lambda t: 1 - (1 - t) * (1 - t),
}
"""How time runs between two keyframes: ``t`` in [0, 1] -> blend weight in [0, 1], both ends fixed."""
MAX_FRAMES = 100_000


@dataclass(frozen=True)
class Keyframe:
    """The source edited by ``edit`` at frame ``frame`` (0-based)."""

    frame: int
    edit: HeadEdit


def parse_keyframes(text: str) -> list[Keyframe]:
    """``"0: yaw=0; 24: yaw=75, jaw=10"`` -> keyframes sorted by frame; one sentence per mistake.

    Example:
        >>> [(k.frame, k.edit.yaw, k.edit.jaw) for k in parse_keyframes("0: yaw=0; 24: yaw=75, jaw=10")]
        [(0, 0.0, None), (24, 75.0, 10.0)]
    """
    keyframes: dict[int, HeadEdit] = {}
    for part in filter(None, (p.strip() for p in text.replace("\n", ";").split(";"))):
        frame_text, colon, body = part.partition(":")
        if not colon:
            raise ValueError(f"keyframe {part!r} must look like 'FRAME: yaw=30, jaw=10'")
        try:
            frame = int(frame_text.strip())
        except ValueError:
            raise ValueError(f"keyframe {part!r}: {frame_text.strip()!r} is not a frame number") from None
        if not 0 <= frame <= MAX_FRAMES:
            raise ValueError(f"keyframe {part!r}: frame must be in [0, {MAX_FRAMES}]")
        if frame in keyframes:
            raise ValueError(f"frame {frame} has two keyframes")
        values: dict[str, float] = {}
        controls: dict[str, float] = {}
        for item in filter(None, (i.strip() for i in body.split(","))):
            name, equals, value_text = item.partition("=")
            name = name.strip()
            try:
                value = float(value_text)
            except ValueError:
                raise ValueError(f"keyframe {frame}: {item!r} must be NAME=NUMBER") from None
            if not equals:
                raise ValueError(f"keyframe {frame}: {item!r} must be NAME=NUMBER")
            if name in ("yaw", "pitch", "roll", "jaw", "expression"):
                values[name] = value
            elif name in CONTROL_NAMES:
                controls[name] = value
            else:
                fields = ", ".join(("yaw", "pitch", "roll", "jaw", "expression") + CONTROL_NAMES)
                raise ValueError(f"keyframe {frame}: unknown field {name!r}; fields: {fields}")
        keyframes[frame] = HeadEdit(**values, controls=controls)
    if not keyframes:
        raise ValueError("no keyframes given; e.g. '0: yaw=0; 24: yaw=75; 48: yaw=0'")
    return [Keyframe(frame, keyframes[frame]) for frame in sorted(keyframes)]


def _lerp(x: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    return x + w * (y - x)


def animate_codes(
    source: FlameCodes,
    keyframes: list[Keyframe],
    frames: int,
    easing: str = "ease-in-out",
    controls: ExpressionControls | None = None,
    flame=None,
) -> FlameCodes:
    """``frames`` codes of the source (batch 1) moving through ``keyframes``.

    Before the first keyframe and after the last the codes hold still. ``controls`` and ``flame``
    are passed to :func:`pasl.edit.edit_codes` (named expression controls, keeping the face centred).
    """
    if source.batch_size != 1:
        raise ValueError(f"animate one source face, got a batch of {source.batch_size}")
    if not keyframes:
        raise ValueError("give at least one keyframe")
    if easing not in EASINGS:
        raise ValueError(f"easing must be one of {', '.join(EASINGS)}, got {easing!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be a whole number in [1, {MAX_FRAMES}], got {frames!r}")
    keyframes = sorted(keyframes, key=lambda k: k.frame)
    keyed = FlameCodes.cat([edit_codes(source, k.edit, controls, flame) for k in keyframes])
    times = [k.frame for k in keyframes]
    rotations = axis_angle_to_quaternion(keyed.pose[:, :3].double())
    rows = []
    for frame in range(frames):
        after = next((i for i, t in enumerate(times) if t >= frame), len(times) - 1)
        if times[after] == frame or frame < times[0] or frame > times[-1]:
            rows.append(keyed.index(after if frame >= times[0] else 0))
            continue
        before = after - 1
        u = torch.tensor((frame - times[before]) / (times[after] - times[before]), dtype=torch.float64)
        t = EASINGS[easing](u)
        head = quaternion_to_axis_angle(slerp(rotations[before : before + 1], rotations[after : after + 1], t))
        a, b = keyed.index(before), keyed.index(after)
        w = float(t)
        rows.append(a.replace(
            pose=torch.cat([head.to(a.pose.dtype), _lerp(a.pose[:, 3:], b.pose[:, 3:], w)], dim=1),
            exp=_lerp(a.exp, b.exp, w),
            cam=_lerp(a.cam, b.cam, w),
        ))
    return FlameCodes.cat(rows)


__all__ = ["EASINGS", "Keyframe", "animate_codes", "parse_keyframes"]

