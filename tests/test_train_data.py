"""pasl.train.data and pasl.train.conditioning: pairs lists, the conditioning cache, the dataset and its sampler.

Also home of the tiny synthetic training set the other ``test_train_*`` modules use (:func:`write_training_set`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pasl.errors import PASLError
from pasl.train.conditioning import Conditioning, cache_conditioning, cache_path, csg_conditioning, read_cached, write_cached
from pasl.train.data import PairsDataset, micro_batches, pairs_from_folder, random_resized_crop, read_pairs

PAIRS_TEXT = "f0.png f1.png\nf1.png f2.png f3.png  # with a ground truth\n\nf2.png f3.png\nf3.png f0.png\nf1.png f3.png\nf2.png f0.png\n"


def fake_conditioning(source: torch.Tensor, reference: torch.Tensor) -> Conditioning:
    """Maps drawn from the reference alone (a stand-in for the CSG): grey depth and thresholded 'lines'; fixed yaws."""
    depth = reference.mean(0, keepdim=True).expand(3, -1, -1).clone()
    return Conditioning(depth, (reference > 0.6).float(), 12.0, 45.0)


def smooth_image(seed: int) -> np.ndarray:
    """A (256, 256, 3) uint8 image of smooth colour blobs (compresses well, so PNGs read fast)."""
    rng = np.random.RandomState(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, size=(1, 3, 8, 8)).astype(np.float32))
    image = torch.nn.functional.interpolate(coarse, size=(256, 256), mode="bilinear", align_corners=False)[0]
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def write_training_set(folder: Path, *, cache: bool = True, **config) -> Path:
    """Six pairs over four 256 crops in ``folder``, their cached maps (``cache``) and a JSON config for the tiny
    networks without the VGG and PAE terms; returns the config's path. ``config`` overrides keys."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.fromarray(smooth_image(i)).save(folder / f"f{i}.png")
    (folder / "pairs.txt").write_text(PAIRS_TEXT)
    if cache:
        dataset = PairsDataset(read_pairs(folder / "pairs.txt"), folder, cache_dir=folder / "cache")
        cache_conditioning(dataset, fake_conditioning, folder / "cache")
    values = {
        "pairs": "pairs.txt", "cache_dir": "cache", "model": "tiny", "lambda_id": 0, "lambda_vgg": 0, "batch_size": 2,
        "total_steps": 2, "save_every": 2, "log_every": 1, "output_dir": "out", "device": "cpu", "log": "jsonl", **config,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(values))
    return path


@pytest.fixture()
def training_set(tmp_path) -> Path:
    write_training_set(tmp_path)
    return tmp_path


class TestReadPairs:
    def test_two_and_three_columns_and_comments(self, tmp_path):
        (tmp_path / "p.txt").write_text(PAIRS_TEXT)
        pairs = read_pairs(tmp_path / "p.txt")
        assert len(pairs) == 6
        assert (pairs[0].source, pairs[0].driver, pairs[0].ground_truth) == ("f0.png", "f1.png", None)
        assert pairs[1].ground_truth == "f3.png"

    def test_a_bad_line_names_file_and_line(self, tmp_path):
        (tmp_path / "p.txt").write_text("a.png b.png\nonly_one.png\n")
        with pytest.raises(PASLError, match=r"p\.txt:2: expected 'src ref \[gt\]'"):
            read_pairs(tmp_path / "p.txt")

    def test_empty_and_missing_lists(self, tmp_path):
        (tmp_path / "p.txt").write_text("# nothing\n")
        with pytest.raises(PASLError, match="holds no pairs"):
            read_pairs(tmp_path / "p.txt")
        with pytest.raises(PASLError, match="could not be read"):
            read_pairs(tmp_path / "absent.txt")


