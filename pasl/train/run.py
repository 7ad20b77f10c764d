"""A whole training run from a :class:`~pasl.train.config.TrainConfig`: assemble, (resume,) loop, save.

The assembly order matters for reproducibility: every process seeds torch with ``seed`` before
building the networks (identical initial weights), then its own ``seed + rank`` for the step's
randomness (dropout). With ``conditioning: cache`` the missing cache entries are computed first,
shared among the processes, before any step.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import PASLError
from .checkpoint import init_from, latest_step
from .conditioning import MAP_SHAPE, Conditioning, ConditioningFn, cache_conditioning, cache_path, csg_conditioning
from .config import TrainConfig
from .data import PairsDataset, micro_batches, pairs_from_folder, read_pairs
from .distributed import World, barrier, close_world, init_world, mean_over_world
from .logs import TrainLog
from .loop import Trainer, seed_everything
from .nets import build_nets

log = logging.getLogger(__name__)

SAMPLE_ROWS = 4
"""Pairs of the sample grid written at every checkpoint."""


def shape_stage_conditioning(config: TrainConfig, device: torch.device) -> ConditioningFn:
    """The CSG conditioning of the config: DECA + FLAME from ``weights_dirs`` (and the detector, if named)."""
    from ..models import load_models

    models = load_models(config.weights_dirs or None, device=device)
    detector = None
    if config.detector is not None:
        from ..align.detect import make_detector

        detector = make_detector(config.detector, weights_dir=config.weights_dirs or None)
    return csg_conditioning(
        models, mode=config.recompose_mode, flatten=config.flatten, crop_landmarks="redetect" if detector else "mapped", detector=detector
    )


def crops_for_training(config: TrainConfig, world: World) -> Path:
    """``images`` as 256 crops: the folder itself, or its photos aligned once into ``<output_dir>/crops`` (by the
    first process; the others wait for it)."""
    from .crops import prepare_crops

    out = Path(config.output_dir) / "crops"

    def detector():
        from ..align.detect import make_detector

        return make_detector(config.detector or "auto", weights_dir=config.weights_dirs or None)

    if world.is_main:
        folder = prepare_crops(config.images, out, detector)
    barrier(world)
    return folder if world.is_main else prepare_crops(config.images, out, detector)  # finds the crops made (faceless photos again)


def build_dataset(config: TrainConfig, world: World, conditioning: ConditioningFn | None = None) -> PairsDataset:
    """The run's pairs with their maps; with ``conditioning: cache``, missing entries are computed now (by all
    processes, each a share). ``conditioning`` replaces the shape stage (tests, custom renderers)."""
    if config.pairs is not None:
        pairs, root = read_pairs(config.pairs), Path(config.root or Path(config.pairs).parent)
    else:
        folder = crops_for_training(config, world)
        pairs, root = pairs_from_folder(folder, config.max_pairs, config.seed), Path(config.root or folder)
    options = {"randcrop_prob": config.randcrop_prob, "seed": config.seed}
    if config.conditioning == "online" or config.stage == "csg":  # the CSG stage reads crops only: nothing to cache
        return PairsDataset(pairs, root, conditioning=conditioning or shape_stage_conditioning(config, world.device), **options)
    dataset = PairsDataset(pairs, root, cache_dir=config.cache_dir, **options)
    missing = sum(not cache_path(config.cache_dir, p.source, p.driver).is_file() for p in pairs)
    if missing:
        log.info("computing the conditioning of %d pairs into %s", missing, config.cache_dir)
        cache_conditioning(dataset, conditioning or shape_stage_conditioning(config, world.device), config.cache_dir,
                           rank=world.rank, world_size=world.size)
    barrier(world)
    return dataset


def found_weight(config: TrainConfig, key: str, what: str, otherwise: str = "") -> Path:
    """The first file of catalogue kind ``key`` in the config's weight folders, then the default ones
    (:func:`pasl.catalog.find_one`: one sentence saying where to put it and how to get it when missing)."""
    from ..catalog import find_one

    return find_one(key, config.weights_dirs or None, what, otherwise)


def loss_networks(config: TrainConfig) -> tuple[torch.nn.Module | None, object | None]:
    """``(vgg, pae)`` for the loss terms whose weight is > 0 (None otherwise); files not named in the config are
    found in the weight folders."""
    vgg = pae = None
    if config.lambda_vgg > 0:
        from .vgg import VGG19_FILE, VGG19Perceptual, load_vgg19_state

        path = config.vgg19_weights or found_weight(config, "vgg19", f"{VGG19_FILE} (the perceptual loss)",
                                                          " Or set lambda_vgg to 0.")
        vgg = VGG19Perceptual(load_vgg19_state(path, check_hash=config.vgg_check_hash), config.vgg_normalization)
    if config.lambda_id > 0:
        from ..pae import load_pae

        if config.arcface:
            pae = load_pae(arcface=config.arcface)
        else:
            pae = load_pae([config.pae_folder] if config.pae_folder else (config.weights_dirs or None))
    return vgg, pae


@dataclass(frozen=True)
class RunResult:
    step: int
    output_dir: Path
    last_losses: dict[str, float]


def make_trainer(config: TrainConfig, world: World, resume: str | Path | None = None) -> Trainer:
    """Networks (fresh, fine-tuned from ``init_from``, or resumed from ``resume``), loss networks and optimisers."""
    seed_everything(config.seed)  # the same initial weights in every process
    nets, ema = build_nets(config.model)
    resume_step = None
    if resume is not None:
        resume_step = latest_step(resume)
        if resume_step is None:
            raise PASLError(f"--resume {resume}: no complete checkpoint ({{step}}_nets.ckpt, _nets_ema.ckpt, _optims.ckpt) in that folder.")
    elif config.init_from is not None:
        start = found_weight(config, "aeg", "the AEG checkpoint to fine-tune from") if config.init_from == "auto" else config.init_from
        filled = init_from(start, nets, ema)
        log.info("fine-tuning from %s (%s)", start, ", ".join(filled))
    vgg, pae = loss_networks(config)
    trainer = Trainer(nets, ema, config, world, vgg, pae)
    if resume_step is not None:
        trainer.load(resume, resume_step)
        log.info("resumed from %s at step %d", resume, trainer.step)
    else:
        trainer.seed()
    return trainer


def _no_maps(source: torch.Tensor, reference: torch.Tensor) -> Conditioning:
    """The CSG stage reads the crops only: empty maps for the dataset's shape."""
    empty = torch.zeros(MAP_SHAPE)
    return Conditioning(empty, empty, 0.0, 0.0)


