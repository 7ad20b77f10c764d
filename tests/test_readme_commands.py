"""The README's first command, as written: download every weight file, then reenact the bundled sample.

The two ``python -m pasl`` commands of the README's first line run through the command line's ``main``
in a fresh folder, with the download services imitated by ``tests/download_server.py`` (no network)
and serving synthetic files of the official formats. Two things differ from a user's machine, on
purpose: the default weights folder is a temporary one (not the checkout's ``weights/``), and the FAN
detector is left out of ``all`` (its synthetic weights find no face, so ``auto`` would pick it and fail;
with the real files ``auto`` prefers it). The ``pip install`` part is what CI itself does first.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pasl.__main__ import main as cli

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("dlib")
pytest.importorskip("av")


def readme_commands() -> tuple[str, str]:
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    first, second = (line.split("#")[0].strip() for line in block.strip().splitlines()[:2])
    return first, second


def test_the_second_line_installs_the_test_requirements_and_runs_pytest():
    _, second = readme_commands()
    assert second == "pip install -r requirements-test.txt && python -m pytest"
    assert (REPO / "requirements-test.txt").is_file()


@pytest.mark.slow
def test_first_line_downloads_then_reenacts_the_sample(tmp_path, monkeypatch, capsys):
    import test_download as served
    from pasl import catalog
    from pasl.download import fetch, flame, sources
    from pasl.video import probe

    first, _ = readme_commands()
    steps = [shlex.split(part) for part in first.split("&&")]
    assert steps[0] == ["pip", "install", "-r", "requirements.txt"]
    assert [s[:3] for s in steps[1:]] == [["python", "-m", "pasl"]] * 2

    (tmp_path / "served").mkdir()
    root, files = served.write_official_files(tmp_path / "served")
    files = {k: v for k, v in files.items() if not k.startswith("face_alignment/")}
    monkeypatch.setattr(sources, "PAE_FILES", {"FF": "POE/FF/Backbone_IR_50_Epoch_80.pth"})
    for name in ("landmark_embedding.npy", "head_template.obj"):
        monkeypatch.setitem(sources.EXPECTED_SHA256, name, served._sha256(files[name]))
    monkeypatch.setattr(fetch, "KINDS", tuple(k for k in fetch.KINDS if k != "fan"))
    monkeypatch.setenv(flame.USERNAME_ENV, served.FLAME_LOGIN[0])
    monkeypatch.setenv(flame.PASSWORD_ENV, served.FLAME_LOGIN[1])
    weights = tmp_path / "weights"
    monkeypatch.setattr(catalog, "PACK_WEIGHTS", weights)
    work = tmp_path / "work"
    work.mkdir()
    (work / "samples").symlink_to(REPO / "samples")
    monkeypatch.chdir(work)

    with served._serve(monkeypatch, served._services(root, files)):
        assert cli(steps[1][3:]) == 0
    assert (weights / "204000_nets_ema.ckpt").is_file() and (weights / "generic_model.pkl").is_file()
    capsys.readouterr()
    assert cli(steps[2][3:]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "24 frames reenacted" in out
    info, sample = probe(work / "out.mp4"), probe(REPO / "samples" / "driving.mp4")
    assert (info.width, info.height, info.fps) == (sample.width, sample.height, sample.fps)
