"""Fine-tuning as a user runs it: one command on a folder of a person's photos, the official networks, every
loss term, the weights found where reenactment finds them; the result loads strictly and reenacts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pae_synthetic import link_pae_files
from pasl.aeg_files import load_aeg, read_aeg_state
from pasl.files import read_rgb
from pasl.models import load_models
from pasl.pipeline import ReenactOptions, Reenactor
from pasl.train.crops import prepare_crops
from pasl.train.vgg import VGG19_FILE, vgg19_features
from pipeline_synthetic import ScriptedDetector, weights_folder
from shared_assets import ASSETS, require

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ASSETS / "faces" / "photos"


def person_folder(folder: Path, names: tuple[str, ...] = ("facerec_obama.jpg", "facerec_obama2.jpg")) -> Path:
    """A folder of one person's real photos (two of Obama from ../shared)."""
    require(PHOTOS)
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(PHOTOS / name, folder / name)
    return folder


def test_photos_are_aligned_once_and_crops_are_used_as_they_are(tmp_path):
    photos = person_folder(tmp_path / "photos")
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((90, 120, 3), np.uint8)).save(photos / "dark.png")
    detector = ScriptedDetector()
    crops = prepare_crops(photos, tmp_path / "crops", detector)
    assert crops == tmp_path / "crops"
    assert sorted(p.name for p in crops.iterdir()) == ["faceless.txt", "facerec_obama.png", "facerec_obama2.png"]
    assert (crops / "faceless.txt").read_text() == "dark.png\n"
    from pasl.align import align_faces

    expected = align_faces(read_rgb(photos / "facerec_obama.jpg"), select="largest", detector=detector).crops[0]
    made = torch.from_numpy(read_rgb(crops / "facerec_obama.png")).permute(2, 0, 1).float() / 255
    assert (made - expected).abs().max() <= 0.5 / 255 + 1e-6  # the pipeline's crop, rounded to 8 bit once
    again = prepare_crops(photos, tmp_path / "crops", lambda: pytest.fail("crops made earlier are kept"))
    assert again == crops
    (crops / "faceless.txt").unlink()
    assert prepare_crops(crops, tmp_path / "unused", detector) == crops  # already 256 crops: used as they are


def test_one_command_fine_tunes_the_released_model_on_a_persons_photos(tmp_path, pae_folder):
    require(PHOTOS)
    weights = weights_folder(tmp_path / "weights")
    link_pae_files(pae_folder, weights)
    (weights / "train").mkdir()
    torch.manual_seed(0)  # a synthetic VGG19 of the real layout (torchvision keys its convolutions features.N.*)
    torch.save({f"features.{k}": v for k, v in vgg19_features().state_dict().items()}, weights / "train" / VGG19_FILE)
    photos = person_folder(tmp_path / "me")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "pasl.train", "--preset", "finetune-person", "--set", f"images={photos}",
               "--set", f"weights_dirs={json.dumps([str(weights)])}", "--set", f"output_dir={out}", "--set", "total_steps=1",
               "--set", "batch_size=1", "--set", "vgg_check_hash=false", "--set", "detector=dlib-hog", "--set", "device=cpu"]
    vgg = weights / "train" / VGG19_FILE
    vgg.rename(tmp_path / VGG19_FILE)  # first without VGG19: one line, before any work
    done = subprocess.run(command + ["--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    error = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and error.startswith(f"error: {VGG19_FILE} (the perceptual loss) not found"), done.stderr
    assert "python -m pasl download train" in error and error.endswith("Or set lambda_vgg to 0.") and not out.exists()
    (tmp_path / VGG19_FILE).rename(vgg)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "step 1" in done.stdout
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["facerec_obama.png", "facerec_obama2.png"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = log[-1]
    for term in ("adv", "id", "sty", "l2", "vgg"):  # every term of the release's objective ran
        assert any(term in key for key in losses), (term, losses)
    assert all(np.isfinite(v) for v in losses.values() if isinstance(v, float))
    trained = out / "1_nets_ema.ckpt"
    released = read_aeg_state(weights / "204000_nets_ema.ckpt")
    changed = read_aeg_state(trained)
    assert released.keys() == changed.keys()
    assert any(not torch.equal(released["generator"][k], changed["generator"][k]) for k in released["generator"])
    # the result is an AEG file like the released one: loads strictly, reenacts
    models = load_models([weights], aeg=trained)
    assert load_aeg(trained) is not None
    reenactor = Reenactor(models, ScriptedDetector(), ReenactOptions(paste_back=False))
    chunk = reenactor.reenact(reenactor.encode_source(read_rgb(PHOTOS / "facerec_obama.jpg")), [read_rgb(PHOTOS / "facerec_biden.jpg")])
    assert chunk.faces.shape == (1, 3, 256, 256) and torch.isfinite(chunk.faces).all()

