"""Training data: a pairs list over 256 face crops, its conditioning maps, and a resumable sampler.

The list is the release's format, one pair a line: ``src ref [gt]`` (as :mod:`pasl.eval.pairs`
writes it); relative paths are read from ``root`` (default: the list's folder). Without ``gt`` the
reference is the target (self-reenactment). Every image must already be a 256x256 aligned crop.

The source alone may be augmented (with probability ``randcrop_prob`` a random resized crop,
scale 0.8-1, aspect 0.9-1.1, the release's VoxCeleb transform): it only gives the style code,
while the reference and target must stay aligned with the maps drawn from the reference.
Augmentation is seeded by (seed, epoch, index), so it does not depend on workers or processes.

Samples are dealt by :class:`torch.utils.data.DistributedSampler` (one process is a world of 1),
which can start inside an epoch, so a resumed run continues with the very batches it would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import PASLError
from ..eval.pairs import Pair
from ..geometry import ALIGNED_SIZE
from ..imageops import read_image
from .conditioning import ConditioningFn, cache_path, checked, read_cached

RANDCROP_SCALE = (0.8, 1.0)
RANDCROP_RATIO = (0.9, 1.1)


def read_pairs(path: str | Path) -> list[Pair]:
    """The pairs of a ``src ref [gt]`` list; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PASLError(f"pairs list {path} could not be read ({err.strerror or err}); give a text file of 'src ref [gt]' lines.") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise PASLError(f"{path}:{number}: expected 'src ref [gt]' (2 or 3 paths), got {len(fields)} fields.")
        pairs.append(Pair(*fields))
    if not pairs:
        raise PASLError(f"pairs list {path} holds no pairs; write one 'src ref [gt]' line per training pair.")
    return pairs


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def pairs_from_folder(folder: str | Path, max_pairs: int, seed: int = 0) -> list[Pair]:
    """Self-reenactment pairs of one person's crops: every ordered pair of two different images (the
    reference is the target), or ``max_pairs`` of them drawn with ``seed`` when there are more.
    Paths are relative to ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PASLError(f"image folder {folder} does not exist; give the folder of the person's 256x256 face crops.")
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not any(c.isspace() for c in p.name))
    if len(names) < 2:
        raise PASLError(f"image folder {folder} holds {len(names)} usable image(s) (names without spaces); it needs at least 2.")
    count = len(names) * (len(names) - 1)
    if count <= max_pairs:
        chosen = range(count)
    else:
        chosen = sorted(torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:max_pairs].tolist())
    pairs = []
    for k in chosen:  # pair k: source i, reference the (k mod (n-1))-th of the others
        i, j = divmod(k, len(names) - 1)
        pairs.append(Pair(names[i], names[j + (j >= i)]))
    return pairs


def random_resized_crop(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop(256, scale=(0.8, 1), ratio=(0.9, 1.1))`` on a ``(3, H, W)`` image,
    drawn from ``generator``; after 10 failed draws, the whole image (torchvision falls back to a centre crop)."""
    _, height, width = image.shape
    area = height * width
    for _ in range(10):
        values = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        target = area * (RANDCROP_SCALE[0] + (RANDCROP_SCALE[1] - RANDCROP_SCALE[0]) * values[0])
        log_lo, log_hi = math.log(RANDCROP_RATIO[0]), math.log(RANDCROP_RATIO[1])
        ratio = math.exp(log_lo + (log_hi - log_lo) * values[1])
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(values[2] * (height - h + 1)), int(values[3] * (width - w + 1))
            crop = image[:, top : top + h, left : left + w]
            return F.interpolate(crop[None], size=(ALIGNED_SIZE, ALIGNED_SIZE), mode="bilinear", align_corners=False, antialias=True)[0]
    return image


