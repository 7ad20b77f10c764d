"""Where weights are searched (ComfyUI, extra_model_paths.yaml, pip installs), every missing file in one
message before anything loads, .safetensors twins preferred, and the console script's name in its help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pasl import catalog
from pasl.catalog import (
    check_weights,
    default_folders,
    extra_model_paths,
    model_folder,
    resolve_weights,
    search_folders,
    user_weights_folder,
)
from pasl.errors import MissingWeightError

REPO = Path(__file__).resolve().parents[1]
REQUIRED = [item for item in catalog.CATALOG if item.required]


@pytest.fixture
def no_default_folders(monkeypatch, tmp_path):
    """Nothing but the folders a test names is searched (the checkout's weights/ may hold real files)."""
    monkeypatch.setenv("PASL_WEIGHTS", "")
    monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")


def fake_pack(root: Path) -> Path:
    """The package path of a pack installed as ``root/ComfyUI/custom_nodes/pack/pasl`` (it need not exist)."""
    return root / "ComfyUI" / "custom_nodes" / "pack" / "pasl"


class TestSearchOrder:
    def test_comfyui_install(self, tmp_path, monkeypatch):
        package = fake_pack(tmp_path)
        comfy = tmp_path / "ComfyUI"
        comfy.mkdir()
        (comfy / "extra_model_paths.yaml").write_text("mine:\n  base_path: /data/models\n  pasl: pasl_weights\n")
        monkeypatch.setenv("PASL_WEIGHTS", os.pathsep.join(["/env/a", "/env/b"]))
        assert search_folders(["/given"], package=package) == [
            Path("/given"), Path("/env/a"), Path("/env/b"),
            comfy / "models" / "pasl", Path("/data/models/pasl_weights"), package.parent / "weights",
        ]
        assert model_folder(package) == comfy / "models" / "pasl"

    def test_source_checkout(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", "")
        package = tmp_path / "checkout" / "pasl"
        assert search_folders(package=package) == [tmp_path / "checkout" / "weights"]
        assert model_folder(package) == tmp_path / "checkout" / "weights"

    def test_pip_install_uses_a_per_user_folder_not_site_packages(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", "")
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        package = tmp_path / "venv" / "lib" / "python3.12" / "site-packages" / "pasl"
        assert default_folders(package) == [tmp_path / "data" / "pasl" / "weights"]
        assert model_folder(package) == tmp_path / "data" / "pasl" / "weights"
        assert not any("site-packages" in str(p) for p in search_folders(package=package))

    def test_user_folder_per_platform(self, tmp_path):
        home = Path.home()
        assert user_weights_folder("linux", {}) == home / ".local" / "share" / "pasl" / "weights"
        assert user_weights_folder("linux", {"XDG_DATA_HOME": "relative"}) == home / ".local" / "share" / "pasl" / "weights"
        assert user_weights_folder("linux", {"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "pasl" / "weights"
        assert user_weights_folder("darwin", {}) == home / "Library" / "Application Support" / "pasl" / "weights"
        assert user_weights_folder("win32", {"LOCALAPPDATA": str(tmp_path)}) == tmp_path / "pasl" / "weights"

    def test_a_folder_is_searched_once(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", str(tmp_path / "w"))
        package = tmp_path / "pasl"
        assert search_folders([tmp_path / "weights", tmp_path / "w"], package=package) == [tmp_path / "weights", tmp_path / "w"]


YAML = """\
# ComfyUI's example, trimmed
comfyui:
    base_path: ../shared   # relative to this file's folder
    is_default: true
    checkpoints: models/checkpoints/
    pasl: |
        models/pasl/
        more/pasl
a111:
    base_path: /sd/webui
    checkpoints: models/Stable-diffusion
no_base:
    pasl: elsewhere/pasl
"""


class TestExtraModelPaths:
    @pytest.mark.parametrize("pyyaml", [True, False])
    def test_pasl_entries(self, tmp_path, monkeypatch, pyyaml):
        if not pyyaml:
            monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError: the small parser runs
        else:
            pytest.importorskip("yaml")
        comfy = tmp_path / "ComfyUI"
        comfy.mkdir()
        (comfy / "extra_model_paths.yaml").write_text(YAML)
        assert extra_model_paths(comfy) == [
            tmp_path / "shared" / "models" / "pasl", tmp_path / "shared" / "more" / "pasl", comfy / "elsewhere" / "pasl",
        ]

    @pytest.mark.parametrize("pyyaml", [True, False])
    def test_a_broken_file_is_skipped_with_a_log_line(self, tmp_path, monkeypatch, caplog, pyyaml):
        if not pyyaml:
            monkeypatch.setitem(sys.modules, "yaml", None)
        comfy = tmp_path / "ComfyUI"
        comfy.mkdir()
        (comfy / "extra_model_paths.yaml").write_text("comfyui:\n  base_path: [unclosed\n pasl\n:::\n")
        with caplog.at_level("WARNING", logger="pasl.catalog"):
            assert extra_model_paths(comfy) == []
            folders = search_folders(package=comfy / "custom_nodes" / "pack" / "pasl")
        assert "extra_model_paths.yaml could not be read" in caplog.text
        assert comfy / "models" / "pasl" in folders

    def test_no_file_no_folders(self, tmp_path):
        assert extra_model_paths(tmp_path) == []


class TestCheckWeights:
    def test_an_empty_folder_lists_every_required_file_at_once(self, tmp_path, no_default_folders):
        start = time.perf_counter()
        with pytest.raises(MissingWeightError) as info:
            check_weights([tmp_path])
        assert time.perf_counter() - start < 1.0
        message = str(info.value)
        assert message.startswith(f"{len(REQUIRED)} weight files are missing (searched {tmp_path}")
        for item in REQUIRED:
            assert item.patterns[0] in message and item.source in message, item.key
        assert message.count(f"put it in {tmp_path};") == len(REQUIRED)
        assert message.endswith("run `python -m pasl doctor` for details")

    def test_only_the_absent_files_are_listed(self, tmp_path, no_default_folders):
        (tmp_path / "204000_nets_ema.ckpt").write_bytes(b"not opened")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "head_template.obj").write_text("not opened")
        with pytest.raises(MissingWeightError) as info:
            check_weights([tmp_path])
        message = str(info.value)
        assert message.startswith("3 weight files are missing")
        assert "deca_model.tar" in message and "generic_model.pkl" in message and "landmark_embedding.npy" in message
        assert "AEG" not in message and "head_template.obj" not in message

    def test_complete_folders_pass_and_converted_flame_needs_no_embedding(self, tmp_path, no_default_folders):
        for name in ("pasl_aeg_204000.safetensors", "pasl_deca.safetensors", "pasl_flame.npz", "head_template.obj"):
            (tmp_path / name).write_bytes(b"")
        check_weights([tmp_path])
        with pytest.raises(MissingWeightError, match=r"^1 weight file is missing .*\n  - .*missing.ckpt does not exist"):
            check_weights([tmp_path], aeg=tmp_path / "missing.ckpt")
        with pytest.raises(MissingWeightError, match="POE/FP/Backbone_IR_50_Epoch_120.pth"):
            check_weights([tmp_path], identity="pae")
        check_weights([tmp_path], identity="auto")

    def test_without_the_shape_stage_only_the_aeg_is_needed(self, tmp_path, no_default_folders):
        (tmp_path / "204000_nets_ema.ckpt").write_bytes(b"")
        check_weights([tmp_path], require_shape_stage=False)

    def test_torch_is_not_imported(self, tmp_path):
        code = ("import sys; from pasl.catalog import check_weights\n"
                f"try: check_weights([{str(tmp_path)!r}])\nexcept FileNotFoundError: pass\nprint('torch' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
        assert out.strip() == "False"

    def test_pae_files_agree_with_the_pae_module(self):
        from pasl.pae import OFFICIAL_EPOCHS

        assert catalog.PAE_FILES == {k: f"POE/{k}/Backbone_IR_50_Epoch_{e}.pth" for k, e in OFFICIAL_EPOCHS.items()}


def write_twin(pickle: Path, twin: Path) -> None:
    from pasl.weights import save_converted

    save_converted({"x": torch.zeros(2)}, twin, format="test", sources=pickle)


class TestTwins:
    def test_a_verified_twin_replaces_its_pickle(self, tmp_path, no_default_folders):
        (tmp_path / "204000_nets_ema.ckpt").write_bytes(b"demo")
        (tmp_path / "250000_nets_ema.ckpt").write_bytes(b"test model")
        (tmp_path / "deca_model.tar").write_bytes(b"deca")
        write_twin(tmp_path / "204000_nets_ema.ckpt", tmp_path / "pasl_aeg_204000.safetensors")
        write_twin(tmp_path / "deca_model.tar", tmp_path / "pasl_deca.safetensors")
        files = resolve_weights([tmp_path], require_shape_stage=False)
        assert files.aeg == tmp_path / "pasl_aeg_204000.safetensors" and files.deca == tmp_path / "pasl_deca.safetensors"

    def test_a_stale_or_foreign_twin_is_not_used(self, tmp_path, no_default_folders):
        (tmp_path / "204000_nets_ema.ckpt").write_bytes(b"old")
        write_twin(tmp_path / "204000_nets_ema.ckpt", tmp_path / "pasl_aeg_204000.safetensors")
        (tmp_path / "204000_nets_ema.ckpt").write_bytes(b"replaced")
        (tmp_path / "deca_model.tar").write_bytes(b"deca")
        (tmp_path / "other.tar").write_bytes(b"deca")
        write_twin(tmp_path / "other.tar", tmp_path / "pasl_deca.safetensors")  # same bytes, another file name
        files = resolve_weights([tmp_path], require_shape_stage=False)
        assert files.aeg == tmp_path / "204000_nets_ema.ckpt" and files.deca == tmp_path / "deca_model.tar"

    def test_a_twin_alone_is_used(self, tmp_path, no_default_folders):
        (tmp_path / "src.ckpt").write_bytes(b"gone later")
        write_twin(tmp_path / "src.ckpt", tmp_path / "pasl_aeg_204000.safetensors")
        (tmp_path / "src.ckpt").unlink()
        assert resolve_weights([tmp_path], require_shape_stage=False).aeg == tmp_path / "pasl_aeg_204000.safetensors"

    @pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX file modes")
    @pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
    def test_converted_files_have_the_usual_mode(self, tmp_path, umask, mode):
        (tmp_path / "src.ckpt").write_bytes(b"x")
        old = os.umask(umask)
        try:
            write_twin(tmp_path / "src.ckpt", tmp_path / "twin.safetensors")
            write_twin(tmp_path / "src.ckpt", tmp_path / "twin.npz")
        finally:
            os.umask(old)
        assert oct((tmp_path / "twin.safetensors").stat().st_mode & 0o777) == oct(mode)
        assert oct((tmp_path / "twin.npz").stat().st_mode & 0o777) == oct(mode)


def test_cli_finds_what_install_found_in_comfyui(tmp_path):
    """The user's report: install.py found the files in ComfyUI/models/pasl, `python -m pasl doctor` run
    from the pack's folder did not."""
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "pack"
    models = tmp_path / "ComfyUI" / "models" / "pasl"
    pack.mkdir(parents=True)
    models.mkdir(parents=True)
    (pack / "install.py").write_text((REPO / "install.py").read_text())
    (pack / "pasl").symlink_to(REPO / "pasl")
    (models / "deca_model.tar").write_bytes(b"not opened")
    env = {**os.environ, "PASL_WEIGHTS": ""}
    installed = subprocess.run([sys.executable, "install.py", "--no-convert"], capture_output=True, text=True, check=True,
                               cwd=pack, env=env).stdout
    assert f"[PASL] model folder: {models}" in installed and "found CSG shape encoder" in installed
    out = subprocess.run([sys.executable, "-m", "pasl", "doctor", "--json"], capture_output=True, text=True, check=True,
                         cwd=pack, env=env).stdout
    report = json.loads(out)
    assert report["searched"][0] == str(models) and report["found"]["deca"] == [str(models / "deca_model.tar")]


class TestProgramName:
    @pytest.mark.parametrize("argv0,name", [
        ("/usr/local/bin/pasl", "pasl"), (r"C:\venv\Scripts\pasl.exe", "pasl"),
        (str(REPO / "pasl" / "__main__.py"), "python -m pasl"), ("-c", "python -m pasl"),
    ])
    def test_help_names_what_the_user_typed(self, monkeypatch, argv0, name):
        from pasl.__main__ import build_parser

        monkeypatch.setattr(sys, "argv", [argv0.replace("\\", os.sep), "--help"])
        assert build_parser().format_help().startswith(f"usage: {name} [-h]")
