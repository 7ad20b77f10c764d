"""The metric backbones as weight files: catalogue entries, discovery, loading by kind, ``download eval``, doctor.

Synthetic files hold the official keys and shapes with one stored number per tensor (stride-0 views), so
every strict load is the real one while each file stays a few hundred kB.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import pasl.download.fetch
import pasl.download.sources as sources
from download_server import FakeServices, Server
from pasl.__main__ import main as cli
from pasl.catalog import METRIC_KEYS, download_command, entry, where_to_get
from pasl.download import URL_ENVS
from pasl.errors import MissingWeightError, WeightFileError
from pasl.eval.lpips import ALEXNET_FILE, LAYER_CHANNELS, LPIPS_FILE
from pasl.eval.metrics import FID_BACKBONES, PaperInception, StandardInception
from pasl.eval.weights import find_metric_weights, load_metric

PAPER, STANDARD = "inception_v3_google-0cc3c7bd.pth", "pt_inception-2015-12-05-6726825d.pth"
ALEXNET, LPIPS = "alexnet-owt-7be5be79.pth", "lpips_weights.ckpt"
URLS = {
    PAPER: "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    STANDARD: "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ALEXNET: "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    LPIPS: "https://github.com/clovaai/stargan-v2/raw/master/metrics/lpips_weights.ckpt",
}
LPIPS_SHA256 = "8b641b3c88a60383027f5e3d9b14d0e8687a1b09aeeb4950ec5951813954a36a"


@pytest.fixture(autouse=True)
def _only_the_tests_folders(monkeypatch, tmp_path):
    """Neither the caller's ``$PASL_WEIGHTS`` and host overrides nor the checkout's ``weights/`` take part."""
    monkeypatch.setenv("PASL_WEIGHTS", "")
    monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")
    for name in URL_ENVS:
        monkeypatch.delenv(name, raising=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny(state: dict, start: float = 0.0) -> dict:
    """``state``'s keys, shapes and dtypes; tensor ``i`` holds ``start + 0.001 (i + 1)`` everywhere, stored once."""
    return {k: torch.full((), start + 0.001 * (i + 1), dtype=v.dtype).expand(v.shape) for i, (k, v) in enumerate(state.items())}


def write_metric_file(path: Path, key: str, start: float = 0.0) -> Path:
    """A synthetic file of catalogue kind ``key`` with the official keys and shapes."""
    from torchvision.models import alexnet

    if key == "lpips":
        state = {f"lpips_weights.{i}.main.1.weight": torch.full((1, c, 1, 1), start + 0.1 * (i + 1)) for i, c in enumerate(LAYER_CHANNELS)}
    else:
        nets = {"fid_paper": lambda: PaperInception().net, "fid_standard": lambda: StandardInception().net,
                "lpips_alexnet": lambda: alexnet(weights=None)}
        state = _tiny(nets[key]().state_dict(), start)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


# ---------------------------------------------------------------------------------------------- one table


def test_the_catalogue_is_the_one_table_of_metric_files():
    assert METRIC_KEYS == ("fid_paper", "fid_standard", "lpips_alexnet", "lpips")
    files = {key: entry(key) for key in METRIC_KEYS}
    assert {k: e.patterns for k, e in files.items()} == {"fid_paper": (PAPER,), "fid_standard": (STANDARD,),
                                                         "lpips_alexnet": (ALEXNET,), "lpips": (LPIPS,)}
    assert {k: e.sha256 for k, e in files.items()} == {"fid_paper": "0cc3c7bd", "fid_standard": "6726825d",
                                                       "lpips_alexnet": "7be5be79", "lpips": LPIPS_SHA256}
    for key, item in files.items():
        assert item.url == URLS[item.patterns[0]] and item.url in item.source and item.folder == "eval" and not item.required
        assert "used only by `python -m pasl.eval` and the PASL Metrics node" in item.purpose
        assert download_command(key) == "python -m pasl download eval"
        assert where_to_get(key).startswith("Put it in the eval/ sub-folder of ")
    # the eval modules read the same entries
    assert [FID_BACKBONES[f]["file"] for f in ("paper", "standard")] == [PAPER, STANDARD]
    assert [FID_BACKBONES[f]["sha256_prefix"] for f in ("paper", "standard")] == ["0cc3c7bd", "6726825d"]
    assert (ALEXNET_FILE["file"], ALEXNET_FILE["sha256_prefix"], LPIPS_FILE["file"], LPIPS_FILE["sha256"]) == (
        ALEXNET, "7be5be79", LPIPS, LPIPS_SHA256)
    assert entry("arcface").folder == "" and download_command("arcface") is None  # ArcFace kept as it was


