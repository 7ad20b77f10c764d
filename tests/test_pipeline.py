"""The whole pipeline on synthetic weights: images, chunks, faceless frames, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pasl.align.types import Face
from pasl.errors import MissingWeightError, NoFaceError, NonFiniteError
from pasl.models import load_models
from pasl.pipeline import ReenactOptions, Reenactor, RunSummary, frames_to_chunks
from pasl.shape import shape_codes
from pipeline_synthetic import ScriptedDetector, weights_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return weights_folder(tmp_path_factory.mktemp("pasl_weights"))


@pytest.fixture(scope="module")
def models(folder):
    return load_models([folder])


def frames(count: int, height: int = 180, width: int = 240, dark: tuple[int, ...] = ()) -> torch.Tensor:
    rng = np.random.RandomState(0)
    images = rng.uniform(0.2, 0.9, size=(count, 3, height, width)).astype(np.float32)
    for i in dark:
        images[i] = 0.0
    return torch.from_numpy(images)


@pytest.fixture(scope="module")
def reenactor(models):
    return Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0))


@pytest.fixture(scope="module")
def source(reenactor):
    return reenactor.encode_source(frames(1, 300, 300))


@pytest.fixture(scope="module")
def driver_codes(models):
    """One driving frame and its DECA codes, computed by the stages one by one (as the official TestData)."""
    from pasl.shape import detect_crop_landmarks

    detector = ScriptedDetector()
    driving = frames(1)
    alignment = Reenactor(models, detector, ReenactOptions(smoothing=0.0))._align([driving[0]], None)
    points, found = detect_crop_landmarks(detector, alignment.crops)
    with torch.inference_mode():  # the second pass's points, given as if they were the aligner's
        return driving, shape_codes(models.shape_encoder, alignment.crops, points, found, crop_landmarks="mapped")


class TestModels:
    def test_every_file_is_found_by_name(self, models, folder):
        assert models.shape_encoder is not None and models.flame is not None
        from pasl.flame_files import load_head_template

        assert torch.equal(models.faces, load_head_template(folder / "head_template.obj")) and models.missing == ()

    def test_missing_shape_files_are_named(self, tmp_path):
        with pytest.raises(MissingWeightError, match="no AEG checkpoint"):
            load_models([tmp_path])
        only_aeg = tmp_path / "only_aeg"
        only_aeg.mkdir()
        from synthetic import write_nets_ema

        write_nets_ema(only_aeg / "204000_nets_ema.ckpt")
        with pytest.raises(MissingWeightError) as info:
            load_models([only_aeg])
        message = str(info.value)
        assert "deca_model.tar" in message and "generic_model.pkl" in message and "head_template.obj" in message
        partial = load_models([only_aeg], require_shape_stage=False)
        assert partial.shape_encoder is None and set(partial.missing) == {"deca", "flame", "head_template"}


class TestReenact:
    def test_source_is_encoded_once(self, source):
        assert source.style.shape == (1, 128) and source.crop.shape == (1, 3, 256, 256)
        assert source.shape.batch_size == 1

    def test_frames_come_back_pasted_at_their_size(self, reenactor, source):
        driving = frames(3)
        result = reenactor.reenact(source, driving)
        assert result.faces.shape == (3, 3, 256, 256) and result.frames.shape == (3, 3, 180, 240)
        assert result.masks.shape == (3, 1, 180, 240)
        assert bool(result.has_face.all()) and result.faceless_frames == []
        # the maps show a head: depth has a foreground, the landmark drawing has white lines
        assert (result.depth[:, 0] > 0).float().mean() > 0.05
        assert set(result.landmarks.unique().tolist()) == {0.0, 1.0}
        # pasted inside the mask, untouched where the mask is 0
        outside = result.masks[:, 0] == 0
        assert torch.equal(result.frames.permute(1, 0, 2, 3)[:, outside], driving.permute(1, 0, 2, 3)[:, outside])
        assert (result.frames - driving).abs().amax() > 0.05

    def test_faceless_frames_pass_through_unchanged(self, reenactor, source):
        driving = frames(4, dark=(1, 3))
        result = reenactor.reenact(source, driving, first_frame=10)
        assert result.has_face.tolist() == [True, False, True, False]
        assert result.faceless_frames == [11, 13]
        assert torch.equal(result.frames[1], driving[1]) and torch.equal(result.frames[3], driving[3])
        assert result.masks[1].abs().max() == 0

    def test_a_whole_faceless_chunk_passes_through(self, reenactor, source):
        driving = frames(2, dark=(0, 1))
        result = reenactor.reenact(source, driving)
        assert not result.has_face.any() and torch.equal(result.frames, driving)

    def test_stream_equals_one_batch_and_reports(self, reenactor, source):
        driving = frames(5, dark=(2,))
        whole = reenactor.reenact(source, driving)
        summary = RunSummary()
        seen = []
        parts = list(reenactor.reenact_stream(source, frames_to_chunks(driving, 2), progress=seen.append, summary=summary))
        assert [p.first_frame for p in parts] == [0, 2, 4] and seen == [2, 4, 5]
        torch.testing.assert_close(torch.cat([p.faces for p in parts]), whole.faces, atol=1e-4, rtol=0)  # batch-size numerics
        assert summary.faceless == [2] and "4 of 5 frames reenacted; no face in frame 2 (passed" in summary.text()

    def test_stream_without_any_face_is_an_error(self, reenactor, source):
        with pytest.raises(NoFaceError, match="no face in any of the 3 driving frames"):
            list(reenactor.reenact_stream(source, frames_to_chunks(frames(3, dark=(0, 1, 2)), 2)))

    @pytest.mark.parametrize(
        ("mode", "from_source"),
        [("recompose", {"shape", "tex", "light"}), ("reference", set()), ("shape_only", {"shape"})],
    )
    def test_modes_take_each_code_from_the_source_or_the_driver(self, models, source, driver_codes, mode, from_source):
        """The maps equal those of codes assembled by hand, field by field, from the source's codes and the
        driver's (DECA run on the driver's aligned crop by the stages themselves)."""
        from pasl.shape import render_conditioning

        driving, driver = driver_codes
        r = Reenactor(models, ScriptedDetector(), ReenactOptions(mode=mode, smoothing=0.0, paste_back=False))
        result = r.reenact(source, driving)
        assert result.frames is None
        assert not torch.equal(source.shape.codes.shape, driver.codes.shape)  # the choice is visible
        picked = {name: (source.shape.codes if name in from_source else driver.codes)[name] for name in driver.codes.keys()}
        with torch.inference_mode():
            depth, landmarks = render_conditioning(models.flame, models.faces, driver.with_codes(driver.codes.replace(**picked)))
            driver_depth, _ = render_conditioning(models.flame, models.faces, driver)
        assert torch.equal(result.depth, depth) and torch.equal(result.landmarks, landmarks)
        assert torch.equal(depth, driver_depth) == (mode == "reference")  # the source's shape shows in the maps

    def test_cycle_report_and_refinement_options(self, models, source):
        r = Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0, cycle_check=True, refine_steps=1))
        result = r.reenact(source, frames(2))
        assert result.cycle is not None and result.cycle.shape_mm.shape == (2,)
        assert torch.isfinite(result.cycle.pose_deg).all()

    def test_mixed_frame_sizes_without_paste_back(self, models, source):
        r = Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0, paste_back=False))
        result = r.reenact(source, [frames(1, 100, 80)[0], frames(1, 300, 500)[0]])
        assert result.faces.shape == (2, 3, 256, 256)


class TwoFaces(ScriptedDetector):
    """The scripted face plus a smaller one in the top-left corner: two faces in every frame."""

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = super().detect(image)
        if faces:
            small = Face(box=faces[0].box * 0.3, score=2.0, landmarks=faces[0].landmarks * 0.3)
            faces = [small, faces[0]]  # the small one first: "score" would pick it, "largest" must not
        return faces


class TestHonestOutcomes:
    def test_non_finite_faces_are_an_error_naming_the_frames(self, models, source, monkeypatch):
        """A generator that returns NaN (fp16 overflow, a damaged checkpoint) must stop the run, not be pasted."""
        generator = models.aeg.generator
        monkeypatch.setattr(generator, "forward", lambda depth, landmarks, style: torch.full_like(depth, float("nan")))
        r = Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0))
        with pytest.raises(NonFiniteError) as caught:
            r.reenact(source, frames(3, dark=(1,)), first_frame=10)
        message = str(caught.value)
        assert message.startswith("the generator produced non-finite pixels (NaN or inf) in frames 10, 12 running in float32")
        assert "--precision fp32" in message and "\n" not in message

    def test_inf_in_one_frame_is_caught_too(self, models, source, monkeypatch):
        real = models.aeg.generator.forward

        def one_bad(depth, landmarks, style):
            out = real(depth, landmarks, style).clone()
            out[-1, 0, 5, 5] = float("inf")
            return out

        monkeypatch.setattr(models.aeg.generator, "forward", one_bad)
        r = Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0, batch_size=8))
        with pytest.raises(NonFiniteError, match=r"in frame 1 running"):
            r.reenact(source, frames(2))

    def test_summary_grammar(self):
        assert RunSummary(frames=1).text() == "1 frame reenacted"
        assert RunSummary(frames=12).text() == "12 frames reenacted"
        assert RunSummary(frames=12, faceless=[3]).text() == "11 of 12 frames reenacted; no face in frame 3 (passed through unchanged)"
        assert RunSummary(frames=3, faceless=[0, 2]).notes() == ["no face in frames 0, 2 (passed through unchanged)"]

    def test_several_faces_say_how_many_and_which_was_used(self, models):
        r = Reenactor(models, TwoFaces(), ReenactOptions(smoothing=0.0))
        face = r.encode_source(frames(1, 300, 300))
        summary = RunSummary()
        list(r.reenact_stream(face, [frames(1)], summary=summary))
        assert summary.notes() == ["source: 2 faces, used the largest", "driver: 2 faces in frame 0, used the largest"]
        assert summary.text() == "1 frame reenacted; source: 2 faces, used the largest; driver: 2 faces in frame 0, used the largest"
        summary = RunSummary()
        list(r.reenact_stream(face, frames_to_chunks(frames(4, dark=(2,)), 2), summary=summary))
        assert "driver: several faces (up to 2) in frames 0, 1, 3, used the largest" in summary.notes()
        index = Reenactor(models, TwoFaces(), ReenactOptions(smoothing=0.0, select=0))
        summary = RunSummary()
        list(index.reenact_stream(index.encode_source(frames(1, 300, 300)), [frames(1)], summary=summary))
        assert "driver: 2 faces in frame 0, used face 0 counted from the image's left" in summary.notes()

    def test_one_face_is_not_mentioned(self, reenactor, source):
        summary = RunSummary()
        list(reenactor.reenact_stream(source, [frames(2)], summary=summary))
        assert summary.source_faces == 1 and summary.notes() == [] and summary.text() == "2 frames reenacted"


@pytest.fixture(scope="module")
def scored(folder, pae_folder):
    """A 4-frame stream (frame 1 faceless) in chunks of 3, scored with the six PAE networks."""
    models = load_models([folder, pae_folder], identity="auto")
    reenactor = Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0, identity_score=True))
    source = reenactor.encode_source(frames(1, 300, 300))
    summary = RunSummary()
    chunks = list(reenactor.reenact_stream(source, frames_to_chunks(frames(4, dark=(1,)), 3), summary=summary))
    return models, source, chunks, summary


class TestIdentityScore:
    def test_every_face_is_scored_against_the_source(self, scored):
        models, source, chunks, summary = scored
        assert source.identity is not None and sorted(source.identity.embeddings) == ["FF", "FP", "FS", "PP", "SP", "SS"]
        csim = torch.cat([c.identity.csim for c in chunks])
        assert torch.isnan(csim[1]) and not torch.isnan(csim[[0, 2, 3]]).any()
        assert summary.csim == pytest.approx(csim[[0, 2, 3]].tolist())
        assert f"identity (PAE-CSIM to the source) mean {float(csim[[0, 2, 3]].mean()):.4f}" in summary.text()
        with torch.inference_mode():
            direct, _ = models.pae.similarity(source.crop, chunks[0].faces[:1].to(models.device), source.identity.yaw,
                                              chunks[0].identity.yaw[:1])
        assert float(chunks[0].identity.csim[0]) == pytest.approx(float(direct[0]), abs=1e-5)

    def test_asking_without_encoders_names_the_files(self, models):
        with pytest.raises(MissingWeightError, match="PAE networks"):
            Reenactor(models, ScriptedDetector(), ReenactOptions(identity_score=True))


def test_explicit_flame_file_finds_its_landmark_embedding_by_name(folder):
    models = load_models([folder], flame=folder / "generic_model.pkl")
    assert models.flame is not None and models.missing == ()


class TestOptionValidation:
    """Every ReenactOptions field is checked at construction, one sentence naming the field."""

    @pytest.mark.parametrize(
        "field,value,message",
        [
            ("mode", "swap", "mode must be one of recompose"),
            ("mask_kind", "oval", "mask_kind must be one of landmarks, crop"),
            ("select", "biggest", "select must be one of largest, central, score, all or a face index"),
            ("select", True, "select must be one of"),
            ("smoothing", -0.5, r"smoothing must be a number in \[0, 10\]"),
            ("smoothing", float("nan"), "smoothing must be a number"),
            ("color_match", 1.5, r"color_match must be a number in \[0, 1\]"),
            ("batch_size", 0, "batch_size must be a whole number >= 1"),
            ("batch_size", 2.5, "batch_size must be a whole number >= 1"),
            ("refine_steps", -1, "refine_steps must be a whole number >= 0"),
            ("paste_back", "yes", "paste_back must be True or False"),
            ("flatten", 1, "flatten must be True or False"),
            ("erode", 1.0, "erode must be a fraction"),
            ("blur", 3.0, "blur must be a fraction"),
            ("forehead", -0.1, "forehead must be a fraction"),
        ],
    )
    def test_a_bad_value_is_one_sentence_naming_the_field(self, field, value, message):
        with pytest.raises(ValueError, match=message) as caught:
            ReenactOptions(**{field: value})
        assert "\n" not in str(caught.value) and field in str(caught.value)

    def test_every_default_and_preset_is_valid_and_an_index_selects(self):
        assert ReenactOptions(select=2).select == 2 and ReenactOptions(select=-1).select == -1
        for name in ("paper", "official-demo", "official-test"):
            ReenactOptions.preset(name)


class TestOfficialPaths:
    def test_preset_names_match_the_command_line(self):
        from pasl.__main__ import PRESET_NAMES
        from pasl.pipeline import PRESETS

        assert PRESET_NAMES == tuple(PRESETS)

    def test_presets_and_their_overrides(self):
        demo = ReenactOptions.preset("official-demo")
        assert (demo.mode, demo.source_alignment, demo.driver_alignment, demo.select) == ("reference", "resize", "align", "score")
        chosen = (demo.crop_landmarks, demo.warp, demo.output_rounding, demo.paste_back, demo.flatten)
        assert chosen == ("redetect", "cv2", "truncate", False, False)
        test = ReenactOptions.preset("official-test", batch_size=16)
        assert (test.mode, test.driver_alignment, test.flatten, test.output_rounding, test.batch_size) == (
            "recompose",
            "resize",
            True,
            "round",
            16,
        )
        assert ReenactOptions.preset("paper") == ReenactOptions()
        with pytest.raises(ValueError, match="unknown preset 'demo'"):
            ReenactOptions.preset("demo")
        with pytest.raises(ValueError, match="crop_landmarks must be one of redetect, mapped, refit, got 'both'"):
            ReenactOptions(crop_landmarks="both")

    def test_deca_crop_comes_from_the_second_landmark_pass(self, models):
        """``redetect`` boxes DECA's crop with landmarks found again on the aligned crop (the official TestData);
        ``mapped`` reuses the aligner's. The scripted detector puts a face in the middle of whatever it sees,
        so the two give different crops, and ``redetect`` equals the stages called by hand."""
        from pasl.shape import detect_crop_landmarks, render_conditioning

        detector = ScriptedDetector()
        driving = frames(1, 300, 260)
        results = {}
        for rule in ("redetect", "mapped"):
            r = Reenactor(models, detector, ReenactOptions(smoothing=0.0, paste_back=False, mode="reference", crop_landmarks=rule))
            results[rule] = r.reenact(r.encode_source(frames(1, 300, 300)), driving)
        assert float((results["redetect"].depth - results["mapped"].depth).abs().max()) > 0.1
        alignment = Reenactor(models, detector, ReenactOptions(smoothing=0.0))._align([driving[0]], None)
        points, found = detect_crop_landmarks(detector, alignment.crops)
        with torch.inference_mode():  # the second pass's points, given as if they were the aligner's
            codes = shape_codes(models.shape_encoder, alignment.crops, points, found, crop_landmarks="mapped")
            depth, landmarks = render_conditioning(models.flame, models.faces, codes)
        torch.testing.assert_close(results["redetect"].depth, depth)
        torch.testing.assert_close(results["redetect"].landmarks, landmarks)


class FollowingDetector(ScriptedDetector):
    """The scripted face, with a landmark stage of its own (like dlib's predictor); counts detector runs."""

    def __init__(self):
        super().__init__()
        self.detections = 0
        self.followed = 0

    def detect(self, image: np.ndarray) -> list[Face]:
        self.detections += 1
        return super().detect(image)

    def landmarks_in_boxes(self, image: np.ndarray, boxes) -> torch.Tensor:
        self.followed += 1
        faces = ScriptedDetector.detect(self, image)
        return torch.stack([faces[0].landmarks] * len(boxes)) if faces else torch.full((len(boxes), 68, 2), float("nan"))


class TestTracking:
    def test_options(self):
        assert ReenactOptions().tracking and ReenactOptions().detect_every == 25
        for preset in ("official-demo", "official-test"):
            assert not ReenactOptions.preset(preset).tracking
        for bad in (dict(detect_every=-1), dict(detect_every=2.5), dict(detect_every=True), dict(tracking="yes")):
            with pytest.raises(ValueError, match=f"ReenactOptions.{next(iter(bad))}"):
                ReenactOptions(**bad)

    def test_video_is_tracked_and_detected_only_when_needed(self, models, source):
        """7 frames in chunks of 2, a faceless (dark) frame 4: the detector runs on frame 0, the cut into and
        out of the dark frame, and 3 frames after the last detection; the composites equal detecting every frame."""
        driving = frames(8, dark=(4,))
        results = {}
        for tracking in (True, False):
            detector = FollowingDetector()
            options = ReenactOptions(smoothing=0.0, tracking=tracking, detect_every=3, crop_landmarks="mapped")  # no crop pass
            reenactor = Reenactor(models, detector, options)
            summary = RunSummary()
            chunks = list(reenactor.reenact_stream(source, frames_to_chunks(driving, 2), summary=summary))
            results[tracking] = (detector, chunks, summary)
        detector, chunks, summary = results[True]
        detected = torch.cat([c.detected for c in chunks]).tolist()
        assert detected == [True, False, False, True, True, True, False, False] and detector.detections == 4
        assert torch.cat([c.track_ids for c in chunks]).tolist() == [0, 0, 0, 0, -1, 0, 0, 0]
        assert "face tracking: the detector ran on 4 of 8 frames (1 track)" in summary.notes()
        assert summary.faceless == [4] and torch.equal(chunks[2].frames[0], driving[4])
        untracked, plain, plain_summary = results[False]
        assert untracked.detections == 8 and untracked.followed == 0 and plain[0].detected is None
        assert not any("face tracking" in note for note in plain_summary.notes())
        assert torch.equal(torch.cat([c.frames for c in chunks]), torch.cat([c.frames for c in plain]))

    def test_a_single_image_is_one_detection(self, models, source):
        detector = FollowingDetector()
        reenactor = Reenactor(models, detector, ReenactOptions(smoothing=0.0, crop_landmarks="mapped"))
        summary = RunSummary()
        list(reenactor.reenact_stream(source, [frames(1)], summary=summary))
        assert detector.detections == 1 and detector.followed == 0 and summary.text() == "1 frame reenacted"


class TestAllFaces:
    def test_options(self):
        assert ReenactOptions(select="all").select == "all"
        with pytest.raises(ValueError, match="select='all' pastes every face"):
            ReenactOptions(select="all", paste_back=False)
        with pytest.raises(ValueError, match="select='all' smooths each face"):
            ReenactOptions(select="all", tracking=False)
        assert ReenactOptions(select="all", tracking=False, smoothing=0.0).select == "all"

    def test_every_face_is_reenacted_and_pasted(self, models):
        """Two faces per frame (frame 1 faceless), chunks of 2: a row per face, both pasted into their frame."""
        reenactor = Reenactor(models, TwoFaces(), ReenactOptions(smoothing=0.0, select="all"))
        source = reenactor.encode_source(frames(1, 300, 300))
        driving = frames(3, dark=(1,))
        summary = RunSummary()
        chunks = list(reenactor.reenact_stream(source, frames_to_chunks(driving, 2), summary=summary))
        assert torch.cat([c.frame_index + c.first_frame for c in chunks]).tolist() == [0, 0, 1, 2, 2]
        assert torch.cat([c.has_face for c in chunks]).tolist() == [True, True, False, True, True]
        assert torch.cat([c.track_ids for c in chunks]).tolist() == [0, 1, -1, 0, 1]
        assert chunks[0].faces.shape == (3, 3, 256, 256) and chunks[0].frames.shape == (2, 3, 180, 240)
        assert torch.equal(chunks[0].frames[1], driving[1]) and chunks[0].masks[1].abs().max() == 0
        corner = (slice(0, 45), slice(0, 60))  # the small face (top left); the large one is centred
        assert chunks[0].masks[0, 0][corner].amax() > 0.5 and chunks[1].masks[0, 0][corner].amax() > 0.5
        largest = Reenactor(models, TwoFaces(), ReenactOptions(smoothing=0.0)).reenact(source, driving[:1])
        assert largest.masks[0, 0][corner].amax() == 0
        inside = largest.masks[0, 0] > 0.99  # the large face is pasted the same way in both runs
        assert torch.allclose(chunks[0].frames[0][:, inside], largest.frames[0][:, inside], atol=1e-4)  # batch numerics
        assert summary.frames == 3 and summary.faceless == [1]
        assert summary.notes() == ["no face in frame 1 (passed through unchanged)", "source: 2 faces, used the largest",
                                   "all faces: 4 faces reenacted (2 tracks)"]


class TestRelativeMotion:
    """motion='relative' and per-channel strengths in the pipeline: the wiring to pasl.edit.transfer_motion."""

    def test_options_are_checked(self):
        from pasl.edit import MotionStrengths

        with pytest.raises(ValueError, match="need ReenactOptions.mode='recompose'"):
            ReenactOptions(mode="reference", motion="relative")
        with pytest.raises(ValueError, match="need ReenactOptions.mode='recompose'"):
            ReenactOptions(mode="reference", strengths=MotionStrengths(head=0.5))
        with pytest.raises(ValueError, match="with select='all'"):
            ReenactOptions(motion="relative", select="all")
        with pytest.raises(ValueError, match="ReenactOptions.motion must be one of"):
            ReenactOptions(motion="sideways")
        assert not ReenactOptions().moves_by_channel and ReenactOptions(motion="relative").moves_by_channel

    def test_the_clips_first_face_is_the_reference_for_every_chunk(self, models, source, monkeypatch):
        import pasl.pipeline as pipeline
        from pasl.edit import MotionStrengths, transfer_motion

        seen = []
        original = pipeline.recompose_shapes

        def spy(models_, source_shape, driver, *args, **kwargs):
            seen.append((driver.codes.clone(), kwargs))
            return original(models_, source_shape, driver, *args, **kwargs)

        monkeypatch.setattr(pipeline, "recompose_shapes", spy)
        strengths = MotionStrengths(expression=0.5, camera=0.0)
        reenactor = Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0, motion="relative", strengths=strengths))
        chunks = list(reenactor.reenact_stream(source, frames_to_chunks(frames(5, dark=(0,)), 2)))
        assert [c.has_face.tolist() for c in chunks] == [[False, True], [True, True], [True]]
        first_face = seen[0][0].index(0)
        for _, kwargs in seen:
            assert kwargs["strengths"] == strengths
            assert all(torch.equal(getattr(kwargs["reference"], f), getattr(first_face, f)) for f in ("pose", "exp", "cam"))
        # and what was drawn is the library's transfer of each frame's motion onto the source
        driver, kwargs = seen[1]
        expected = transfer_motion(source.shape.codes, driver, first_face, strengths)
        out = original(models, source.shape, _with(driver), **kwargs)[0]
        assert torch.allclose(out.codes.exp, expected.exp) and torch.allclose(out.codes.pose, expected.pose, atol=1e-6)

    def test_absolute_at_full_strength_takes_the_papers_path(self, models, source, monkeypatch):
        import pasl.pipeline as pipeline

        calls = []
        original = pipeline.recompose_shapes
        monkeypatch.setattr(pipeline, "recompose_shapes", lambda *a, **k: calls.append(k) or original(*a, **k))
        Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0)).reenact(source, frames(1))
        assert calls == [{}]


def _with(codes):
    """A ShapeCodes around ``codes`` with the driver's DECA crops (any will do for the codes)."""
    from pasl.shape import ShapeCodes

    return ShapeCodes(codes, torch.eye(3).expand(codes.batch_size, 3, 3).clone())
