"""One training step of the AEG, and the state a step needs to be repeated exactly.

A step (``pasl-reference.md`` §5) is: the discriminator step (both discriminators, one Adam step
each), then the generator step (generator and style encoder), then the EMA update. With
``grad_accum = k`` each of the two steps first accumulates the gradients of ``k`` micro-batches
(each loss divided by ``k``), so a step equals one on a k-times larger batch. Under DDP, gradients
are averaged over processes only at the last micro-batch. ``precision`` ``bf16``/``fp16`` runs the
forward passes under ``torch.autocast`` (fp16, CUDA only, with a gradient scaler per step).
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PASLError
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import World, barrier, gather_objects, no_sync, wrap
from .losses import GeneratorInputs, discriminator_loss, generator_loss
from .nets import EMA_NAMES, NET_NAMES, ema_update

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
BATCH_KEYS = ("source", "reference", "target", "depth", "landmarks", "yaw_source", "yaw_reference")


def image_grid(columns: list[torch.Tensor]) -> torch.Tensor:
    """``(3, B * H, C * W)`` on the CPU from ``C`` batches ``(B, 3, H, W)`` in [0, 1]: row ``b`` is item ``b`` of each."""
    rows = [torch.cat([column[b].detach().float().cpu().clamp(0, 1) for column in columns], dim=-1) for b in range(columns[0].shape[0])]
    return torch.cat(rows, dim=-2)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (all devices) random states from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached)  # weights_only-loadable
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class Trainer:
    """The networks, their optimisers and the step counter of a run.

    Args:
        nets, ema: from :func:`pasl.train.nets.build_nets` (moved to ``world.device`` here).
        config: the run's :class:`~pasl.train.config.TrainConfig`.
        world: this process's :class:`~pasl.train.distributed.World`.
        vgg: a :class:`~pasl.train.vgg.VGG19Perceptual` when ``lambda_vgg > 0``.
        pae: a :class:`pasl.pae.PoseAdaptedEncoders` when ``lambda_id > 0``.
    """

    def __init__(self, nets: nn.ModuleDict, ema: nn.ModuleDict, config: TrainConfig, world: World, vgg: nn.Module | None = None, pae=None):
        self.config, self.world = config, world
        self.autocast_dtype = AUTOCAST_DTYPES[config.precision]
        if config.precision == "fp16" and world.device.type != "cuda":
            raise PASLError("config key 'precision' is fp16, which needs a CUDA device; use bf16 or fp32 on the CPU.")
        self.nets = nets.to(world.device).train()
        self.ema = ema.to(world.device).train()
        self.vgg = None if vgg is None else vgg.to(world.device)
        self.pae = None if pae is None else pae.to(world.device).eval().requires_grad_(False)
        self.optims = {
            name: torch.optim.Adam(
                nets[name].parameters(), lr=config.lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay
            )
            for name in NET_NAMES
        }
        self.ddp = {name: wrap(nets[name], world) for name in NET_NAMES}
        fp16 = config.precision == "fp16"
        self.scalers = {part: torch.amp.GradScaler(world.device.type, enabled=fp16) for part in ("d", "g")}
        self.step = 0
        self.samples_seen = 0

    def _autocast(self):
        return torch.autocast(self.world.device.type, dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None)

    def _on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: batch[key].to(self.world.device, non_blocking=True) for key in BATCH_KEYS}

    def train_step(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One optimisation step over ``batches`` (``grad_accum`` micro-batches of :class:`~pasl.train.data.PairsDataset`
        items); returns the mean of each loss part over them (this process only)."""
        batches = [self._on_device(batch) for batch in batches]
        count = len(batches)
        weights = self.config.loss_weights
        discs = (self.ddp["discriminator"], self.ddp["discriminator2"])
        plain_discs = (self.nets["discriminator"], self.nets["discriminator2"])
        totals: dict[str, float] = defaultdict(float)
        for optim in self.optims.values():
            optim.zero_grad(set_to_none=True)

        for i, batch in enumerate(batches):
            with torch.no_grad(), self._autocast():
                fake = self.nets["generator"](batch["depth"], batch["landmarks"], self.nets["style_encoder"](batch["source"]))
            with no_sync(list(discs), skip=i < count - 1):
                with self._autocast():
                    loss, parts = discriminator_loss(discs, batch["reference"], fake, batch["depth"], batch["landmarks"], weights.reg)
                self.scalers["d"].scale(loss / count).backward()
            totals["d/total"] += float(loss.detach())
            for key, value in parts.items():
                totals[f"d/{key}"] += float(value)
        self._optimise("d", ("discriminator", "discriminator2"))

        for net in plain_discs:
            net.requires_grad_(False)
        try:
            for i, batch in enumerate(batches):
                inputs = GeneratorInputs(
                    batch["source"], batch["target"], batch["depth"], batch["landmarks"], batch["yaw_source"], batch["yaw_reference"]
                )
                with no_sync([self.ddp["generator"], self.ddp["style_encoder"]], skip=i < count - 1):
                    with self._autocast():
                        loss, parts = generator_loss(
                            self.ddp["generator"], self.ddp["style_encoder"], plain_discs, inputs, weights,
                            self.vgg, self.pae, self.config.pae_protocol,
                        )
                    self.scalers["g"].scale(loss / count).backward()
                totals["g/total"] += float(loss.detach())
                for key, value in parts.items():
                    totals[f"g/{key}"] += float(value)
        finally:
            for net in plain_discs:
                net.requires_grad_(True)
        self._optimise("g", ("generator", "style_encoder"))

        for name in EMA_NAMES:
            ema_update(self.nets[name], self.ema[name], self.config.ema_beta)
        self.step += 1
        self.samples_seen += count * self.config.batch_size * self.world.size
        return {key: value / count for key, value in totals.items()}

    def _optimise(self, part: str, names: tuple[str, ...]) -> None:
        scaler = self.scalers[part]
        for name in names:
            scaler.step(self.optims[name])
        scaler.update()

    def training_state(self) -> dict:
        """What ``{step}_state.ckpt`` holds (collective: every process must call it)."""
        return {
            "step": self.step,
            "samples_seen": self.samples_seen,
            "world_size": self.world.size,
            "rng": gather_objects(rng_state(self.world.device), self.world),
            "scalers": {part: scaler.state_dict() for part, scaler in self.scalers.items()},
            "config": self.config.to_dict(),
        }

    @torch.no_grad()
    def samples(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A ``(3, rows * 256, 5 * 256)`` grid, one pair a row: source, reference, depth, landmarks, and the EMA
        generator's face of the source in the reference's shape."""
        batch = self._on_device(batch)
        ema = self.ema
        fake = ema["generator"](batch["depth"], batch["landmarks"], ema["style_encoder"](batch["source"])).float()
        return image_grid([batch["source"], batch["reference"], batch["depth"], batch["landmarks"], fake])

    def save(self, folder: str | Path) -> list[Path]:
        """Write the checkpoint of the current step (main process; collective call)."""
        state = self.training_state()
        paths = save_checkpoint(folder, self.step, self.nets, self.ema, self.optims, state) if self.world.is_main else []
        barrier(self.world)
        return paths

    def seed(self) -> None:
        """Per-process random state for a fresh run (or a resume without saved states): ``seed + rank``, and the step."""
        seed_everything(self.config.seed + self.world.rank + 1_000_003 * self.step)

    def load(self, folder: str | Path, step: int) -> None:
        """Resume from the files of ``step``: networks, optimisers, and (same number of processes) random states."""
        state = load_checkpoint(folder, step, self.nets, self.ema, self.optims)
        self.step = int(state.get("step", step))
        self.samples_seen = int(state.get("samples_seen", self.step * self.config.batch_size * self.config.grad_accum * self.world.size))
        for part, scaler_state in state.get("scalers", {}).items():
            if part in self.scalers and scaler_state:
                self.scalers[part].load_state_dict(scaler_state)
        rngs = state.get("rng")
        if rngs is not None and state.get("world_size") == self.world.size:
            set_rng_state(rngs[self.world.rank], self.world.device)
        else:
            self.seed()