class PairsDataset(Dataset):
    """``dataset[i]`` -> a dict of one pair's tensors:

    ``source``, ``reference``, ``target``: ``(3, 256, 256)`` float32 RGB in [0, 1];
    ``depth``, ``landmarks``: ``(3, 256, 256)`` the conditioning maps;
    ``yaw_source``, ``yaw_reference``: float32 scalars, degrees.

    Args:
        pairs: from :func:`read_pairs`.
        root: folder relative paths are read from.
        conditioning: computes the maps on the fly (:func:`pasl.train.conditioning.csg_conditioning`), or
        cache_dir: reads them from a folder written by :func:`pasl.train.conditioning.cache_conditioning`
            (exactly one of the two).
        randcrop_prob: probability of augmenting the source (module docstring).
        seed: seeds the augmentation, with the epoch (:meth:`set_epoch`) and the index.
    """

    def __init__(
        self,
        pairs: list[Pair],
        root: str | Path,
        *,
        conditioning: ConditioningFn | None = None,
        cache_dir: str | Path | None = None,
        randcrop_prob: float = 0.0,
        seed: int = 0,
    ):
        if (conditioning is None) == (cache_dir is None):
            raise ValueError("give exactly one of conditioning (maps computed on the fly) and cache_dir (maps read from a cache)")
        self.pairs = list(pairs)
        self.root = Path(root)
        self.conditioning = conditioning
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.randcrop_prob = float(randcrop_prob)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def read_image(self, name: str) -> torch.Tensor:
        """``(3, 256, 256)`` float32 RGB in [0, 1] of a path as written in the list."""
        path = Path(name) if Path(name).is_absolute() else self.root / name
        try:
            pixels = read_image(path)
        except (OSError, ValueError) as err:
            raise PASLError(f"training image {path} could not be read ({err}); check the pairs list and its root folder.") from None
        if pixels.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE):
            raise PASLError(
                f"training image {path} is {pixels.shape[1]}x{pixels.shape[0]}; every image must be an aligned "
                f"{ALIGNED_SIZE}x{ALIGNED_SIZE} face crop (made with pasl.align.align_faces)."
            )
        return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pair = self.pairs[index]
        source, reference = self.read_image(pair.source), self.read_image(pair.driver)
        target = reference if pair.ground_truth is None else self.read_image(pair.ground_truth)
        if self.cache_dir is not None:
            maps = read_cached(cache_path(self.cache_dir, pair.source, pair.driver), pair.source, pair.driver)
        else:
            maps = checked(self.conditioning(source, reference), f"pair {index + 1} ({pair.source} {pair.driver})")
        if self.randcrop_prob > 0:
            generator = self._generator(index)
            if torch.rand((), generator=generator, dtype=torch.float64).item() < self.randcrop_prob:
                source = random_resized_crop(source, generator)
        return {
            "source": source,
            "reference": reference,
            "target": target,
            "depth": maps.depth,
            "landmarks": maps.landmarks,
            "yaw_source": torch.tensor(maps.yaw_source, dtype=torch.float32),
            "yaw_reference": torch.tensor(maps.yaw_reference, dtype=torch.float32),
        }


class PositionedSampler(DistributedSampler):
    """A :class:`DistributedSampler` (shuffled by ``seed + epoch``) that can start ``start`` samples into its share."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


def batches_per_epoch(dataset: Dataset, batch_size: int, world_size: int) -> int:
    """Full local batches each process gets per epoch (an incomplete last batch is dropped)."""
    per_process = math.ceil(len(dataset) / world_size)
    count = per_process // batch_size
    if count == 0:
        raise PASLError(
            f"the pairs list has {len(dataset)} pairs, fewer than batch_size ({batch_size}) x processes ({world_size}); "
            f"add pairs or lower batch_size."
        )
    return count


def micro_batches(
    dataset: PairsDataset, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0, num_workers: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """This process's batches, forever, from its ``start``-th local batch on (epoch after epoch).

    Rank ``r`` of ``n`` gets samples ``r, r + n, ...`` of each epoch's permutation, so one process with
    batch ``n * b`` sees in each batch the samples ``n`` processes with batch ``b`` see together.
    """
    per_epoch = batches_per_epoch(dataset, batch_size, world_size)
    epoch, skip = divmod(start, per_epoch)
    sampler = PositionedSampler(dataset, world_size, rank, seed)
    while True:
        sampler.set_epoch(epoch)
        sampler.start = skip * batch_size
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
        yield from loader
        epoch, skip = epoch + 1, 0
