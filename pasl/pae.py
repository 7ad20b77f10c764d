"""PAE: PASL's pose-adapted face encoders, and identity similarity (CSIM) between faces.

The paper judges identity with six IR-50 face-recognition networks, one per *pair* of
head-pose bins (frontal F: |yaw| <= 30, semi-profile S: 30-60, profile P: >= 60), so that a
frontal source and a profile result are compared by a network trained on such pairs
(``docs/official-code.md`` §3). The networks are face.evoLVe's ``Backbone`` IR-50 (§3.4); the
released files are ``POE/{FF,FS,FP,SS,SP,PP}/Backbone_IR_50_Epoch_*.pth``. A single
ArcFace IR-50 (``backbone_ir50_ms1m_epoch63.pth``) gives the paper's ArcFace-CSIM.

Two input recipes (:data:`PROTOCOLS`):

* ``"fixed"`` (default): RGB, antialiased resize to 112, ``(x - 0.5) / 0.5`` -- how
  face.evoLVe networks are trained -- and the PP pair uses the PP network.
* ``"official"``: exactly ``mean_pae_csim.py``: the image as saved to PNG (8 bit), BGR,
  ``cv2.resize`` to 112, ``[0, 1]`` without normalisation, and the PP pair judged by the
  SS network (a bug of the release, kept only to reproduce its numbers).

Yaw comes from our own FLAME codes (:func:`head_yaw_degrees`), not from 3DDFA_V2 as in the
authors' scripts, so no extra 3D model is needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .catalog import PAE_EPOCHS, PAE_FILES, entry, find, pae_pair_of, search_folders, where_to_get
from .errors import MissingWeightError, WeightFileError
from .imageops import to_uint8_hwc
from .lbs import batch_rodrigues, yaw_from_rotation
from .weights import describe_foreign_checkpoint, load_pickle_weights, read_safetensors, require_file, strict_load

log = logging.getLogger(__name__)

INPUT_SIZE = 112
EMBEDDING_DIM = 512
FRONTAL_MAX_DEG = 30.0
"""|yaw| at or below this is frontal (F)."""
PROFILE_MIN_DEG = 60.0
"""|yaw| at or above this is profile (P); in between is semi-profile (S)."""
PAIR_KINDS = ("FF", "FS", "FP", "SS", "SP", "PP")
"""One network per unordered pair of pose bins, named as the official ``POE/`` folders."""
OFFICIAL_EPOCHS = PAE_EPOCHS
"""``Backbone_IR_50_Epoch_{n}.pth`` of each released network (the catalogue's table)."""
Protocol = Literal["fixed", "official"]
PROTOCOLS: tuple[str, ...] = ("fixed", "official")
IR50_STAGES = ((64, 3), (128, 4), (256, 14), (512, 3))
"""(channels, units) of IR-50's four stages; the first unit of each halves the resolution."""


class IRUnit(nn.Module):
    """face.evoLVe ``bottleneck_IR``: pre-activation residual unit (BN, conv, PReLU, conv, BN)."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        if in_channels == channels:
            self.shortcut_layer = nn.MaxPool2d(1, stride)  # parameter-free subsampling
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """IR-50 identity backbone for 112x112 faces -> 512-d embeddings (not normalised).

    Sub-module names equal face.evoLVe's ``Backbone`` so its state dicts load strictly.
    """

    def __init__(self):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units, in_channels = [], 64
        for channels, count in IR50_STAGES:
            units += [IRUnit(in_channels, channels, 2)] + [IRUnit(channels, channels, 1) for _ in range(count - 1)]
            in_channels = channels
        self.body = nn.Sequential(*units)
        side = INPUT_SIZE // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(), nn.Flatten(), nn.Linear(512 * side * side, EMBEDDING_DIM), nn.BatchNorm1d(EMBEDDING_DIM)
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 112, 112)`` prepared faces (see :func:`prepare_faces`) -> ``(B, 512)``."""
        if faces.ndim != 4 or faces.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"IR-50 takes (B, 3, {INPUT_SIZE}, {INPUT_SIZE}) faces, got {tuple(faces.shape)}")
        return self.output_layer(self.body(self.input_layer(faces)))


def _strip_data_parallel(state: dict) -> dict:
    """Files saved from ``nn.DataParallel`` prefix every key with ``module.``."""
    if state and all(str(k).startswith("module.") for k in state):
        return {str(k)[len("module."):]: v for k, v in state.items()}
    return state


