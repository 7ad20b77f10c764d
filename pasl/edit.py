"""Direct control of the head: pose and expression edits on FLAME codes, and motion transfer with strengths.

PASL conditions its generator on a FLAME face, so a head can be turned, its jaw opened or its
expression changed by editing the codes before the maps are rendered: no driver needed, and
the head can turn to full profile (yaw ±90°), the range PASL was built for. Three tools:

* :class:`HeadEdit` + :func:`edit_codes`: set or add yaw / pitch / roll (degrees, the convention
  of :mod:`pasl.rotations`), open the jaw, scale the expression, add named expression controls;
* :class:`ExpressionControls`: named directions in FLAME's expression space (``smile``,
  ``mouth_open``, ``brows_up``, ``brows_frown``, ``eyes_closed``) derived from the loaded FLAME
  model itself, by least squares on its landmarks (see :meth:`ExpressionControls.from_flame`);
* :class:`MotionStrengths` + :func:`transfer_motion`: a driver's motion applied to the source
  channel by channel (head rotation, jaw, expression, camera), either absolute (the paper's
  recomposition, blended with the source by each strength) or relative to a reference frame of
  the driver (the driver's motion on top of the source's own pose and expression).

Identity (``shape``), albedo and lighting codes are never touched.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from .csg.codes import FlameCodes
from .rotations import angles_to_axis_angle, axis_angle_to_angles, axis_angle_to_matrix, matrix_to_axis_angle, scale_rotation

MAX_YAW = 90.0
"""Largest |yaw| an edit may ask for: a full profile. Beyond it the face would turn away from the camera."""
MAX_PITCH = 60.0
MAX_ROLL = 90.0
MAX_JAW = 40.0
"""Jaw opening in degrees; FLAME's jaw is plausible up to about 30-35 degrees."""
MAX_STRENGTH = 2.0
"""Largest per-channel strength of :class:`MotionStrengths` (2 = the motion exaggerated twice)."""


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class HeadEdit:
    """One edit of a face's pose and expression (``None`` keeps the source's value).

    Attributes:
        yaw, pitch, roll: head rotation in degrees (:mod:`pasl.rotations`: positive yaw turns the
            face towards the image's right, positive pitch turns it down, positive roll tilts it
            counter-clockwise in the image).
        add: ``True``: the angles and the jaw opening are added to the source's (angles as
            ``angles(source) + delta`` in the same convention, the jaw kept in 0 .. :data:`MAX_JAW`);
            ``False``: they replace them.
        jaw: jaw opening in degrees (0 = closed).
        expression: factor on the source's expression codes (0 = neutral, 1 = unchanged).
        controls: named expression controls and their amounts (see :class:`ExpressionControls`),
            added after the factor.
        keep_centre: move the camera so that the face's landmarks stay centred where they were
            (FLAME turns about the neck; without this a profile slides sideways out of the crop).
    """

    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    add: bool = False
    jaw: float | None = None
    expression: float = 1.0
    controls: Mapping[str, float] = field(default_factory=dict)
    keep_centre: bool = True

    def __post_init__(self) -> None:
        for name in ("add", "keep_centre"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        scale = 2.0 if self.add else 1.0  # deltas may cross zero: -90 -> +90 is a 180 degree turn
        _check_range("yaw", self.yaw, -MAX_YAW * scale, MAX_YAW * scale)
        _check_range("pitch", self.pitch, -MAX_PITCH * scale, MAX_PITCH * scale)
        _check_range("roll", self.roll, -MAX_ROLL * scale, MAX_ROLL * scale)
        _check_range("jaw", self.jaw, -MAX_JAW if self.add else 0.0, MAX_JAW)
        _check_range("expression", self.expression, 0.0, MAX_STRENGTH)
        for name, amount in self.controls.items():
            _check_range(f"control {name!r}", amount, -MAX_STRENGTH, MAX_STRENGTH)


PRESET_FORMAT = "pasl-head-edit/1"
"""The ``format`` field of an edit preset file (JSON, never a pickle: a preset is data, it runs nothing)."""
_PRESET_FIELDS = ("yaw", "pitch", "roll", "add", "jaw", "expression", "controls", "keep_centre")


def save_preset(edit: HeadEdit, path: str | Path) -> Path:
    """Write ``edit`` as a small JSON file that :func:`load_preset` reads back (expressions to reuse and share)."""
    path = Path(path)
    record = {"format": PRESET_FORMAT, **{name: getattr(edit, name) for name in _PRESET_FIELDS}}
    record["controls"] = dict(edit.controls)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_preset(path: str | Path) -> HeadEdit:
    """A :class:`HeadEdit` from a preset file; anything that is not such a file is one sentence naming it."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable edit preset (JSON): {err}") from None
    if not isinstance(record, dict) or record.get("format") != PRESET_FORMAT:
        raise ValueError(f"{path} is not an edit preset: it needs \"format\": \"{PRESET_FORMAT}\"")
    unknown = sorted(set(record) - set(_PRESET_FIELDS) - {"format"})
    if unknown:
        raise ValueError(f"{path}: unknown preset field(s) {unknown}; fields: {', '.join(_PRESET_FIELDS)}")
    values = {name: record[name] for name in _PRESET_FIELDS if name in record}
    if not isinstance(values.get("controls", {}), dict):
        raise ValueError(f"{path}: controls must be an object of control names and amounts")
    unknown_controls = sorted(set(values.get("controls", {})) - set(CONTROL_NAMES))
    if unknown_controls:
        raise ValueError(f"{path}: unknown expression control(s) {unknown_controls}; controls: {', '.join(CONTROL_NAMES)}")
    try:
        return HeadEdit(**values)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def head_angles(codes: FlameCodes) -> torch.Tensor:
    """``(B, 3)`` ``[yaw, pitch, roll]`` degrees of each face's head rotation."""
    return axis_angle_to_angles(codes.pose[:, :3].double()).to(codes.dtype)


def jaw_opening(codes: FlameCodes) -> torch.Tensor:
    """``(B,)`` jaw opening in degrees (the jaw's rotation about FLAME's x axis)."""
    return torch.rad2deg(codes.pose[:, 3])


def _edited_angles(codes: FlameCodes, edit: HeadEdit) -> torch.Tensor | None:
    offsets = (edit.yaw, edit.pitch, edit.roll)
    if all(v is None for v in offsets) or (edit.add and all(not v for v in offsets)):
        return None  # nothing to turn: the codes stay bit for bit
    current = head_angles(codes).double()
    wanted = [edit.yaw, edit.pitch, edit.roll]
    columns = []
    for axis, value in enumerate(wanted):
        if value is None:
            columns.append(current[:, axis])
        else:
            columns.append(current[:, axis] + value if edit.add else torch.full_like(current[:, axis], float(value)))
    angles = torch.stack(columns, dim=1)
    angles[:, 0] = angles[:, 0].clamp(-MAX_YAW, MAX_YAW)
    return angles


def edit_codes(codes: FlameCodes, edit: HeadEdit, controls: "ExpressionControls | None" = None, flame=None) -> FlameCodes:
    """``codes`` with ``edit`` applied (shape, albedo and lighting untouched).

    Args:
        codes: a batch of faces' codes.
        edit: what to change.
        controls: the named expression directions, needed when ``edit.controls`` is not empty.
        flame: the FLAME layer, needed for ``edit.keep_centre`` (skipped without it).
    """
    pose, exp, cam = codes.pose.clone(), codes.exp, codes.cam
    angles = _edited_angles(codes, edit)
    if angles is not None:
        pose[:, :3] = angles_to_axis_angle(angles).to(pose.dtype)
    if edit.jaw and edit.add:  # closing stops at 0 (or at the face's own value if DECA read it slightly negative)
        opened = pose[:, 3] + math.radians(edit.jaw)
        pose[:, 3] = torch.minimum(torch.maximum(opened, pose[:, 3].clamp(max=0.0)), torch.tensor(math.radians(MAX_JAW)))
    elif edit.jaw is not None and not edit.add:
        pose[:, 3:] = 0.0
        pose[:, 3] = math.radians(edit.jaw)
    if edit.expression != 1.0:
        exp = exp * edit.expression
    if any(amount != 0.0 for amount in edit.controls.values()):
        if controls is None:
            raise ValueError(f"the expression controls {sorted(edit.controls)} need ExpressionControls (from the FLAME model)")
        exp = exp + controls.combine(edit.controls).to(exp)
    edited = codes.replace(pose=pose, exp=exp, cam=cam)
    if edit.keep_centre and flame is not None and angles is not None:
        edited = keep_centre(flame, codes, edited)
    return edited


def _landmark_centre(flame, codes: FlameCodes) -> torch.Tensor:
    """``(B, 2)`` mean of the 68 posed 3D landmarks' x, y (model units, before the camera)."""
    device, dtype = flame.v_template.device, flame.v_template.dtype
    out = flame(codes.shape.to(device, dtype), codes.exp.to(device, dtype), codes.pose.to(device, dtype))
    return out.landmarks3d[..., :2].mean(1).to(codes.cam)


def keep_centre(flame, before: FlameCodes, after: FlameCodes) -> FlameCodes:
    """``after`` with its camera translation moved so its landmarks' centre projects where ``before``'s did.

    DECA's camera is orthographic, ``x_ndc = s * (x + t)``, so matching centres is a shift of
    ``t`` by the difference of the two centres, in model units at the same scale."""
    shift = _landmark_centre(flame, before) - _landmark_centre(flame, after)
    cam = after.cam.clone()
    cam[:, 1:] = cam[:, 1:] + shift
    return after.replace(cam=cam)


# ---------------------------------------------------------------- named expression controls

CONTROL_NAMES = ("smile", "mouth_open", "brows_up", "brows_frown", "eyes_closed")
"""The named expression controls, in the order :meth:`ExpressionControls.from_flame` defines them."""

LEFT_OUTER_EYE, RIGHT_OUTER_EYE = 36, 45
"""iBUG outer eye corners: their distance is the unit of every control's target motion."""
_CONTROL_WEIGHT_ELSEWHERE = 0.3
"""Weight of "the other landmarks stay put" relative to the targeted points: controls stay local
without forcing the impossible (FLAME's smile also lifts the cheeks)."""
_RIDGE = 1e-4
"""Tikhonov weight on the expression vector (relative to the system's scale): keeps each control's
code small where FLAME has several ways to make the same landmark motion."""


def _control_targets(neutral: torch.Tensor) -> dict[str, tuple[dict[int, tuple[float, float, float]], str]]:
    """Per control: ``{landmark: (dx, dy, dz)}`` in units of the outer-eye distance, and what it does.

    FLAME's frame: x to the face's left (image right), y up, z out of the face. Landmarks in iBUG
    order: 17-21 / 22-26 brows, 36-41 / 42-47 eyes (37, 38 / 43, 44 upper lids; 41, 40 / 47, 46
    the lids below them), 48 / 54 mouth corners, 50-52 upper lip, 56-58 lower lip, 61-63 / 65-67
    inner lips, 6-10 chin.
    """
    lid_gap = {
        upper: tuple(float(v) for v in (neutral[lower] - neutral[upper]) / _eye_distance(neutral))
        for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46))
    }
    side = lambda point: 1.0 if neutral[point, 0] > neutral[30, 0] else -1.0  # noqa: E731  (+1 on the image-right half)
    return {
        "smile": ({48: (0.10 * side(48), 0.10, 0.0), 54: (0.10 * side(54), 0.10, 0.0),
                   49: (0.05 * side(49), 0.05, 0.0), 53: (0.05 * side(53), 0.05, 0.0)},
                  "mouth corners out and up by 10% of the eye distance"),
        "mouth_open": ({56: (0.0, -0.25, 0.0), 57: (0.0, -0.25, 0.0), 58: (0.0, -0.25, 0.0),
                        65: (0.0, -0.22, 0.0), 66: (0.0, -0.22, 0.0), 67: (0.0, -0.22, 0.0),
                        50: (0.0, 0.03, 0.0), 51: (0.0, 0.03, 0.0), 52: (0.0, 0.03, 0.0)},
                       "lower lip down by 25% of the eye distance, upper lip up a little (the jaw stays)"),
        "brows_up": ({i: (0.0, 0.12, 0.0) for i in range(17, 27)}, "both brows up by 12% of the eye distance"),
        "brows_frown": ({20: (0.04 * side(20), -0.06, 0.0), 21: (0.04 * side(21), -0.06, 0.0),
                         22: (0.04 * side(22), -0.06, 0.0), 23: (0.04 * side(23), -0.06, 0.0),
                         19: (0.0, -0.04, 0.0), 24: (0.0, -0.04, 0.0)},
                        "inner brows down and together"),
        "eyes_closed": ({k: v for k, v in lid_gap.items()}, "upper lids down onto the lower lids"),
    }