# ---------------------------------------------------------------------------------------------- discovery


def test_discovery_finds_metric_files_anywhere_under_the_folders(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for path in (first / "deep" / "er" / PAPER, first / LPIPS, second / "eval" / PAPER, second / "eval" / STANDARD,
                 second / "ids" / "backbone_ir50_ms1m_epoch63.pth", second / "eval" / "alexnet-owt-00000000.pth"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not opened")
    found = find_metric_weights([first, second])
    assert found == {"fid_paper": first / "deep" / "er" / PAPER, "fid_standard": second / "eval" / STANDARD,
                     "lpips": first / LPIPS, "arcface": second / "ids" / "backbone_ir50_ms1m_epoch63.pth"}
    assert find_metric_weights([tmp_path / "absent"]) == {}


def test_environment_folders_are_searched_too(tmp_path, monkeypatch):
    write_metric_file(tmp_path / "env" / "x" / LPIPS, "lpips")
    monkeypatch.setenv("PASL_WEIGHTS", str(tmp_path / "env"))
    assert find_metric_weights() == {"lpips": tmp_path / "env" / "x" / LPIPS}


# ---------------------------------------------------------------------------------------------- loading


def test_a_missing_file_names_the_file_the_folder_and_the_command(tmp_path):
    with pytest.raises(MissingWeightError) as info:
        load_metric("fid_paper", [tmp_path / "w"])
    message = str(info.value)
    assert message.startswith(f"The paper FID backbone needs {PAPER}, not found under {tmp_path / 'w'}, {tmp_path / 'nowhere'}; ")
    assert f"put it in {tmp_path / 'w' / 'eval'}; get it from " in message and URLS[PAPER] in message
    assert message.endswith(", or run `python -m pasl download eval`.") and "\n" not in message

    write_metric_file(tmp_path / "w" / "x" / ALEXNET, "lpips_alexnet")  # LPIPS needs both files: only the absent one is named
    with pytest.raises(MissingWeightError) as info:
        load_metric("lpips", [tmp_path / "w"])
    assert f"LPIPS needs {LPIPS}, not found" in str(info.value) and ALEXNET not in str(info.value)
    assert URLS[LPIPS] in str(info.value) and "python -m pasl download eval" in str(info.value)

    with pytest.raises(MissingWeightError) as info:
        load_metric("arcface", [tmp_path / "w"])
    assert "backbone_ir50_ms1m_epoch*.pth" in str(info.value) and f"put it in {tmp_path / 'w'}; " in str(info.value)
    assert "pasl download" not in str(info.value)  # no command fetches it


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of fid_paper, fid_standard, lpips, arcface, got 'lpips_alexnet'"):
        load_metric("lpips_alexnet", [tmp_path])


def test_a_wrong_hash_is_a_weight_file_error_and_the_right_file_loads(tmp_path):
    write_metric_file(tmp_path / "a" / "b" / PAPER, "fid_paper", start=1.0)
    with pytest.raises(WeightFileError, match=f"{PAPER}: its sha256 does not start with 0cc3c7bd"):
        load_metric("fid_paper", [tmp_path])
    backbone = load_metric("fid_paper", [tmp_path], check_hash=False)
    assert backbone.flavour == "paper" and not backbone.training
    assert torch.equal(backbone.net.Conv2d_1a_3x3.conv.weight, torch.full((32, 3, 3, 3), 1.001))  # the first tensor of the file


def test_lpips_loads_both_files_by_kind(tmp_path):
    write_metric_file(tmp_path / "eval" / ALEXNET, "lpips_alexnet", start=2.0)
    write_metric_file(tmp_path / "elsewhere" / LPIPS, "lpips")
    with pytest.raises(WeightFileError, match=f"expected {LPIPS_SHA256}|expected 7be5be79"):
        load_metric("lpips", [tmp_path])
    model = load_metric("lpips", [tmp_path], check_hash=False)
    assert torch.equal(model.features[0].weight, torch.full((64, 3, 11, 11), 2.001))
    assert [float(w.flatten()[0]) for w in model.weights] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_lpips_layer_weights_are_checked_for_shape(tmp_path):
    from pasl.eval.lpips import read_lpips_weights

    bad = {f"lpips_weights.{i}.main.1.weight": torch.ones(1, c, 1, 1) for i, c in enumerate(LAYER_CHANNELS)}
    bad["lpips_weights.2.main.1.weight"] = torch.ones(1, 1, 1, 1)  # would broadcast silently
    torch.save(bad, tmp_path / LPIPS)
    with pytest.raises(WeightFileError, match=r"lpips_weights.2.main.1.weight has shape \(1, 1, 1, 1\), expected \(1, 384, 1, 1\)"):
        read_lpips_weights(tmp_path / LPIPS)


def test_arcface_loads_as_one_identity_network_for_every_pose(tmp_path):
    from pasl.pae import IR50, PAIR_KINDS

    path = tmp_path / "ids" / "backbone_ir50_ms1m_epoch63.pth"
    path.parent.mkdir()
    torch.save(_tiny(IR50().state_dict(), 3.0), path)
    pae = load_metric("arcface", [tmp_path])
    assert pae.single and all(pae.network(kind) is pae.networks["arcface"] for kind in PAIR_KINDS)
    first = next(iter(pae.networks["arcface"].state_dict().values()))
    assert torch.equal(first, torch.full_like(first, 3.001))


# ---------------------------------------------------------------------------------------------- python -m pasl download eval


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    return {name: write_metric_file(root / name, key) for name, key in zip((PAPER, STANDARD, ALEXNET, LPIPS), METRIC_KEYS)}


def _serve(monkeypatch, files: dict[str, Path]) -> Server:
    server = Server(FakeServices(files=dict(files)))
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    return server


def test_the_eval_plan_fetches_the_four_files_into_eval(monkeypatch):
    jobs = sources.plan("eval")
    assert [(s.kind, s.ref, [(t.key, t.path) for t in ts]) for s, ts in jobs] == [
        ("url", URLS[name], [(key, f"eval/{name}")]) for name, key in zip((PAPER, STANDARD, ALEXNET, LPIPS), METRIC_KEYS)]
    assert [sources.EXPECTED_SHA256[f"eval/{name}"] for name in (PAPER, STANDARD, ALEXNET, LPIPS)] == [
        "0cc3c7bd", "6726825d", "7be5be79", LPIPS_SHA256]
    monkeypatch.setenv("PASL_EVAL_BASE_URL", "http://mirror.example/pasl")
    assert [s.ref for s, _ in sources.plan("eval")] == [f"http://mirror.example/pasl/{n}" for n in (PAPER, STANDARD, ALEXNET, LPIPS)]


def test_download_eval_writes_checks_and_records_the_four_files(served, tmp_path, monkeypatch, capsys):
    for name, path in served.items():
        monkeypatch.setitem(sources.EXPECTED_SHA256, f"eval/{name}", _sha256(path))
    target = tmp_path / "models"
    with _serve(monkeypatch, served) as server:
        assert cli(["download", "eval", "--to", str(target)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["downloaded"]) == sorted(str(target / "eval" / name) for name in served)
    assert sorted(r[1] for r in server.services.requests) == sorted(f"/files/{name}" for name in served)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(
        ["downloads.json", *(f"eval/{name}" for name in served)])  # no .part left
    manifest = json.loads((target / "downloads.json").read_text())["files"]
    for name, path in served.items():
        assert _sha256(target / "eval" / name) == _sha256(path)
        record = manifest[f"eval/{name}"]
        assert (record["source"], record["bytes"], record["sha256"]) == (f"{server.url}/files/{name}", path.stat().st_size, _sha256(path))
    # what was downloaded is what discovery finds and the metrics load
    assert find_metric_weights([target]) == {key: target / "eval" / name for name, key in zip(served, METRIC_KEYS)}
    assert load_metric("lpips", [target], check_hash=False).weights[4].flatten()[0].item() == pytest.approx(0.5)


def test_download_eval_keeps_no_file_with_the_wrong_hash_or_keys(served, tmp_path, monkeypatch, capsys):
    with _serve(monkeypatch, {PAPER: served[PAPER]}) as server:  # the real prefix: a synthetic file cannot have it
        assert cli(["download", "eval", "--to", str(tmp_path / "w")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: could not download eval/{PAPER}: ")
    assert f"its sha256 is {_sha256(served[PAPER])[:12]}…, expected 0cc3c7bd…" in line
    assert f"By hand: download eval/{PAPER} from {server.url}/files/{PAPER} in a browser and put it in {tmp_path / 'w' / 'eval'}" in line
    assert not (tmp_path / "w" / "eval" / PAPER).exists()

    wrong = tmp_path / "wrong" / PAPER  # AlexNet's keys under the Inception's name
    wrong.parent.mkdir()
    wrong.write_bytes(served[ALEXNET].read_bytes())
    monkeypatch.setitem(sources.EXPECTED_SHA256, f"eval/{PAPER}", _sha256(wrong))
    with _serve(monkeypatch, {PAPER: wrong}):
        assert cli(["download", "eval", "--to", str(tmp_path / "w")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the downloaded file is not a valid FID backbone, paper flavour" in line and "FID Inception weights" in line
    assert [p.name for p in (tmp_path / "w").rglob("*") if p.is_file()] == []


def test_download_all_does_not_fetch_the_metric_files(tmp_path, monkeypatch):
    jobs = []
    monkeypatch.setattr(pasl.download.fetch.flame.sys.stdin, "isatty", lambda: False)
    monkeypatch.setattr(pasl.download.fetch._Run, "job", lambda self, source, targets: jobs.append((source, targets)))
    pasl.download.download("all", tmp_path)
    assert len(jobs) == 8 and not [t for _, targets in jobs for t in targets if t.key in METRIC_KEYS or t.path.startswith("eval/")]
    assert not [s for s, _ in jobs if s.ref in URLS.values()]
    jobs.clear()
    pasl.download.download("eval", tmp_path)
    assert [t.path for _, targets in jobs for t in targets] == [f"eval/{n}" for n in (PAPER, STANDARD, ALEXNET, LPIPS)]


def test_help_lists_eval_apart_from_all(capsys):
    with pytest.raises(SystemExit):
        cli(["download", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{all,aeg,deca,flame,pae,fan,eval,train}" in text and "eval (never part of all)" in text
    assert "train (never part of all)" in text


# ---------------------------------------------------------------------------------------------- doctor


def test_doctor_lists_the_metric_files_as_optional(tmp_path):
    from pasl.doctor import diagnose, format_report

    write_metric_file(tmp_path / "eval" / LPIPS, "lpips")
    report = diagnose([tmp_path])
    assert report["found"]["lpips"] == [str(tmp_path / "eval" / LPIPS)] and report["found"]["fid_paper"] == []
    assert not any(key in m["file"] for m in report["missing"] for key in (PAPER, STANDARD, ALEXNET, LPIPS))  # optional
    lines = format_report(report).splitlines()
    start = lines.index("metrics (optional; used only by `python -m pasl.eval` and the PASL Metrics node):")
    assert lines[start + 1:start + 6] == [
        f"  [    -- ] FID backbone, paper flavour: {PAPER}",
        f"  [    -- ] FID backbone, standard flavour: {STANDARD}",
        f"  [    -- ] LPIPS AlexNet features: {ALEXNET}",
        f"  [    ok ] LPIPS layer weights: {tmp_path / 'eval' / LPIPS}",
        f"  get them with `python -m pasl download eval` (into {Path(report['download_folder']) / 'eval'}, or --to DIR)",
    ]
    assert lines[start + 6] == "backends:"
    assert not any(PAPER in line for line in lines[:start])  # not among the reenactment files


def test_download_train_fetches_vgg19_into_train_and_training_finds_it(tmp_path, monkeypatch, capsys):
    from pasl.train.config import TrainConfig
    from pasl.train.run import found_weight
    from pasl.train.vgg import VGG19_FILE, load_vgg19_state, vgg19_features

    assert [(s.ref, [(t.key, t.path) for t in ts]) for s, ts in sources.plan("train")] == [
        (f"https://download.pytorch.org/models/{VGG19_FILE}", [("vgg19", f"train/{VGG19_FILE}")])]
    served = tmp_path / "served" / VGG19_FILE
    served.parent.mkdir()
    torch.save({f"features.{k}": v for k, v in vgg19_features().state_dict().items()}, served)
    monkeypatch.setitem(sources.EXPECTED_SHA256, f"train/{VGG19_FILE}", _sha256(served))
    target = tmp_path / "models"
    with _serve(monkeypatch, {VGG19_FILE: served}):
        assert cli(["download", "train", "--to", str(target)]) == 0
    assert json.loads(capsys.readouterr().out)["downloaded"] == [str(target / "train" / VGG19_FILE)]
    config = TrainConfig(pairs="p", weights_dirs=[str(target)], lambda_id=0)
    assert found_weight(config, "vgg19", "VGG19") == target / "train" / VGG19_FILE
    assert load_vgg19_state(target / "train", check_hash=False).keys() == {f"features.{k}" for k in vgg19_features().state_dict()}
    assert download_command("vgg19") == "python -m pasl download train" and "train/ sub-folder" in where_to_get("vgg19")
