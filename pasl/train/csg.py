"""Fine-tuning the CSG's shape encoder (DECA's ``E_flame``) with the paper's cycle consistency, L_cc.

The paper trains its shape generator so that a recomposed shape survives a round trip: render the source's
identity in the reference's expression and pose, read the rendering back with the same encoder, and the
identity must come back. One step over a batch of pairs ``(x_s, x_r)``, with ``E`` the encoder being trained
and ``E0`` a frozen copy of where it started:

1. ``c_s = E(x_s)``, ``c_r = E(x_r)`` on DECA's crops of the 256 crops (:func:`pasl.shape.deca_images`; DECA's
   landmark pass when a detector is given, else the whole crop);
2. the recomposed shape ``(beta_s, psi_r, theta_r, cam_r)`` (:func:`pasl.csg.codes.recompose`) is drawn as DECA
   draws shapes (:func:`pasl.csg.cycle.render_shape`) and read back: ``c_rc = E(render)``;
3. ``L_cc`` = :func:`pasl.csg.cycle.cycle_loss`: mesh L1 between ``(beta_rc, psi_s, theta_s)`` and
   ``(beta_s, psi_s, theta_s)``;
4. ``L_anchor`` = mean |E(x) - E0(x)| over the codes FLAME uses (shape, expression, pose, camera) of the real
   crops.

Total ``lambda_cc * L_cc + lambda_anchor * L_anchor`` (defaults 1000 and 1: L_cc is in metres, so it weighs as
millimetres against the anchor's code units; at lr 1e-6 the total then falls step by step on a fixed batch, where
with both weights 1 the anchor's growth hides the cycle's fall). Choices of ours, where the paper is silent or its
losses are not released: the paper trains L_cc together with DECA's own photometric and landmark losses, which
need DECA's training data and renderer; the anchor stands in for them, keeping the encoder reading photos as
it did. The source's codes are the cycle's target (no gradient through them, so the loss cannot be met by
shrinking every shape) and the rendering is an input image (no gradient through the rasteriser, whose
gradient ignores visibility). The encoder stays in eval mode: its BatchNorm statistics are DECA's, which
small fine-tuning batches would spoil.

Checkpoints: ``pasl_deca_cc_{step}.safetensors`` (the encoder, in the format :func:`pasl.csg.encoder.load_shape_encoder`
reads and model discovery finds as a DECA file) and ``csg_{step}_state.ckpt`` (optimiser, step, samples seen) to resume.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_output
from ..csg.codes import FlameCodes, recompose
from ..csg.cycle import cycle_loss, render_shape
from ..errors import PASLError
from ..shape import deca_images
from .config import TrainConfig
from .distributed import World, barrier, wrap
from .loop import rng_state, seed_everything, set_rng_state

ANCHORED_FIELDS = ("shape", "exp", "pose", "cam")
"""The codes the anchor holds to the starting encoder's: those FLAME and the renderer use."""
ENCODER_FILE = "pasl_deca_cc_{step}.safetensors"
STATE_FILE = "csg_{step}_state.ckpt"
_STEP = re.compile(r"^pasl_deca_cc_(\d+)\.safetensors$")


class CodeRegressor(nn.Module):
    """``E_flame``'s raw ``(B, 236)`` codes as the module's output (a tensor, what DistributedDataParallel hooks into)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder.regress(images)


def _deca_inputs(source: torch.Tensor, reference: torch.Tensor, detector, device: torch.device) -> torch.Tensor:
    """DECA's crops of sources then references: its landmark pass with a detector, else the whole crop."""
    rule = {"crop_landmarks": "redetect", "detector": detector} if detector is not None else {"crop_landmarks": "mapped"}
    return deca_images(torch.cat([source, reference]), device=device, **rule)[0]


def recomposed_drawing(codes: FlameCodes, count: int, flame, faces: torch.Tensor) -> tuple[FlameCodes, torch.Tensor]:
    """From the codes of ``count`` sources followed by their references: the sources' codes, and DECA's grey
    drawing of the recomposed shapes (source identity, reference expression, pose and camera)."""
    device = faces.device
    target = codes.select(torch.arange(count, device=device))
    shape = recompose(target, codes.select(torch.arange(count, 2 * count, device=device)))
    return target, render_shape(flame(shape.shape, shape.exp, shape.pose).vertices, shape.cam, faces)


def csg_losses(regressor: nn.Module, anchor: nn.Module, flame, faces: torch.Tensor, source: torch.Tensor, reference: torch.Tensor,
               *, detector=None) -> dict[str, torch.Tensor]:
    """``{"cc", "anchor"}`` scalars of one batch of 256 crops ``(B, 3, 256, 256)`` (module docstring).

    ``regressor`` (a :class:`CodeRegressor`, maybe in DDP) runs once with gradients, on the real crops and the
    renderings together; a first pass without gradients gives the codes the renderings are drawn from."""
    device = faces.device
    images = _deca_inputs(source, reference, detector, device)
    count = source.shape[0]
    with torch.no_grad():
        start = FlameCodes.from_vector(anchor.regress(images))
        target, drawn = recomposed_drawing(FlameCodes.from_vector(regressor(images)), count, flame, faces)
    codes = FlameCodes.from_vector(regressor(torch.cat([images, drawn])))
    real, recoded = codes.select(torch.arange(2 * count, device=device)), codes.select(torch.arange(2 * count, 3 * count, device=device))
    anchor_loss = sum((getattr(real, k) - getattr(start, k)).abs().mean() for k in ANCHORED_FIELDS) / len(ANCHORED_FIELDS)
    return {"cc": cycle_loss(target, recoded, flame), "anchor": anchor_loss}