def _eye_distance(neutral: torch.Tensor) -> torch.Tensor:
    return (neutral[RIGHT_OUTER_EYE] - neutral[LEFT_OUTER_EYE]).norm()


@dataclass(frozen=True)
class ExpressionControls:
    """Named directions in FLAME's 50-d expression space.

    Attributes:
        directions: ``(K, 50)`` one expression code per control: amount 1 makes the landmark
            motion the control describes (as closely as FLAME's expression space allows).
        names: the K control names.
        descriptions: what each control moves.
        fit_error: ``(K,)`` relative residual of each least-squares fit on its targeted
            landmarks (0 = FLAME makes exactly the asked motion).
    """

    directions: torch.Tensor
    names: tuple[str, ...]
    descriptions: tuple[str, ...]
    fit_error: torch.Tensor

    @classmethod
    def from_flame(cls, flame) -> "ExpressionControls":
        """Derive the controls from a loaded :class:`pasl.flame.FLAME` by least squares on its landmarks.

        At zero pose and neutral shape FLAME's 68 3D landmarks are linear in the expression code:
        ``L(e) = L0 + J e`` with ``J`` the expression blend shapes sampled at the landmarks'
        barycentric points. Each control asks for a motion ``d`` of a few landmarks (in units of
        the outer-eye distance, see :func:`_control_targets`) and no motion of the others (weight
        :data:`_CONTROL_WEIGHT_ELSEWHERE`), and solves ``min ||W (J e - d)||² + ridge ||e||²``.
        Nothing is hand-tuned per FLAME release: a different FLAME model gives its own controls.
        """
        buffers = {name: getattr(flame, name).detach().double().cpu() for name in
                   ("v_template", "shapedirs", "faces", "full_lmk_faces_idx", "full_lmk_bary_coords")}
        corners = buffers["faces"].long()[buffers["full_lmk_faces_idx"].long()]  # (68, 3) vertex ids
        bary = buffers["full_lmk_bary_coords"]  # (68, 3)
        neutral = torch.einsum("lfi,lf->li", buffers["v_template"][corners], bary)  # (68, 3)
        n_exp = buffers["shapedirs"].shape[-1] - 100
        basis = buffers["shapedirs"][..., 100:]  # (V, 3, 50)
        jacobian = torch.einsum("lfie,lf->lie", basis[corners], bary).reshape(-1, n_exp)  # (68*3, 50)
        if not bool(jacobian.abs().max() > 0):
            raise ValueError("this FLAME model has no expression blend shapes, so it has no expression controls")
        unit = _eye_distance(neutral)
        directions, descriptions, errors = [], [], []
        table = _control_targets(neutral)
        for name in CONTROL_NAMES:
            targets, description = table[name]
            wanted = torch.zeros(neutral.shape[0], 3, dtype=torch.float64)
            weight = torch.full((neutral.shape[0], 1), _CONTROL_WEIGHT_ELSEWHERE, dtype=torch.float64)
            for point, motion in targets.items():
                wanted[point] = torch.tensor(motion, dtype=torch.float64) * unit
                weight[point] = 1.0
            w = weight.expand(-1, 3).reshape(-1, 1)
            a, b = w * jacobian, (w * wanted.reshape(-1, 1))
            ridge = _RIDGE * a.pow(2).sum() / n_exp
            code = torch.linalg.solve(a.T @ a + ridge * torch.eye(n_exp, dtype=torch.float64), a.T @ b).squeeze(1)
            points = torch.tensor(sorted(targets))
            made = (jacobian @ code).reshape(-1, 3)[points]
            errors.append(float((made - wanted[points]).norm() / wanted[points].norm().clamp(min=1e-12)))
            directions.append(code)
            descriptions.append(description)
        return cls(torch.stack(directions).float(), CONTROL_NAMES, tuple(descriptions), torch.tensor(errors))

    def combine(self, amounts: Mapping[str, float]) -> torch.Tensor:
        """``(1, 50)`` expression offset of several controls at the given amounts."""
        unknown = sorted(set(amounts) - set(self.names))
        if unknown:
            raise ValueError(f"unknown expression control(s) {unknown}; the controls are {', '.join(self.names)}")
        offset = torch.zeros(1, self.directions.shape[1], dtype=self.directions.dtype)
        for name, amount in amounts.items():
            offset = offset + float(amount) * self.directions[self.names.index(name)]
        return offset