def make_csg_trainer(config: TrainConfig, world: World, resume: str | Path | None = None):
    """The shape encoder to fine-tune (the DECA file found in the weight folders, or ``resume``'s), FLAME and the
    renderer's triangles, and DECA's landmark detector when ``detector`` is named."""
    from ..csg.encoder import load_shape_encoder
    from ..flame_files import load_flame, load_head_template
    from .csg import CSGTrainer, require_step

    needed = [("flame", "FLAME's generic_model.pkl"), ("landmark_embedding", "landmark_embedding.npy"),
              ("head_template", "head_template.obj")]
    if config.model == "official":
        needed.insert(0, ("deca", "deca_model.tar (the shape encoder to fine-tune)"))
    files = {key: found_weight(config, key, what) for key, what in needed}
    detector = None
    if config.detector is not None:
        from ..align.detect import make_detector

        detector = make_detector(config.detector, weights_dir=config.weights_dirs or None)
    seed_everything(config.seed)
    if config.model == "official":
        encoder = load_shape_encoder(files["deca"])
    else:
        from .tiny import TinyFlameEncoder

        encoder = TinyFlameEncoder()
    trainer = CSGTrainer(encoder, load_flame(files["flame"], files["landmark_embedding"]), load_head_template(files["head_template"]),
                         config, world, detector, source=files.get("deca"))
    if resume is not None:
        trainer.load(resume, require_step(resume))
        log.info("resumed the CSG fine-tuning from %s at step %d", resume, trainer.step)
    else:
        seed_everything(config.seed + world.rank)
    return trainer


def train(config: TrainConfig, world: World, resume: str | Path | None = None, conditioning: ConditioningFn | None = None,
          dry_run: bool = False) -> RunResult:
    """Run (or, with ``dry_run``, only assemble and read the first pair) until ``total_steps``; checkpoints every
    ``save_every`` steps and at the end."""
    if config.stage == "csg":
        return _train_loop(config, world, make_csg_trainer(config, world, resume), build_dataset(config, world, _no_maps), dry_run)
    trainer = make_trainer(config, world, resume)  # a missing weight file is reported before the maps are computed
    return _train_loop(config, world, trainer, build_dataset(config, world, conditioning), dry_run)


def _train_loop(config: TrainConfig, world: World, trainer, dataset: PairsDataset, dry_run: bool) -> RunResult:
    """Steps until ``total_steps``, logging every ``log_every`` and saving every ``save_every`` (and at the end);
    ``trainer`` is a :class:`~pasl.train.loop.Trainer` or a :class:`~pasl.train.csg.CSGTrainer`."""
    output = Path(config.output_dir)
    if dry_run:
        sample = dataset[0]
        log.info("dry run: %d pairs, first pair's maps %s, %d processes on %s; nothing trained",
                 len(dataset), tuple(sample["depth"].shape), world.size, world.device)
        return RunResult(trainer.step, output, {})
    start = trainer.samples_seen // (config.batch_size * world.size)
    batches = micro_batches(dataset, config.batch_size, rank=world.rank, world_size=world.size, seed=config.seed,
                            start=start, num_workers=config.num_workers)
    losses: dict[str, float] = {}
    preview = None  # the first batch, drawn at every checkpoint
    with TrainLog(output, config.log) if world.is_main else contextlib.nullcontext() as train_log:
        while trainer.step < config.total_steps:
            micro = [next(batches) for _ in range(config.grad_accum)]
            if preview is None:
                preview = {key: value[:SAMPLE_ROWS] for key, value in micro[0].items()}
            losses = trainer.train_step(micro if config.stage == "aeg" else micro[0])
            if trainer.step % config.log_every == 0 or trainer.step == config.total_steps:
                losses = mean_over_world(losses, world)
                if train_log is not None:
                    train_log.write(trainer.step, losses)
            if trainer.step % config.save_every == 0 or trainer.step == config.total_steps:
                trainer.save(output)
                if train_log is not None:
                    train_log.write_samples(trainer.step, trainer.samples(preview))
    return RunResult(trainer.step, output, losses)


def run(config: TrainConfig, resume: str | Path | None = None, dry_run: bool = False) -> RunResult:
    """:func:`train` in this process's world (``torchrun``'s, or one process), closed afterwards."""
    world = init_world(config.device)
    try:
        return train(config, world, resume, dry_run=dry_run)
    finally:
        close_world(world)