class TestPairsFromFolder:
    def test_every_ordered_pair_of_different_images(self, tmp_path):
        for name in ("a.png", "b.png", "c.jpg", "notes.txt"):
            (tmp_path / name).write_bytes(b"")
        pairs = pairs_from_folder(tmp_path, max_pairs=100)
        got = sorted((p.source, p.driver) for p in pairs)
        names = ("a.png", "b.png", "c.jpg")
        assert got == sorted((a, b) for a in names for b in names if a != b)
        assert all(p.ground_truth is None for p in pairs)

    def test_sampled_when_too_many(self, tmp_path):
        for i in range(10):
            (tmp_path / f"{i}.png").write_bytes(b"")
        pairs = pairs_from_folder(tmp_path, max_pairs=7, seed=3)
        assert len(pairs) == 7 == len({(p.source, p.driver) for p in pairs})
        assert pairs == pairs_from_folder(tmp_path, max_pairs=7, seed=3)
        assert all(p.source != p.driver for p in pairs)

    def test_too_few_images(self, tmp_path):
        (tmp_path / "a.png").write_bytes(b"")
        with pytest.raises(PASLError, match="at least 2"):
            pairs_from_folder(tmp_path, 10)


class TestConditioningCache:
    def test_cached_maps_equal_the_computed_ones(self, training_set):
        dataset_cached = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, cache_dir=training_set / "cache")
        dataset_online = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, conditioning=fake_conditioning)
        for i in (0, 1):
            a, b = dataset_cached[i], dataset_online[i]
            for key in ("depth", "landmarks", "yaw_source", "yaw_reference", "source", "reference", "target"):
                assert torch.equal(a[key], b[key]), key
            expected = fake_conditioning(a["source"], a["reference"])
            assert torch.equal(a["depth"] * 255, (expected.depth * 255).round())  # stored as 8-bit steps
            assert float(a["yaw_reference"]) == 45.0

    def test_ground_truth_column_is_the_target(self, training_set):
        dataset = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, cache_dir=training_set / "cache")
        with_gt, without = dataset[1], dataset[0]
        assert torch.equal(with_gt["target"], dataset.read_image("f3.png"))
        assert torch.equal(without["target"], without["reference"])

    def test_cache_entry_of_another_pair_is_refused(self, tmp_path):
        maps = fake_conditioning(torch.rand(3, 256, 256), torch.rand(3, 256, 256))
        path = cache_path(tmp_path, "a.png", "b.png")
        write_cached(path, maps, "a.png", "b.png")
        assert read_cached(path, "a.png", "b.png").yaw_source == 12.0
        with pytest.raises(PASLError, match="belongs to another pair"):
            read_cached(path, "a.png", "c.png")
        with pytest.raises(PASLError, match="no cached conditioning"):
            read_cached(tmp_path / "x.safetensors", "a.png", "b.png")

    def test_cache_is_shared_between_ranks_and_not_rewritten(self, tmp_path):
        write_training_set(tmp_path, cache=False)
        dataset = PairsDataset(read_pairs(tmp_path / "pairs.txt"), tmp_path, cache_dir=tmp_path / "c")
        assert cache_conditioning(dataset, fake_conditioning, tmp_path / "c", rank=1, world_size=2) == 3
        assert len(list((tmp_path / "c").iterdir())) == 3
        assert cache_conditioning(dataset, fake_conditioning, tmp_path / "c") == 3  # the other rank's share
        assert cache_conditioning(dataset, fake_conditioning, tmp_path / "c") == 0

    def test_wrong_map_shape_names_the_pair(self, training_set):
        def bad(source, reference):
            return Conditioning(torch.zeros(1, 256, 256), torch.zeros(3, 256, 256), 0.0, 0.0)

        dataset = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, conditioning=bad)
        with pytest.raises(PASLError, match=r"pair 1 \(f0.png f1.png\): the depth map must be"):
            dataset[0]