# ---------------------------------------------------------------- motion transfer with strengths

CHANNELS = ("head", "jaw", "expression", "camera")
"""What :class:`MotionStrengths` weighs: head rotation, jaw rotation, expression codes, camera (scale + translation)."""


@dataclass(frozen=True)
class MotionStrengths:
    """How much of the driver's motion each channel takes: 0 = keep the source's, 1 = the driver's, up to 2."""

    head: float = 1.0
    jaw: float = 1.0
    expression: float = 1.0
    camera: float = 1.0

    def __post_init__(self) -> None:
        for name in CHANNELS:
            _check_range(f"strength of {name}", getattr(self, name), 0.0, MAX_STRENGTH)

    @classmethod
    def preset(cls, name: str) -> "MotionStrengths":
        """``"all"``, ``"rotation"`` (the head turns, the face keeps the source's expression) or
        ``"expression"`` (jaw and expression move, the head keeps the source's pose and framing)."""
        presets = {"all": cls(), "rotation": cls(jaw=0.0, expression=0.0, camera=0.0), "expression": cls(head=0.0, camera=0.0)}
        if name not in presets:
            raise ValueError(f"unknown strength preset {name!r}; presets: {', '.join(presets)}")
        return presets[name]

    @classmethod
    def parse(cls, text: str) -> "MotionStrengths":
        """From ``"head=1,expression=0.5"`` (unnamed channels 1) or a preset name, as the command line takes it."""
        text = text.strip()
        if "=" not in text:
            return cls.preset(text)
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in CHANNELS:
                raise ValueError(f"unknown channel {name!r} in {text!r}; channels: {', '.join(CHANNELS)}")
            try:
                values[name] = float(value)
            except ValueError:
                raise ValueError(f"strength of {name} must be a number, got {value.strip()!r}") from None
        return cls(**values)