def load_ir50(path: str | Path, device: str | torch.device = "cpu") -> IR50:
    """An IR-50 from a face.evoLVe ``Backbone_IR_50_*.pth`` state dict (or a ``.safetensors`` of it), in eval mode."""
    path = require_file(path, "IR-50 identity network", entry("pae").source)
    if path.suffix == ".safetensors":
        state, _ = read_safetensors(path)
    else:
        state = load_pickle_weights(path, expected="an IR-50 identity network")
        foreign = describe_foreign_checkpoint(state, "ir50")
        if foreign:
            raise WeightFileError(f"{path} looks like {foreign}, not an IR-50 identity network (Backbone_IR_50_*.pth).")
        if not isinstance(state, dict):
            raise WeightFileError(f"{path} is not an IR-50 state dict (found {type(state).__name__}).")
        state = _strip_data_parallel(state)
    model = IR50()
    strict_load(model, state, path, "IR-50")
    return model.to(device).eval()


def head_yaw_degrees(pose: torch.Tensor) -> torch.Tensor:
    """Head yaw in degrees from FLAME pose codes (``(B, 6)`` or ``(B, 3)`` axis-angle).

    Positive = the face turns towards the image's right. Only ``|yaw|`` picks the encoders.
    """
    rotation = batch_rodrigues(pose[:, :3].float())
    return torch.rad2deg(yaw_from_rotation(rotation))


def pose_bin(yaw_deg: float) -> str:
    """``"F"``, ``"S"`` or ``"P"`` for one yaw in degrees."""
    yaw = abs(float(yaw_deg))
    return "F" if yaw <= FRONTAL_MAX_DEG else ("P" if yaw >= PROFILE_MIN_DEG else "S")


def pair_kind(yaw_a_deg: float, yaw_b_deg: float) -> str:
    """Which encoder judges two faces: the official rule, tested in its order.

    The order matters only at exactly 30 or 60 degrees (e.g. 30 and 45 is SS, not FS).
    """
    a, b = abs(float(yaw_a_deg)), abs(float(yaw_b_deg))
    lo, hi = FRONTAL_MAX_DEG, PROFILE_MIN_DEG
    if a <= lo and b <= lo:
        return "FF"
    if a >= hi and b >= hi:
        return "PP"
    if lo <= a <= hi and lo <= b <= hi:
        return "SS"
    if (a <= lo and b >= hi) or (b <= lo and a >= hi):
        return "FP"
    if (a <= lo and lo <= b <= hi) or (b <= lo and lo <= a <= hi):
        return "FS"
    return "SP"