class CSGTrainer:
    """The shape encoder under fine-tuning: one Adam, DDP across processes, checkpoints and exact resume.

    Args:
        encoder: a :class:`pasl.csg.encoder.FlameEncoder` (loaded from the DECA file to start from).
        flame, faces: the FLAME layer and the head template's triangles (the renderer's).
        config: ``lr``, ``beta1``/``beta2``, ``weight_decay``, ``lambda_cc``, ``lambda_anchor``, ``seed``.
        detector: DECA's landmark pass on the crops (None: DECA reads the whole crop).
    """

    def __init__(self, encoder: nn.Module, flame, faces: torch.Tensor, config: TrainConfig, world: World, detector=None,
                 source: str | Path | None = None):
        self.config, self.world, self.detector, self.source = config, world, detector, source
        self.encoder = encoder.to(world.device).eval().requires_grad_(True)
        self.anchor = copy.deepcopy(self.encoder).requires_grad_(False)
        self.flame, self.faces = flame.to(world.device), faces.to(world.device)
        self.ddp = wrap(CodeRegressor(self.encoder), world)
        self.optim = torch.optim.Adam(self.encoder.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                      weight_decay=config.weight_decay)
        self.step = 0
        self.samples_seen = 0

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.optim.zero_grad(set_to_none=True)
        source, reference = (batch[k].to(self.world.device) for k in ("source", "reference"))
        losses = csg_losses(self.ddp, self.anchor, self.flame, self.faces, source, reference, detector=self.detector)
        total = self.config.lambda_cc * losses["cc"] + self.config.lambda_anchor * losses["anchor"]
        total.backward()
        self.optim.step()
        self.step += 1
        self.samples_seen += source.shape[0] * self.world.size
        return {"csg/total": float(total.detach()), "csg/cc": float(losses["cc"].detach()), "csg/anchor": float(losses["anchor"].detach())}

    @torch.no_grad()
    def samples(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A grid, one pair a row: source, reference, and the recomposed shape as the encoder now reads them
        (DECA's grey rendering in the 224 crop, resized to 256)."""
        from ..imageops import resize_square
        from .loop import image_grid

        source, reference = (batch[k].to(self.world.device) for k in ("source", "reference"))
        images = _deca_inputs(source, reference, self.detector, self.world.device)
        _, drawn = recomposed_drawing(self.encoder(images), source.shape[0], self.flame, self.faces)
        return image_grid([source, reference, resize_square(drawn, source.shape[-1])])

    def save(self, folder: str | Path) -> Path:
        """Write the encoder and the resume state of the current step (main process; collective call)."""
        from ..csg.encoder import SAFETENSORS_FORMAT
        from ..weights import save_converted

        folder = Path(folder)
        path = folder / ENCODER_FILE.format(step=self.step)
        if self.world.is_main:
            state = {k: v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
            started = self.source or getattr(self.encoder, "source", "")
            save_converted(state, path, format=SAFETENSORS_FORMAT, sources={"started_from": started} if Path(started).is_file() else {},
                           extra={"content": "E_flame", "fine_tuned": f"cycle consistency (pasl.train.csg), step {self.step}"})
            with atomic_output(folder / STATE_FILE.format(step=self.step)) as temporary:
                torch.save({"step": self.step, "samples_seen": self.samples_seen, "optim": self.optim.state_dict(),
                            "world_size": self.world.size, "rng": rng_state(self.world.device)}, temporary)
        barrier(self.world)
        return path

    def load(self, folder: str | Path, step: int) -> None:
        """Resume from ``step``'s encoder and state (random states only on one process, as saved)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        self.encoder.load_state_dict(load_file(folder / ENCODER_FILE.format(step=step)))  # strict: the same encoder's keys
        state = torch.load(folder / STATE_FILE.format(step=step), map_location="cpu", weights_only=True)
        self.optim.load_state_dict(state["optim"])
        self.step, self.samples_seen = int(state["step"]), int(state["samples_seen"])
        if state.get("world_size") == self.world.size == 1:
            set_rng_state(state["rng"], self.world.device)
        else:
            seed_everything(self.config.seed + self.world.rank + 1_000_003 * self.step)


def latest_csg_step(folder: str | Path) -> int | None:
    """The last step with both an encoder and a state file in ``folder``."""
    folder = Path(folder)
    steps = [int(m.group(1)) for p in folder.glob("pasl_deca_cc_*.safetensors") if (m := _STEP.match(p.name))]
    steps = [s for s in steps if (folder / STATE_FILE.format(step=s)).is_file()]
    return max(steps) if steps else None


def require_step(folder: str | Path) -> int:
    step = latest_csg_step(folder)
    if step is None:
        raise PASLError(f"--resume {folder}: no complete CSG checkpoint (pasl_deca_cc_{{step}}.safetensors and its state) there.")
    return step
