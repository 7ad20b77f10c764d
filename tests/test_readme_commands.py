"""The README's first command, as written: download every weight file, then reenact the bundled sample.

The ``reenact`` command of the README's first line runs through the command line's ``main`` exactly as
written, in a fresh folder, on synthetic weights of the official formats in the default weights folder
(a temporary one here, not the checkout's ``weights/``). The ``download all`` before it is checked to be
the command ``tests/test_download.py`` runs end to end against its local imitation of Drive, FLAME's
server and the file hosts (no network); the ``pip install`` parts are what CI itself does first.
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


def test_the_first_line_downloads_all_then_reenacts_the_sample():
    import test_download

    first, _ = readme_commands()
    steps = [shlex.split(part) for part in first.split("&&")]
    assert steps[0] == ["pip", "install", "-r", "requirements.txt"]
    assert steps[1] == ["python", "-m", "pasl", "download", "all"]
    assert hasattr(test_download, "test_download_all_fetches_checks_and_records_every_file")  # its end-to-end test
    assert steps[2][:4] == ["python", "-m", "pasl", "reenact"]


@pytest.mark.slow
def test_first_lines_reenact_command_runs_as_written(tmp_path, monkeypatch, capsys):
    from pasl import catalog
    from pasl.video import probe
    from pipeline_synthetic import weights_folder

    first, _ = readme_commands()
    reenact = shlex.split(first.split("&&")[2])[3:]
    monkeypatch.setattr(catalog, "PACK_WEIGHTS", weights_folder(tmp_path / "weights"))  # where download all puts them
    work = tmp_path / "work"
    work.mkdir()
    (work / "samples").symlink_to(REPO / "samples")
    monkeypatch.chdir(work)
    assert cli(reenact) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "24 frames reenacted" in out
    info, sample = probe(work / "out.mp4"), probe(REPO / "samples" / "driving.mp4")
    assert (info.width, info.height, info.fps) == (sample.width, sample.height, sample.fps)
