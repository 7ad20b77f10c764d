"""``python -m pasl edit`` and ``animate``: a portrait turned or animated from the command line, synthetic weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pasl.__main__ import main as cli
from pasl.video import probe, read_video
from pipeline_synthetic import ScriptedDetector, weights_folder

pytest.importorskip("av")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return weights_folder(tmp_path_factory.mktemp("pasl_weights_portrait"))


@pytest.fixture
def run(folder, monkeypatch, capsys):
    monkeypatch.setattr("pasl.align.make_detector", lambda *args, **kwargs: ScriptedDetector())

    def run(*args: str) -> tuple[int, str, str]:
        code = cli([*args, "--weights-dir", str(folder)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def photo(tmp_path) -> Path:
    pixels = np.random.RandomState(1).uniform(60, 220, (200, 160, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "me.png")
    return tmp_path / "me.png"


def test_edit_writes_the_photo_with_a_turned_face(run, photo, tmp_path):
    out = tmp_path / "turned.png"
    code, stdout, err = run("edit", "--source", str(photo), "--yaw", "60", "--jaw", "10", "--smile", "0.5", "--out", str(out))
    assert code == 0, err
    assert "edited (source head: yaw" in stdout and str(out) in stdout
    result, original = np.asarray(Image.open(out)), np.asarray(Image.open(photo))
    assert result.shape == original.shape
    changed = np.abs(result.astype(int) - original.astype(int)).max(-1) > 0
    assert 0.01 < changed.mean() < 0.9 and not changed[0, 0]  # the face changed, the corner did not


def test_edit_without_paste_back_writes_the_crop(run, photo, tmp_path):
    out = tmp_path / "crop.png"
    assert run("edit", "--source", str(photo), "--yaw", "-30", "--add", "--no-paste-back", "--out", str(out))[0] == 0
    assert np.asarray(Image.open(out)).shape == (256, 256, 3)


@pytest.mark.parametrize("flags, message", [
    (["--yaw", "120"], "--yaw must be a number in [-90, 90]"),
    (["--smile", "5"], "--smile must be a number in [-2, 2]"),
    (["--jaw", "-3"], "--jaw must be a number in [0, 40]"),
])
def test_edit_bad_values_are_named_by_their_flag_before_loading(run, photo, tmp_path, flags, message):
    code, _, err = run("edit", "--source", str(photo), *flags, "--out", str(tmp_path / "o.png"))
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_animate_writes_every_frame_at_the_asked_rate(run, photo, tmp_path):
    out = tmp_path / "turn.mp4"
    code, stdout, err = run("animate", "--source", str(photo), "--keyframes", "0: yaw=0; 3: yaw=70; 5: yaw=0", "--fps", "10",
                            "--out", str(out))
    assert code == 0, err
    assert "6 frames animated" in stdout
    info, frames = probe(out), read_video(out)
    assert frames.shape[0] == 6 and abs(float(info.fps) - 10) < 1e-6
    assert frames.shape[1:3] == (200, 160)
    assert np.abs(frames[0].astype(int) - frames[3].astype(int)).max() > 10  # the head turned


@pytest.mark.parametrize("keyframes, message", [
    ("0: yaw=0; 3: nose=1", "--keyframes: keyframe 3: unknown field"), ("", "--keyframes: no keyframes"),
])
def test_animate_bad_keyframes(run, photo, tmp_path, keyframes, message):
    code, _, err = run("animate", "--source", str(photo), "--keyframes", keyframes, "--out", str(tmp_path / "o.mp4"))
    assert code == 2 and message in err


def test_animate_needs_a_video_output(run, photo, tmp_path):
    code, _, err = run("animate", "--source", str(photo), "--keyframes", "0: yaw=10", "--out", str(tmp_path / "o.png"))
    assert code == 2 and "--out must be a video file" in err


def test_faceless_source_is_named(run, tmp_path):
    dark = tmp_path / "dark.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(dark)
    code, _, err = run("edit", "--source", str(dark), "--yaw", "30", "--out", str(tmp_path / "o.png"))
    assert code == 2 and "--source" in err and "no face" in err
    assert not (tmp_path / "o.png").exists()


def test_edit_preset_saved_then_reused_with_a_flag_on_top(run, photo, tmp_path):
    from pasl.edit import HeadEdit, load_preset

    preset = tmp_path / "turn.json"
    assert run("edit", "--source", str(photo), "--yaw", "40", "--smile", "0.5", "--save-preset", str(preset),
               "--out", str(tmp_path / "a.png"))[0] == 0
    assert load_preset(preset) == HeadEdit(yaw=40.0, controls={"smile": 0.5})
    code, _, err = run("edit", "--source", str(photo), "--preset", str(preset), "--jaw", "9", "--out", str(tmp_path / "b.png"))
    assert code == 0, err
    code, _, err = run("edit", "--source", str(photo), "--preset", str(tmp_path / "missing.json"), "--out", str(tmp_path / "c.png"))
    assert code == 2 and "--preset" in err and "missing.json" in err

