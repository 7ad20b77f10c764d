"""Files in, files out: image, folder and video drivers, audio kept, the CLI's messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pasl.__main__ import main as cli
from pasl.files import reenact_files
from pasl.models import load_models
from pasl.pipeline import ReenactOptions, Reenactor
from pasl.video import VideoWriter, iter_frame_chunks, probe
from pipeline_synthetic import ScriptedDetector, weights_folder
from shared_assets import skip_or_fail

av = pytest.importorskip("av")
SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "video" / "pyfeat_single_face.mp4"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return weights_folder(tmp_path_factory.mktemp("pasl_weights_files"))


@pytest.fixture(scope="module")
def reenactor(folder):
    return Reenactor(load_models([folder]), ScriptedDetector(), ReenactOptions(smoothing=0.0))


def write_image(path: Path, height: int, width: int, value: float | None = None) -> Path:
    rng = np.random.RandomState(1)
    pixels = np.full((height, width, 3), value) if value is not None else rng.uniform(60, 220, (height, width, 3))
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def test_image_to_image(reenactor, tmp_path):
    source = write_image(tmp_path / "source.jpg", 200, 160)
    driving = write_image(tmp_path / "driving.png", 120, 90)
    summary = reenact_files(reenactor, source, driving, tmp_path / "out" / "result.png")
    with Image.open(tmp_path / "out" / "result.png") as out:
        assert out.size == (90, 120) and out.mode == "RGB"
    assert summary.frames == 1 and summary.faceless == []


def test_folder_to_folder_keeps_names_and_passes_faceless_images(reenactor, tmp_path):
    source = write_image(tmp_path / "source.png", 128, 128)
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    write_image(drivers / "a.png", 100, 100)
    dark = write_image(drivers / "b.jpg", 64, 80, value=0)
    (drivers / "notes.txt").write_text("ignored")
    summary = reenact_files(reenactor, source, drivers, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert summary.faceless == [1]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "b.png")), np.asarray(Image.open(dark)))


def test_video_to_video_streams_and_keeps_audio(reenactor, tmp_path):
    if not SHARED_VIDEO.exists():
        skip_or_fail("../shared/assets is not available")
    driving = tmp_path / "short.mp4"
    frames = next(iter_frame_chunks(SHARED_VIDEO, 5))[:, ::4, ::4]  # 5 frames, 160x90
    with VideoWriter(driving, 30, audio_from=SHARED_VIDEO) as writer:
        writer.write(np.ascontiguousarray(frames))
    source = write_image(tmp_path / "source.png", 128, 128)
    done = []
    summary = reenact_files(reenactor, source, driving, tmp_path / "out.mp4", chunk_size=2, progress=lambda d, t: done.append(d))
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.has_audio) == (160, 90, True)
    assert summary.frames == 5 and done == [2, 4, 5]
    assert sum(c.shape[0] for c in iter_frame_chunks(tmp_path / "out.mp4", 4)) == 5


def test_video_driver_needs_a_video_output(reenactor, tmp_path):
    driving = tmp_path / "d.mp4"
    with VideoWriter(driving, 25) as writer:
        writer.write(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="--out must be a video file"):
        reenact_files(reenactor, write_image(tmp_path / "s.png", 64, 64), driving, tmp_path / "out.png")


def test_odd_frame_sizes_are_padded_for_h264(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", 25) as writer:
        writer.write(np.full((3, 33, 45, 3), 128, np.uint8))
    info = probe(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.has_audio) == (46, 34, False)


class TestCommandLine:
    def test_missing_weights_are_all_named_in_one_message(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setenv("PASL_WEIGHTS", "")
        monkeypatch.setattr("pasl.catalog.PACK_WEIGHTS", tmp_path / "nowhere")
        source = write_image(tmp_path / "s.png", 64, 64)
        (tmp_path / "deca_model.tar").write_bytes(b"not opened")
        code = cli(["reenact", "--source", str(source), "--driving", str(source), "--out", str(tmp_path / "o.png"),
                    "--weights-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: 4 weight files are missing") and "drive.google.com" in err
        for name in ("*_nets_ema.ckpt", "generic_model.pkl", "landmark_embedding.npy", "head_template.obj"):
            assert name in err
        assert "deca_model.tar" not in err and err.rstrip().endswith("run `python -m pasl doctor` for details")

    @pytest.mark.parametrize(
        "flags,message",
        [
            (["--batch-size", "0"], "error: --batch-size must be a whole number >= 1, got 0"),
            (["--color-match", "2"], "error: --color-match must be a number in [0, 1], got 2.0"),
            (["--smoothing", "-1"], "error: --smoothing must be a number in [0, 10], got -1.0"),
            (["--refine-steps", "-2"], "error: --refine-steps must be a whole number >= 0, got -2"),
            (["--chunk-size", "0"], "error: --chunk-size must be a whole number >= 1, got 0"),
        ],
    )
    def test_a_bad_option_is_named_by_its_flag_before_anything_loads(self, tmp_path, capsys, flags, message):
        """Checked before the weights: the folder here is empty, yet the option is what is reported."""
        source = write_image(tmp_path / "s.png", 64, 64)
        code = cli(["reenact", "--source", str(source), "--driving", str(source), "--out", str(tmp_path / "o.png"),
                    "--weights-dir", str(tmp_path), *flags])
        assert code == 2 and capsys.readouterr().err == message + "\n"

    def test_bad_paths_are_reported_before_anything_loads(self, tmp_path, capsys):
        source = write_image(tmp_path / "s.png", 64, 64)
        (tmp_path / "frames").mkdir()
        (tmp_path / "a_file").write_text("x")
        cases = [
            (["--source", str(tmp_path / "typo.png"), "--driving", str(source), "--out", str(tmp_path / "o.png")],
             f"error: --source {tmp_path / 'typo.png'}: no such file"),
            (["--source", str(source), "--driving", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o.mp4")],
             f"error: --driving {tmp_path / 'missing.mp4'}: no such file or folder"),
            (["--source", str(source), "--driving", str(source), "--out", str(tmp_path / "frames")],
             "error: the driving input is an image, so --out must be an image file"),
            (["--source", str(source), "--driving", str(source), "--out", str(tmp_path / "o.xyz")],
             "error: the driving input is an image, so --out must be an image file"),
            (["--source", str(source), "--driving", str(source), "--out", str(tmp_path / "a_file" / "o.png")],
             f"error: --out {tmp_path / 'a_file' / 'o.png'}: {tmp_path / 'a_file'} is a file, not a folder"),
            (["--source", str(source), "--driving", str(tmp_path / "frames"), "--out", str(tmp_path / "a_file")],
             "error: the driving input is a folder, so --out must be a folder too"),
        ]
        for flags, message in cases:
            assert cli(["reenact", "--weights-dir", str(tmp_path), *flags]) == 2
            assert capsys.readouterr().err.startswith(message)

    def test_identity_score_without_encoders_is_one_line(self, folder, tmp_path, capsys):
        source = write_image(tmp_path / "s.png", 64, 64)
        code = cli(["reenact", "--source", str(source), "--driving", str(source), "--out", str(tmp_path / "o.png"),
                    "--weights-dir", str(folder), "--identity-score"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: identity scores need the PAE networks") and "drive.google.com" in err

    def test_unreadable_source_is_explained(self, folder, tmp_path, capsys):
        bad = tmp_path / "s.png"
        bad.write_bytes(b"not an image")
        code = cli(["reenact", "--source", str(bad), "--driving", str(bad), "--out", str(tmp_path / "o.png"),
                    "--weights-dir", str(folder), "--backend", "dlib-hog"])
        err = capsys.readouterr().err
        assert code == 2 and "could not be read as an image" in err

    def test_real_photo_with_the_offline_detector(self, folder, tmp_path, capsys):
        photo = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "photos" / "facerec_obama.jpg"
        pytest.importorskip("dlib")
        if not photo.exists():
            skip_or_fail("../shared/assets is not available")
        out = tmp_path / "out.png"
        assert cli(["reenact", "--source", str(photo), "--driving", str(photo), "--out", str(out),
                    "--weights-dir", str(folder), "--backend", "dlib-hog"]) == 0
        assert "1 frames reenacted" in capsys.readouterr().out
        result, original = np.asarray(Image.open(out)), np.asarray(Image.open(photo).convert("RGB"))
        assert result.shape == original.shape
        changed = np.abs(result.astype(int) - original.astype(int)).max(-1) > 0
        assert 0.01 < changed.mean() < 0.5  # the face region changed, the rest of the photo did not


def test_official_demo_preset_from_the_command_line(folder, tmp_path, capsys):
    """The demo's path (driver's own shape, 256 crop out, truncated to 8 bit) with the offline detector;
    ``--rounding round`` changes only the quantisation."""
    photo = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "photos" / "facerec_obama.jpg"
    pytest.importorskip("dlib")
    if not photo.exists():
        skip_or_fail("../shared/assets is not available")
    common = ["reenact", "--source", str(photo), "--driving", str(photo), "--weights-dir", str(folder),
              "--preset", "official-demo", "--backend", "dlib-hog"]
    assert cli(common + ["--out", str(tmp_path / "truncated.png")]) == 0
    assert cli(common + ["--out", str(tmp_path / "rounded.png"), "--rounding", "round"]) == 0
    truncated = np.asarray(Image.open(tmp_path / "truncated.png")).astype(int)
    rounded = np.asarray(Image.open(tmp_path / "rounded.png")).astype(int)
    assert truncated.shape == (256, 256, 3)  # the aligned crop, not pasted back
    difference = rounded - truncated
    assert difference.min() >= 0 and difference.max() <= 1 and 0.2 < (difference == 1).mean() < 0.8
    assert "1 frames reenacted" in capsys.readouterr().out
