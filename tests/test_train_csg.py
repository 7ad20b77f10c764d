"""The CSG's cycle-consistency fine-tuning of DECA's encoder (pasl.train.csg): the losses against the public
functions they are made of, falling losses, checkpoints the loaders read, exact resume, the one command."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import flame_synthetic as fs
from pasl.catalog import find
from pasl.csg.codes import recompose
from pasl.csg.cycle import cycle_loss, render_shape
from pasl.csg.encoder import load_shape_encoder
from pasl.files import read_rgb
from pasl.flame_files import load_flame, load_head_template
from pasl.models import load_models
from pasl.pipeline import ReenactOptions, Reenactor
from pasl.shape import shape_codes
from pasl.train.config import TrainConfig, load_config
from pasl.train.csg import CodeRegressor, CSGTrainer, csg_losses, latest_csg_step
from pasl.train.distributed import World
from pipeline_synthetic import SHARED_FLAME, ScriptedDetector, weights_folder, yaw_following_deca
from shared_assets import ASSETS, require
from test_train_finetune import person_folder

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ASSETS / "faces" / "photos"
CPU = World(0, 0, 1, torch.device("cpu"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = weights_folder(tmp_path_factory.mktemp("csg_weights"))
    yaw_following_deca(folder / "deca_model.tar")  # codes that depend on the picture
    return folder


@pytest.fixture(scope="module")
def parts(weights):
    return (load_shape_encoder(weights / "deca_model.tar"), load_flame(weights / "generic_model.pkl", weights / "landmark_embedding.npy"),
            load_head_template(weights / "head_template.obj"))


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """Four aligned-looking 256 crops of real photos (resized: the losses do not need a true alignment)."""
    require(PHOTOS)
    names = ("facerec_obama.jpg", "facerec_biden.jpg", "pyfeat_single_face.jpg", "skimage_astronaut.png")
    images = [torch.from_numpy(read_rgb(PHOTOS / n)).permute(2, 0, 1)[None].float() / 255 for n in names]
    return torch.cat([torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear", antialias=True) for x in images])


def _config(**changes) -> TrainConfig:
    return TrainConfig(**{"stage": "csg", "pairs": "unused", "conditioning": "online", "lr": 1e-4, **changes})


def test_losses_are_the_cycle_and_the_anchor(parts, crops):
    encoder, flame, faces = parts
    source, reference = crops[:2], crops[2:]
    with torch.no_grad():
        losses = csg_losses(CodeRegressor(encoder), encoder, flame, faces, source, reference)
        # independently, from the public pieces: DECA reads the whole crop (no landmarks), recompose, draw, read back
        codes_s = shape_codes(encoder, source, crop_landmarks="mapped").codes
        codes_r = shape_codes(encoder, reference, crop_landmarks="mapped").codes
        shape = recompose(codes_s, codes_r)
        recoded = encoder(render_shape(flame(shape.shape, shape.exp, shape.pose).vertices, shape.cam, faces))
        expected = cycle_loss(codes_s, recoded, flame)
    assert float(losses["cc"]) == pytest.approx(float(expected), rel=1e-4) and float(expected) > 0
    assert float(losses["anchor"]) < 1e-5  # the encoder has not moved from where it started


def test_steps_lower_the_loss_on_a_fixed_batch_and_move_only_the_encoder(parts, crops):
    encoder, flame, faces = copy.deepcopy(parts[0]), parts[1], parts[2]
    with torch.no_grad():  # shapes that depend on the picture, so the cycle has something to learn
        encoder.layers[2].weight[:10] *= 300
    trainer = CSGTrainer(encoder, flame, faces, _config(lr=1e-6), CPU)  # the default weights: L_cc in mm, anchor 1
    batch = {"source": crops[:2], "reference": crops[2:]}
    totals = [trainer.train_step(batch)["csg/total"] for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(totals))) and totals[-1] < 0.9 * totals[0], totals
    assert trainer.step == 3 and trainer.samples_seen == 6
    assert not trainer.encoder.training  # BatchNorm statistics stay DECA's
    moved = [not torch.equal(a, b) for a, b in zip(trainer.encoder.parameters(), trainer.anchor.parameters())]
    assert any(moved) and all(not p.requires_grad for p in trainer.anchor.parameters())


def test_checkpoints_load_as_deca_files_and_resume_exactly(parts, crops, tmp_path):
    encoder, flame, faces = parts
    batch = {"source": crops[:2], "reference": crops[2:]}
    torch.manual_seed(0)
    first = CSGTrainer(copy.deepcopy(encoder), flame, faces, _config(), CPU)
    first.train_step(batch)
    path = first.save(tmp_path)
    assert path.name == "pasl_deca_cc_1.safetensors" and latest_csg_step(tmp_path) == 1
    assert find("deca", [tmp_path]) == [path]  # model discovery takes it for a DECA file
    loaded = load_shape_encoder(path)  # strictly
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), first.encoder.state_dict().values()))
    after = first.train_step(batch)
    resumed = CSGTrainer(copy.deepcopy(encoder), flame, faces, _config(), CPU)
    resumed.load(tmp_path, 1)
    again = resumed.train_step(batch)
    assert again == after and resumed.step == 2
    assert all(torch.equal(a, b) for a, b in zip(resumed.encoder.parameters(), first.encoder.parameters()))


def test_config_checks_the_stage():
    with pytest.raises(Exception, match="'stage' must be one of aeg, csg"):
        TrainConfig(pairs="p", stage="deca")
    with pytest.raises(Exception, match="'grad_accum' must be 1 with stage 'csg'"):
        _config(grad_accum=2)
    preset = load_config(preset="finetune-csg", overrides={"images": "me"})
    assert preset.stage == "csg" and preset.lr == 1e-6 and preset.lambda_cc == 1000


def test_one_command_fine_tunes_the_shape_encoder_and_the_pipeline_uses_it(weights, tmp_path):
    require(PHOTOS)
    photos = person_folder(tmp_path / "me")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "pasl.train", "--preset", "finetune-csg", "--set", f"images={photos}",
               "--set", f"weights_dirs={json.dumps([str(weights)])}", "--set", f"output_dir={out}", "--set", "total_steps=1",
               "--set", "batch_size=2", "--set", "detector=dlib-hog", "--set", "device=cpu"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    tuned = out / "pasl_deca_cc_1.safetensors"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"csg/total", "csg/cc", "csg/anchor"} <= set(log[-1])
    from PIL import Image

    grid = Image.open(out / "samples" / "0000001.png")  # source, reference, the recomposed shape as now read
    assert grid.size == (3 * 256, 2 * 256)
    models = load_models([weights], deca=tuned)
    reenactor = Reenactor(models, ScriptedDetector(), ReenactOptions(paste_back=False))
    chunk = reenactor.reenact(reenactor.encode_source(read_rgb(PHOTOS / "facerec_obama.jpg")), [read_rgb(PHOTOS / "facerec_biden.jpg")])
    assert chunk.faces.shape == (1, 3, 256, 256) and torch.isfinite(chunk.faces).all()


def test_two_processes_fine_tune_like_one_on_the_combined_batch(tmp_path):
    """torchrun, 2 gloo processes x batch 1, against 1 process x batch 2 (the tiny stand-in encoder: the wiring is checked)."""
    from safetensors.torch import load_file

    from pasl.train.run import train
    from test_train_data import write_training_set
    from test_train_loop import torchrun

    require(SHARED_FLAME)
    flame = tmp_path / "flame"
    flame.mkdir()
    for name in ("head_template.obj", "landmark_embedding.npy"):
        shutil.copy(SHARED_FLAME / name, flame / name)
    fs.write_head_model(flame / "generic_model.pkl", SHARED_FLAME / "head_template.obj")
    config = write_training_set(tmp_path, cache=False, stage="csg", model="tiny", conditioning="online", batch_size=1,
                                output_dir="ddp", weights_dirs=[str(flame)], randcrop_prob=0.0, lr=1e-3)
    torchrun(config, tmp_path)
    single = train(dataclasses.replace(load_config(config), batch_size=2, output_dir=str(tmp_path / "one")), CPU)
    assert single.step == 2
    want, got = load_file(tmp_path / "one" / "pasl_deca_cc_2.safetensors"), load_file(tmp_path / "ddp" / "pasl_deca_cc_2.safetensors")
    assert want.keys() == got.keys()
    # Adam steps by g / (|g| + eps): where a gradient is ~1e-9, the last-bit difference of a sum over 2 processes
    # can flip its sign and the weight moves by +-lr instead of -+lr. So: most elements within 1e-6, and none further
    # than two steps of 2 * lr. How many tiny gradients flip depends on the CPU's kernels: under 0.5% of the elements
    # on an AVX-512 build machine, 17% on an AMX one.
    differing = 0
    for key, value in want.items():
        difference = (got[key] - value).abs()
        assert float(difference.max()) <= 2 * 2 * 1e-3 + 1e-6, key
        differing += int((difference > 1e-6).sum())
    assert differing < 0.25 * sum(v.numel() for v in want.values()), differing
    log = [json.loads(line) for line in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2] and all(entry["csg/cc"] > 0 for entry in log)