def prepare_faces(faces: torch.Tensor, protocol: Protocol = "fixed") -> torch.Tensor:
    """Face crops ``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 3, 112, 112)`` IR-50 input (module docstring)."""
    if faces.ndim != 4 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (B, 3, H, W), got {tuple(faces.shape)}")
    if protocol == "fixed":
        small = F.interpolate(faces.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return (small - 0.5) / 0.5
    if protocol != "official":
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    import cv2

    # torchvision.save_image's rounding, then what cv2.imread + cv2.resize + ToTensor give
    pixels = to_uint8_hwc(faces)
    small = [cv2.resize(np.ascontiguousarray(p[..., ::-1]), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for p in pixels]
    return torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float().div(255).to(faces.device)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of ``(B, D)`` embeddings, ``eps=1e-6`` as the official metric."""
    return F.cosine_similarity(a.float(), b.float(), dim=1, eps=1e-6)


class PoseAdaptedEncoders(nn.Module):
    """The six PAE networks (or one ArcFace network standing in for all six pairs).

    Attributes:
        networks: distinct IR-50s by name (``"FF"`` ... or ``"arcface"``).
        route: pair kind -> key of :attr:`networks`.
    """

    def __init__(self, networks: dict[str, IR50], route: dict[str, str]):
        super().__init__()
        missing = [k for k in PAIR_KINDS if route.get(k) not in networks]
        if missing:
            raise ValueError(f"no network for pair kinds {missing}")
        self.networks = nn.ModuleDict(networks)
        self.route = dict(route)

    @property
    def single(self) -> bool:
        """True for one ArcFace network (the same embedding whatever the poses)."""
        return len(self.networks) == 1

    def network(self, kind: str, protocol: Protocol = "fixed") -> IR50:
        if kind == "PP" and protocol == "official" and not self.single:
            kind = "SS"  # mean_pae_csim.py: criterion_id_pp = arcface_ss
        return self.networks[self.route[kind]]

    def embed(self, faces: torch.Tensor, kinds: list[str], protocol: Protocol = "fixed") -> torch.Tensor:
        """``(B, 512)`` embeddings of face crops, face ``i`` by the network of ``kinds[i]``.

        Faces are grouped by network so each runs once per call.
        """
        if len(kinds) != faces.shape[0]:
            raise ValueError(f"got {faces.shape[0]} faces but {len(kinds)} pair kinds")
        first = next(self.parameters())
        inputs = prepare_faces(faces, protocol).to(device=first.device, dtype=first.dtype)
        out = torch.empty(faces.shape[0], EMBEDDING_DIM, device=first.device, dtype=torch.float32)
        groups: dict[IR50, list[int]] = {}
        for i, kind in enumerate(kinds):
            groups.setdefault(self.network(kind, protocol), []).append(i)
        for network, indices in groups.items():
            index = torch.tensor(indices, device=first.device)
            out[index] = network(inputs[index]).float()
        return out

    def similarity(
        self, faces_a: torch.Tensor, faces_b: torch.Tensor, yaw_a: torch.Tensor, yaw_b: torch.Tensor, protocol: Protocol = "fixed"
    ) -> tuple[torch.Tensor, list[str]]:
        """CSIM of face pairs ``(a[i], b[i])`` by the encoder their yaws select; also the kinds used.

        A batch-1 side is paired with every face of the other side.
        """
        count = max(faces_a.shape[0], faces_b.shape[0])
        faces_a, faces_b = (f.expand(count, -1, -1, -1) if f.shape[0] == 1 else f for f in (faces_a, faces_b))
        yaw_a, yaw_b = (y.reshape(-1).expand(count) if y.numel() == 1 else y.reshape(-1) for y in (yaw_a, yaw_b))
        if not faces_a.shape[0] == faces_b.shape[0] == yaw_a.shape[0] == yaw_b.shape[0]:
            raise ValueError(
                f"mismatched batches: {faces_a.shape[0]} and {faces_b.shape[0]} faces, {yaw_a.shape[0]} and {yaw_b.shape[0]} yaws"
            )
        kinds = [pair_kind(a, b) for a, b in zip(yaw_a.tolist(), yaw_b.tolist())]
        return cosine_similarity(self.embed(faces_a, kinds, protocol), self.embed(faces_b, kinds, protocol)), kinds




def find_pae_files(folders: list[Path]) -> dict[str, Path]:
    """The PAE file of each pair kind found under ``folders`` (first found wins)."""
    files: dict[str, Path] = {}
    for path in find("pae", folders):
        kind = pae_pair_of(path)
        if kind is None:
            log.warning("%s: not inside an FF/FS/FP/SS/SP/PP folder, so its pose pair is unknown; ignored", path)
        elif kind in files:
            log.warning("two PAE files for %s: using %s, ignoring %s", kind, files[kind], path)
        else:
            files[kind] = path
    return files


def load_pae(
    folders: list[str | Path] | None = None, *, arcface: str | Path | None = None, device: str | torch.device = "cpu"
) -> PoseAdaptedEncoders:
    """The six PAE networks found under ``folders`` (layout ``POE/FF/Backbone_IR_50_Epoch_80.pth`` ...),
    or, with ``arcface``, one IR-50 used for every pair.

    Raises:
        MissingWeightError: some of the six files are missing (the message lists them).
    """
    if arcface is not None:
        return PoseAdaptedEncoders({"arcface": load_ir50(arcface, device)}, {k: "arcface" for k in PAIR_KINDS})
    searched = search_folders(folders)
    files = find_pae_files(searched)
    missing = [k for k in PAIR_KINDS if k not in files]
    if missing:
        wanted = ", ".join(PAE_FILES[k] for k in missing)
        searched_text = ", ".join(map(str, searched))
        raise MissingWeightError(f"PAE identity networks missing: {wanted} (searched {searched_text}). {where_to_get('pae')}")
    return PoseAdaptedEncoders({k: load_ir50(files[k], device) for k in PAIR_KINDS}, {k: k for k in PAIR_KINDS})


@dataclass(frozen=True)
class IdentityReference:
    """A source face ready to be compared with results (the ``PASL_IDENTITY`` payload).

    Attributes:
        faces: ``(B, 3, H, W)`` the source crops, RGB [0, 1], on the CPU.
        yaw: ``(B,)`` their head yaw in degrees.
        embeddings: pair kind -> ``(B, 512)`` embedding by that kind's network (``"fixed"`` recipe).
    """

    faces: torch.Tensor
    yaw: torch.Tensor
    embeddings: dict[str, torch.Tensor]

    @property
    def pose_bins(self) -> list[str]:
        return [pose_bin(y) for y in self.yaw.tolist()]


def identity_reference(pae: PoseAdaptedEncoders, faces: torch.Tensor, yaw: torch.Tensor) -> IdentityReference:
    """Embed source faces with every pair network that can involve them (all six, or the one ArcFace)."""
    kinds = PAIR_KINDS[:1] if pae.single else PAIR_KINDS
    embeddings = {kind: pae.embed(faces, [kind] * faces.shape[0]).cpu() for kind in kinds}
    if pae.single:
        embeddings = {kind: embeddings[PAIR_KINDS[0]] for kind in PAIR_KINDS}
    return IdentityReference(faces.detach().float().cpu(), yaw.detach().float().cpu().reshape(-1), embeddings)