class TestDataset:
    def test_images_must_be_aligned_256_crops(self, tmp_path):
        Image.fromarray(np.zeros((100, 120, 3), np.uint8)).save(tmp_path / "small.png")
        dataset = PairsDataset(read_pairs_text(tmp_path, "small.png small.png\n"), tmp_path, conditioning=fake_conditioning)
        with pytest.raises(PASLError, match="is 120x100; every image must be an aligned 256x256 face crop"):
            dataset[0]

    def test_augmentation_touches_only_the_source_and_is_seeded(self, training_set):
        pairs = read_pairs(training_set / "pairs.txt")
        plain = PairsDataset(pairs, training_set, cache_dir=training_set / "cache")
        augmented = PairsDataset(pairs, training_set, cache_dir=training_set / "cache", randcrop_prob=1.0, seed=5)
        a, b = plain[0], augmented[0]
        assert not torch.equal(a["source"], b["source"]) and b["source"].shape == (3, 256, 256)
        for key in ("reference", "target", "depth", "landmarks"):
            assert torch.equal(a[key], b[key])
        assert torch.equal(b["source"], augmented[0]["source"])
        augmented.set_epoch(1)
        assert not torch.equal(b["source"], augmented[0]["source"])

    def test_random_resized_crop_keeps_most_of_the_image(self):
        image = torch.linspace(0, 1, 256).expand(3, 256, 256).contiguous()
        out = random_resized_crop(image, torch.Generator().manual_seed(0))
        assert out.shape == (3, 256, 256)
        assert float(out[:, :, 0].mean()) < 0.2 and float(out[:, :, -1].mean()) > 0.8  # a crop of >= 80% area, resized


def read_pairs_text(folder: Path, text: str):
    (folder / "p.txt").write_text(text)
    return read_pairs(folder / "p.txt")


class TestSampler:
    def test_two_processes_see_together_what_one_sees(self, training_set):
        dataset = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, cache_dir=training_set / "cache")
        one = micro_batches(dataset, 2, seed=9)
        ranks = [micro_batches(dataset, 1, rank=r, world_size=2, seed=9) for r in (0, 1)]
        for _ in range(4):  # crosses an epoch boundary (3 batches per epoch)
            batch = next(one)
            parts = [next(r) for r in ranks]
            assert torch.equal(batch["reference"], torch.cat([p["reference"] for p in parts]))

    def test_starting_inside_an_epoch_continues_the_same_sequence(self, training_set):
        dataset = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, cache_dir=training_set / "cache")
        fresh = micro_batches(dataset, 2, seed=4)
        sequence = [next(fresh)["source"] for _ in range(5)]
        resumed = micro_batches(dataset, 2, seed=4, start=2)
        for expected in sequence[2:]:
            assert torch.equal(next(resumed)["source"], expected)

    def test_too_few_pairs_for_the_batch(self, training_set):
        dataset = PairsDataset(read_pairs(training_set / "pairs.txt"), training_set, cache_dir=training_set / "cache")
        with pytest.raises(PASLError, match="fewer than batch_size"):
            next(micro_batches(dataset, 4, world_size=2))


def test_the_shape_stage_fills_the_cache(tmp_path):
    """``conditioning: cache``: the shape stage (pasl.shape's calls on DECA + FLAME) draws each pair's maps once."""
    from pasl.models import load_models
    from pasl.shape import face_yaw, recompose_shapes, render_conditioning, shape_codes
    from pasl.train.config import load_config
    from pasl.train.distributed import World
    from pasl.train.run import build_dataset
    from pipeline_synthetic import steered_deca, weights_folder

    weights = weights_folder(tmp_path / "weights")
    steered_deca(weights / "deca_model.tar", yaw_deg=40.0)
    models = load_models([weights])
    config = load_config(write_training_set(tmp_path / "data", cache=False))
    (tmp_path / "data" / "pairs.txt").write_text("f1.png f2.png f3.png\n")  # the shape stage takes ~2 s a pair here
    dataset = build_dataset(config, World(0, 0, 1, torch.device("cpu")), conditioning=csg_conditioning(models))
    assert len(list(Path(config.cache_dir).iterdir())) == len(dataset) == 1
    item = dataset[0]

    crops = torch.stack((dataset.read_image("f1.png"), dataset.read_image("f2.png")))
    with torch.no_grad():
        shapes = shape_codes(models.shape_encoder, crops, crop_landmarks="mapped")
        drawn, _ = recompose_shapes(models, shapes[0:1], shapes[1:2], "recompose")
        depth, landmarks = render_conditioning(models.flame, models.faces, drawn)
    assert float(depth.amax()) > 0.5 and float(landmarks.sum()) > 100  # a head was drawn
    assert torch.equal(item["depth"], depth[0]) and torch.equal(item["landmarks"], landmarks[0])  # 8-bit maps: stored exactly
    yaw = face_yaw(shapes)
    assert float(item["yaw_source"]) == pytest.approx(float(yaw[0])) and abs(float(item["yaw_reference"]) - 40.0) < 5
