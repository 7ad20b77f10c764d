"""Files in, files out: image, folder and video drivers, audio kept, the CLI's messages."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pasl.__main__ import main as cli
from pasl.errors import NoFaceError
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
    mode = (tmp_path / "out" / "result.png").stat().st_mode & 0o777  # written atomically, with the usual permissions
    assert mode == driving.stat().st_mode & 0o777 and [p.name for p in (tmp_path / "out").iterdir()] == ["result.png"]


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
            (["--strength", "nose=1"], "error: --strength: unknown channel 'nose' in 'nose=1'; channels: head, jaw, expression, camera"),
            (["--strength", "head=3"], "error: --strength: strength of head must be a number in [0, 2], got 3.0"),
            (["--relative", "--mode", "reference"],
             "error: relative motion (--relative) and strengths (--strength) need --mode='recompose' (the source's own shape)"),
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
        assert "1 frame reenacted in " in capsys.readouterr().out
        result, original = np.asarray(Image.open(out)), np.asarray(Image.open(photo).convert("RGB"))
        assert result.shape == original.shape
        changed = np.abs(result.astype(int) - original.astype(int)).max(-1) > 0
        assert 0.01 < changed.mean() < 0.5  # the face region changed, the rest of the photo did not


def write_video(path: Path, dark: tuple[int, ...], count: int = 4, size: int = 64) -> Path:
    """``count`` noisy frames (a scripted face each) with the ``dark`` ones black (no face)."""
    frames = np.random.RandomState(2).uniform(60, 220, (count, size, size, 3)).astype(np.uint8)
    frames[list(dark)] = 0
    with VideoWriter(path, 25) as writer:
        writer.write(frames)
    return path


class TestHonestOutcomes:
    """What a run without a face, with a broken generator, or interrupted leaves behind: an error, and no file.

    The command line gets the scripted detector (dark images have no face) in place of a real backend."""

    @pytest.fixture
    def run(self, folder, monkeypatch, capsys):
        monkeypatch.setattr("pasl.align.make_detector", lambda *args, **kwargs: ScriptedDetector())

        def run(source: Path, driving: Path, out: Path, *flags: str) -> tuple[int, str, str]:
            code = cli(["reenact", "--source", str(source), "--driving", str(driving), "--out", str(out),
                        "--weights-dir", str(folder), *flags])
            captured = capsys.readouterr()
            return code, captured.out, captured.err

        return run

    @staticmethod
    def leftovers(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name)

    def test_faceless_still_driver_is_an_error_naming_the_file(self, run, tmp_path):
        source = write_image(tmp_path / "s.png", 128, 128)
        dark = write_image(tmp_path / "dark.png", 64, 64, value=0)
        code, out, err = run(source, dark, tmp_path / "new" / "o.png")
        assert code == 2 and out == ""
        assert err.startswith(f"error: --driving {dark}: no face found in the driving image, so nothing was reenacted")
        assert "--driver-is-crop" in err and err.count("\n") == 1
        assert not (tmp_path / "new").exists() and self.leftovers(tmp_path) == []

    def test_the_aligner_warning_is_left_to_the_summary(self, run, tmp_path, caplog):
        """One line on failure, a clean bar on success: the per-chunk "no face" warning is not logged (unless -v)."""
        source, dark = write_image(tmp_path / "s.png", 128, 128), write_image(tmp_path / "dark.png", 64, 64, value=0)
        with caplog.at_level(logging.WARNING):
            assert run(source, dark, tmp_path / "o.png")[0] == 2
        assert [r for r in caplog.records if r.name.startswith("pasl.align")] == []
        assert logging.getLogger("pasl.align").level == logging.NOTSET  # restored for the library's callers

    def test_ctrl_c_is_one_line_and_status_130(self, run, tmp_path, monkeypatch):
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr("pasl.files.reenact_files", interrupted)
        code, out, err = run(write_image(tmp_path / "s.png", 128, 128), write_image(tmp_path / "d.png", 64, 64), tmp_path / "o.png")
        assert (code, out, err) == (130, "", "error: interrupted (no output was kept)\n")

    def test_faceless_source_says_it_is_the_source(self, run, tmp_path):
        dark = write_image(tmp_path / "dark.png", 64, 64, value=0)
        code, out, err = run(dark, write_image(tmp_path / "d.png", 64, 64), tmp_path / "o.png")
        assert code == 2 and err.startswith(f"error: --source {dark}: no face found in the source image")
        assert "--source-is-crop" in err and "--backend dlib" in err and err.count("\n") == 1
        assert not (tmp_path / "o.png").exists()

    def test_faceless_video_leaves_no_file(self, run, tmp_path):
        driving = write_video(tmp_path / "dark.mp4", dark=(0, 1, 2, 3))
        code, out, err = run(write_image(tmp_path / "s.png", 128, 128), driving, tmp_path / "out" / "o.mp4", "--chunk-size", "2")
        assert code == 2 and err == (f"error: --driving {driving}: no face found in any of its 4 frames, so nothing was reenacted "
                                     f"(backend 'scripted', --select largest); check that it shows a human face not much smaller "
                                     "than ~40 px, try --backend dlib (it finds more large-pose faces than dlib-hog), or give "
                                     "--driver-is-crop if it is already an aligned face crop\n")
        assert not (tmp_path / "out").exists() and self.leftovers(tmp_path) == []

    def test_video_with_some_faceless_frames_lists_them(self, run, tmp_path):
        driving = write_video(tmp_path / "d.mp4", dark=(1, 2))
        code, out, err = run(write_image(tmp_path / "s.png", 128, 128), driving, tmp_path / "o.mp4", "--chunk-size", "3")
        assert code == 0 and err == ""  # stderr is not a terminal: no bar, no stage lines
        lines = out.splitlines()
        assert lines[0] == "no face in frames 1, 2 (passed through unchanged)"
        assert lines[-1].startswith("2 of 4 frames reenacted in ") and lines[-1].endswith(f"-> {tmp_path / 'o.mp4'}")
        assert probe(tmp_path / "o.mp4").frames == 4 and self.leftovers(tmp_path) == []

    def test_folder_passes_faceless_images_and_fails_only_when_none_has_a_face(self, run, tmp_path):
        source = write_image(tmp_path / "s.png", 128, 128)
        drivers = tmp_path / "drivers"
        drivers.mkdir()
        write_image(drivers / "a.png", 64, 64, value=0)
        write_image(drivers / "b.png", 64, 64, value=0)
        code, out, err = run(source, drivers, tmp_path / "out")
        assert code == 2 and err.startswith(f"error: --driving {drivers}: no face found in any of its 2 images")
        assert not (tmp_path / "out").exists()
        write_image(drivers / "c.png", 64, 64)
        code, out, err = run(source, drivers, tmp_path / "out")
        assert code == 0 and "no face in frames 0, 1 (passed through unchanged)" in out
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]

    def test_library_raises_no_face_for_a_still_driver(self, reenactor, tmp_path):
        dark = write_image(tmp_path / "dark.png", 64, 64, value=0)
        with pytest.raises(NoFaceError, match="no face found in the driving image"):
            reenact_files(reenactor, write_image(tmp_path / "s.png", 128, 128), dark, tmp_path / "o.png")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dark.png", "s.png"]

    def test_non_finite_generator_output_is_an_error_and_no_file(self, run, tmp_path, monkeypatch):
        from pasl.aeg import Generator

        monkeypatch.setattr(Generator, "forward", lambda self, depth, landmarks, style: torch.full_like(depth, float("nan")))
        code, out, err = run(write_image(tmp_path / "s.png", 128, 128), write_image(tmp_path / "d.png", 64, 64), tmp_path / "o.png")
        assert code == 2 and err == ("error: the generator produced non-finite pixels (NaN or inf) in frame 0 running in float32; "
                                     "try --precision fp32 and check the AEG checkpoint\n")
        assert not (tmp_path / "o.png").exists() and self.leftovers(tmp_path) == []

    def test_interrupt_removes_the_partial_video(self, reenactor, tmp_path):
        driving = write_video(tmp_path / "d.mp4", dark=())

        def interrupt(done: int, total: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            reenact_files(reenactor, write_image(tmp_path / "s.png", 128, 128), driving, tmp_path / "o.mp4", chunk_size=2,
                          progress=interrupt)
        assert not (tmp_path / "o.mp4").exists() and self.leftovers(tmp_path) == []

    def test_a_decoding_error_in_the_read_ahead_thread_reaches_the_caller(self, reenactor, tmp_path, monkeypatch):
        import threading

        from pasl.errors import VideoError

        driving = write_video(tmp_path / "d.mp4", dark=())
        real = iter_frame_chunks

        def broken(path, chunk_size, **kwargs):
            chunks = real(path, chunk_size, **kwargs)
            yield next(chunks)
            raise VideoError(f"{path}: decoding failed after {chunk_size} frames")

        monkeypatch.setattr("pasl.files.iter_frame_chunks", broken)
        before = threading.active_count()
        with pytest.raises(VideoError, match="decoding failed"):
            reenact_files(reenactor, write_image(tmp_path / "s.png", 128, 128), driving, tmp_path / "o.mp4", chunk_size=2)
        assert not (tmp_path / "o.mp4").exists() and self.leftovers(tmp_path) == []
        assert threading.active_count() <= before  # both I/O threads have ended

    def test_forced_progress_bar_and_the_final_line(self, run, tmp_path):
        drivers = tmp_path / "drivers"
        drivers.mkdir()
        write_image(drivers / "a.png", 64, 64)
        write_image(drivers / "b.png", 64, 64)
        code, out, err = run(write_image(tmp_path / "s.png", 128, 128), drivers, tmp_path / "out", "--progress")
        assert code == 0
        assert "loading models (cpu, fp32) ..." in err and "encoding source ..." in err
        assert "reenacting: 100%" in err and "2/2" in err and "frame" in err  # tqdm's bar, with its rate
        assert re.search(r"2/2 \[\d\d:\d\d<\d\d:\d\d", err)  # elapsed < ETA
        assert re.fullmatch(r"2 frames reenacted in \d+\.\d s \(\d+\.\d+ frames/s; backend scripted, cpu fp32\) -> "
                            + re.escape(str(tmp_path / "out")) + "\n", out)

    def test_photo_stage_lines_only_when_asked(self, run, tmp_path):
        source, driving = write_image(tmp_path / "s.png", 128, 128), write_image(tmp_path / "d.png", 64, 64)
        code, out, err = run(source, driving, tmp_path / "o.png", "--progress")
        assert code == 0 and err.splitlines() == ["loading models (cpu, fp32) ...", "encoding source ...", "reenacting ..."]
        assert out.startswith("1 frame reenacted in ")
        code, out, err = run(source, driving, tmp_path / "o.png", "--no-progress")
        assert code == 0 and err == ""


def test_real_profile_photo_as_driver_is_an_error(folder, tmp_path, capsys):
    """The user's case: a profile photo (dlib's frontal detector finds no face, manifest ``faces: 0``) used to exit 0
    and write the driver unchanged."""
    photos = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "photos"
    pytest.importorskip("dlib")
    if not (photos / "skimage_camera.png").exists():
        skip_or_fail("../shared/assets is not available")
    out = tmp_path / "out.png"
    code = cli(["reenact", "--source", str(photos / "facerec_obama.jpg"), "--driving", str(photos / "skimage_camera.png"),
                "--out", str(out), "--weights-dir", str(folder), "--backend", "dlib-hog"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --driving {photos / 'skimage_camera.png'}: no face found in the driving image")
    assert not out.exists() and list(tmp_path.iterdir()) == []


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
    assert "1 frame reenacted in " in capsys.readouterr().out
