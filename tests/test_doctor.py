"""`python -m pasl doctor` and install.py report files by name without opening them."""

import json
import subprocess
import sys
from pathlib import Path

from pasl.__main__ import main as cli
from pasl.catalog import CATALOG, find, where_to_get
from pasl.doctor import diagnose

REPO = Path(__file__).resolve().parents[1]


def test_found_and_missing_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "204000_nets_ema.ckpt").write_bytes(b"not opened")
    (tmp_path / "deca_model.tar").write_bytes(b"")
    report = diagnose([tmp_path])
    assert report["found"]["aeg"] == [str(tmp_path / "sub" / "204000_nets_ema.ckpt")]
    assert report["found"]["deca"] == [str(tmp_path / "deca_model.tar")]
    missing = {m["file"] for m in report["missing"]}
    assert "generic_model.pkl or pasl_flame*.npz or pasl_flame*.safetensors" in missing
    assert not any("deca_model.tar" in m for m in missing)
    assert not any("Backbone_IR_50" in m for m in missing)  # optional files are never "missing"


def test_cli_json(tmp_path, capsys):
    assert cli(["doctor", "--json", "--weights-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["searched"][0] == str(tmp_path)
    assert {"torch", "cuda", "opencv"} <= set(report["backends"])


def test_every_entry_says_where_to_get_it():
    for item in CATALOG:
        assert "http" in where_to_get(item.key)
    assert find("aeg", [Path("/nonexistent")]) == []


def test_install_script_creates_the_folder_and_reports(tmp_path):
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "pasl"
    (tmp_path / "ComfyUI" / "models").mkdir(parents=True)
    pack.mkdir(parents=True)
    (pack / "install.py").write_text((REPO / "install.py").read_text())
    (pack / "pasl").symlink_to(REPO / "pasl")
    for _ in range(2):  # idempotent
        out = subprocess.run([sys.executable, str(pack / "install.py")], capture_output=True, text=True, check=True).stdout
    assert (tmp_path / "ComfyUI" / "models" / "pasl").is_dir()
    assert "missing AEG generator" in out and "drive.google.com" in out


def test_install_script_converts_official_files_once(tmp_path, monkeypatch):
    from pasl.catalog import resolve_weights
    from synthetic import write_nets_ema

    pack = tmp_path / "ComfyUI" / "custom_nodes" / "pasl"
    models = tmp_path / "ComfyUI" / "models" / "pasl"
    models.mkdir(parents=True)
    pack.mkdir(parents=True)
    (pack / "install.py").write_text((REPO / "install.py").read_text())
    (pack / "pasl").symlink_to(REPO / "pasl")
    write_nets_ema(models / "204000_nets_ema.ckpt")
    (models / "broken_nets_ema.ckpt").write_bytes(b"not a checkpoint")
    first = subprocess.run([sys.executable, str(pack / "install.py")], capture_output=True, text=True, check=True).stdout
    assert "converted 204000_nets_ema.ckpt -> pasl_aeg_204000.safetensors" in first
    assert "could not convert" in first and "broken_nets_ema.ckpt" in first
    assert (models / "pasl_aeg_204000.safetensors").is_file()
    (tmp_path / "probe").touch()  # the twin has a new file's usual mode (umask applied), not 0600
    assert (models / "pasl_aeg_204000.safetensors").stat().st_mode & 0o777 == (tmp_path / "probe").stat().st_mode & 0o777
    monkeypatch.setenv("PASL_WEIGHTS", "")
    monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")
    assert resolve_weights([models], require_shape_stage=False).aeg == models / "pasl_aeg_204000.safetensors"  # the twin is used
    second = subprocess.run([sys.executable, str(pack / "install.py")], capture_output=True, text=True, check=True).stdout
    assert "converted" not in second.replace("could not convert", "")


def test_incomplete_pae_set_is_reported_by_pair(tmp_path):
    from pasl.doctor import format_report

    for pair in ("FF", "SS", "PP"):
        (tmp_path / "POE" / pair).mkdir(parents=True)
        (tmp_path / "POE" / pair / "Backbone_IR_50_Epoch_80.pth").write_bytes(b"not opened")
    report = diagnose([tmp_path])
    assert report["pae_pairs"] == ["FF", "SS", "PP"]
    assert "PAE: 3 of 6 pair networks found (missing FS, FP, SP)" in format_report(report)


def test_report_lists_the_searched_folders_in_order(tmp_path):
    from pasl.doctor import format_report

    text = format_report(diagnose([tmp_path, tmp_path / "absent"]))
    lines = text.splitlines()
    start = lines.index("searched, in this order (--weights-dir, $PASL_WEIGHTS, then the default folders):")
    assert lines[start + 1:start + 3] == [f"  {tmp_path}", f"  {tmp_path / 'absent'}  (does not exist)"]


def test_missing_files_name_the_download_command(tmp_path, monkeypatch):
    from pasl.catalog import download_command
    from pasl.doctor import format_report

    monkeypatch.setattr("pasl.doctor.model_folder", lambda: tmp_path / "models")
    report = diagnose([tmp_path])
    assert {m["purpose"]: m["download"] for m in report["missing"] if m["purpose"].startswith("CSG")} == {
        "CSG shape encoder (DECA E_flame)": "python -m pasl download deca"}
    text = format_report(report)
    assert ", or run `python -m pasl download flame`" in text and ", or run `python -m pasl download deca`" in text
    assert f"every file at once: `python -m pasl download all` (into {tmp_path / 'models'}, or --to DIR;" in text
    assert "python -m pasl download aeg" in where_to_get("aeg") and download_command("arcface") is None
    assert "pasl download" not in where_to_get("arcface")  # no command for a file it cannot fetch