def _blend(source: torch.Tensor, driver: torch.Tensor, reference: torch.Tensor, strength: float, absolute: bool) -> torch.Tensor:
    """``source + strength * (driver - reference)``, with the two ends exact: the source's values at
    strength 0, the driver's own at strength 1 of an absolute transfer (the paper's code swap, bit for bit)."""
    if strength == 0.0:
        return source.expand_as(driver).clone()
    if absolute and strength == 1.0:
        return driver.clone()
    return source + strength * (driver - reference)


def transfer_motion(
    source: FlameCodes, driver: FlameCodes, reference: FlameCodes | None = None, strengths: MotionStrengths | None = None
) -> FlameCodes:
    """The source's face with the driver's motion, channel by channel.

    Args:
        source: batch 1 (or the driver's batch): the identity, and the pose/expression kept where a
            strength is below 1.
        driver: batch B.
        reference: ``None`` for absolute motion (the motion from the source's pose to the driver's:
            strength 1 everywhere is the paper's recomposition, exactly), or batch 1: the driver frame
            whose pose and expression count as "no motion" (relative motion: the driver's motion since
            that frame, on top of the source's own pose and expression).
        strengths: per channel, see :class:`MotionStrengths`.

    Head rotations compose as rotations (``R = scale(R_driver R_reference^T, s) R_source``),
    jaw and expression add, the camera scale multiplies and its translation adds.
    Shape, albedo and lighting are the source's.
    """
    strengths = strengths or MotionStrengths()
    absolute = reference is None
    count = driver.batch_size
    src = source.expand(count) if source.batch_size == 1 else source
    ref = src if reference is None else (reference.expand(count) if reference.batch_size == 1 else reference)
    if strengths.head == 0.0 or (absolute and strengths.head == 1.0):
        head = (src if strengths.head == 0.0 else driver).pose[:, :3].clone()
    else:
        r_src, r_drv, r_ref = (axis_angle_to_matrix(c.pose[:, :3].double()) for c in (src, driver, ref))
        delta = scale_rotation(matrix_to_axis_angle(r_drv @ r_ref.transpose(1, 2)), strengths.head)
        head = matrix_to_axis_angle(axis_angle_to_matrix(delta) @ r_src).to(driver.dtype)
    jaw = _blend(src.pose[:, 3:], driver.pose[:, 3:], ref.pose[:, 3:], strengths.jaw, absolute)
    exp = _blend(src.exp, driver.exp, ref.exp, strengths.expression, absolute)
    if strengths.camera == 0.0 or (absolute and strengths.camera == 1.0):
        cam = (src if strengths.camera == 0.0 else driver).cam.clone()
    else:
        ratio = (driver.cam[:, :1] / ref.cam[:, :1]).clamp(min=1e-6)
        shift = _blend(src.cam[:, 1:], driver.cam[:, 1:], ref.cam[:, 1:], strengths.camera, absolute)
        cam = torch.cat([src.cam[:, :1] * ratio.pow(strengths.camera), shift], 1)
    return src.replace(pose=torch.cat([head, jaw], dim=1), exp=exp, cam=cam)
