"""The node adapters in a small ComfyUI double (``tests/host_double``), without ComfyUI.

The pack is imported as a package the way ComfyUI 0.3.75 imports ``custom_nodes/<name>``, its
extension lists the nodes, and each node runs through ``double_execution.run_node``: a locked
class clone, ``torch.inference_mode()``, the host's progress hook and interrupt flag. Weights are
the synthetic official-format files of ``pipeline_synthetic``; the face detector is
``ScriptedDetector`` (a face in the middle of every frame that is not dark). The real host is
covered by ``test_host_comfyui.py`` (CI only); these tests run everywhere in seconds.

``tests/host_double`` is on ``sys.path`` only while this module's fixture is alive, and every
module imported from it (and the pack) is dropped afterwards.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from pae_synthetic import link_pae_files
from pipeline_synthetic import ScriptedDetector, weights_folder
from test_host_comfyui import CONTRACT

REPO = Path(__file__).resolve().parents[1]
HOST_DOUBLE = Path(__file__).resolve().parent / "host_double"
PACK = "pasl_pack"
"""Module name the pack is imported under (ComfyUI uses the folder's path)."""
OWNED = ("comfy_api", "comfy", "folder_paths", "double_execution", PACK)
"""Top-level modules this file imports from the double (or as the pack) and removes afterwards."""
CHECKPOINT = "204000_nets_ema.ckpt"
OLDER_CHECKPOINT = "older/100000_nets_ema.ckpt"
HEIGHT, WIDTH = 180, 240
DARK = 1
"""Index of the faceless (black) driving frame."""


@dataclass
class Host:
    nodes: dict
    base: Path
    pack: ModuleType
    io: ModuleType
    run: object
    validate: object
    fingerprint: object
    mm: ModuleType
    utils: ModuleType
    folder_paths: ModuleType
    backends: list
    detector: CountingDetector
    real_detector: object = None
    """The pack's own ``host.detector`` (the nodes see the scripted one)."""

    def node(self, node_id: str):
        return self.nodes[node_id]

    def pack_module(self, name: str) -> ModuleType:
        return sys.modules[f"{PACK}.{name}"]


class CountingDetector(ScriptedDetector):
    """``ScriptedDetector`` that counts the frames it was shown."""

    calls = 0

    def detect(self, image: np.ndarray):
        self.calls += 1
        return super().detect(image)


def _owned(name: str) -> bool:
    return name.split(".")[0] in OWNED


@pytest.fixture(scope="module")
def host(tmp_path_factory, pae_folder) -> Host:
    base = tmp_path_factory.mktemp("comfy_base")
    models_dir = base / "models"
    weights_folder(models_dir / "pasl")
    link_pae_files(pae_folder, models_dir / "pasl")
    (models_dir / "pasl" / "older").mkdir()
    (models_dir / "pasl" / "older" / "100000_nets_ema.ckpt").write_bytes(b"listed by name only")
    (models_dir / "pasl" / "notes.txt").write_text("not a weight file")

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _owned(name)}
    sys.path.insert(0, str(HOST_DOUBLE))
    try:
        import comfy.model_management as mm
        import comfy.utils
        import double_execution
        import folder_paths
        from comfy_api.v0_0_2 import io

        folder_paths.models_dir = str(models_dir)
        nodes = double_execution.load_custom_node(REPO, PACK)
        backends: list[str] = []
        scripted = CountingDetector()

        def detector(backend: str, load: bool = True):
            backends.append(backend)
            return scripted

        real_detector = sys.modules[f"{PACK}.nodes.host"].detector
        with pytest.MonkeyPatch.context() as patch:
            for module in ("align", "reenact", "animate", "metrics", "host"):  # host.crop_detector serves Shape Recompose, Edit and Encode
                patch.setattr(sys.modules[f"{PACK}.nodes.{module}"], "detector", detector)
            yield Host(nodes, base, sys.modules[PACK], io, double_execution.run_node, double_execution.validate,
                       double_execution.fingerprint, mm, comfy.utils, folder_paths, backends, scripted, real_detector)
    finally:
        sys.path.remove(str(HOST_DOUBLE))
        for name in [n for n in sys.modules if _owned(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _frames(count: int, height: int = HEIGHT, width: int = WIDTH, dark: tuple[int, ...] = (), seed: int = 0) -> torch.Tensor:
    """ComfyUI IMAGE ``[B, H, W, 3]`` float32: noise in [0.2, 0.9], frames in ``dark`` black."""
    images = np.random.RandomState(seed).uniform(0.2, 0.9, size=(count, height, width, 3)).astype(np.float32)
    images[list(dark)] = 0.0
    return torch.from_numpy(images)


def _align_inputs(images: torch.Tensor, **options) -> dict:
    return {"images": images, "backend": "auto", "select": "largest", "mode": "align", "smoothing": 0.0, "lock_scale": False} | options


@pytest.fixture(scope="module")
def models(host):
    return host.run(host.node("PASLLoadModels"), aeg_checkpoint=CHECKPOINT, deca_model="deca_model.tar",
                    flame_model="generic_model.pkl", identity_encoders="auto", device="auto", precision="auto")


@pytest.fixture(scope="module")
def driving() -> torch.Tensor:
    return _frames(3, dark=(DARK,))


@pytest.fixture(scope="module")
def aligned(host, driving):
    return host.run(host.node("PASLFaceAlign"), **_align_inputs(driving))


@pytest.fixture(scope="module")
def source_aligned(host):
    return host.run(host.node("PASLFaceAlign"), **_align_inputs(_frames(1, 300, 300, seed=1)))


@pytest.fixture(scope="module")
def style(host, models, source_aligned):
    return host.run(host.node("PASLEncodeStyle"), models=models[0], source=source_aligned[0], source_align=source_aligned[1])


@pytest.fixture(scope="module")
def scored(host, models, style, generated, aligned):
    return host.run(host.node("PASLIdentityScore"), models=models[0], identity=style[1], faces=generated[0], protocol="fixed",
                    align=aligned[1])


@pytest.fixture(scope="module")
def shapes(host, models, source_aligned, aligned):
    return host.run(host.node("PASLShapeRecompose"), models=models[0], source_align=source_aligned[1], driver_align=aligned[1],
                    mode="recompose", cycle_check=False, refine_steps=0)


@pytest.fixture(scope="module")
def maps(host, models, shapes):
    return host.run(host.node("PASLShapeRender"), models=models[0], shape=shapes[0], flatten=False)


@pytest.fixture(scope="module")
def generated(host, models, style, maps):
    return host.run(host.node("PASLGenerate"), models=models[0], style=style[0], depth=maps[0], landmarks=maps[1], batch_size=2)


def _paste_inputs(faces: torch.Tensor, aligned, driving: torch.Tensor) -> dict:
    return {"faces": faces, "align": aligned[1], "frames": driving, "mask_kind": "landmarks", "erode": 0.05, "blur": 0.1,
            "color_match": 0.0}


@pytest.fixture(scope="module")
def pasted(host, generated, aligned, driving):
    return host.run(host.node("PASLPasteBack"), **_paste_inputs(generated[0], aligned, driving))


@pytest.fixture(scope="module")
def reenacted(host, models, driving):
    return host.run(host.node("PASLReenact"), models=models[0], source=_frames(1, 300, 300, seed=1), driving=driving,
                    mode="recompose", backend="auto", smoothing=0.0, lock_scale=False, paste_back=True, color_match=0.0,
                    source_is_crop=False)


def _library_models(models):
    """The pack's own ``PASLModels`` behind the ``PASL_MODEL`` socket."""
    return models[0].load()


# ----------------------------------------------------------------------------------------- registration
class TestRegistration:
    def test_extension_returns_every_node_from_the_package(self, host):
        assert sorted(host.nodes) == sorted(CONTRACT)
        for node_id, cls in host.nodes.items():
            assert issubclass(cls, host.io.ComfyNode), node_id
            assert cls.__module__.startswith(f"{PACK}.nodes."), cls.__module__  # imported relative to the package
        assert sys.modules[f"{PACK}.nodes.host"].folder_paths is host.folder_paths  # the double, not a real host

    @pytest.mark.parametrize("node_id", sorted(CONTRACT))
    def test_schema_names_and_output_types(self, host, node_id):
        display_name, outputs = CONTRACT[node_id]
        schema = host.node(node_id).define_schema()
        assert schema.node_id == node_id
        assert schema.display_name == display_name
        assert [o.get_io_type() for o in schema.outputs] == outputs
        assert schema.category.startswith("PASL") and len(schema.description) > 20

    @pytest.mark.parametrize("node_id", sorted(CONTRACT))
    def test_every_input_has_a_tooltip(self, host, node_id):
        """The frontend shows an input's tooltip on hover: the only help a user sees without the README."""
        inputs = host.node(node_id).define_schema().inputs
        missing = [item.id for item in inputs if len((item.tooltip or "").strip()) < 10]
        assert inputs and not missing, f"{node_id}: inputs without a tooltip: {missing}"


# ----------------------------------------------------------------------------------------- Load Models
def _combo(host, node_id: str, name: str):
    (item,) = [i for i in host.node(node_id).define_schema().inputs if i.id == name]
    return item


class TestLoadModels:
    def test_model_folder_is_registered_before_the_pack_weights(self, host):
        assert host.folder_paths.get_folder_paths("pasl") == [str(host.base / "models" / "pasl"), str(REPO / "weights")]

    def test_combos_list_only_their_files(self, host):
        assert _combo(host, "PASLLoadModels", "aeg_checkpoint").options == [CHECKPOINT, OLDER_CHECKPOINT]
        assert _combo(host, "PASLLoadModels", "deca_model").options == ["deca_model.tar"]
        assert _combo(host, "PASLLoadModels", "flame_model").options == ["generic_model.pkl"]
        assert _combo(host, "PASLLoadModels", "device").options == ["auto", "cpu", "cuda", "mps"]
        assert _combo(host, "PASLLoadModels", "precision").default == "auto"
        assert _combo(host, "PASLLoadModels", "identity_encoders").options == ["auto", "none"]  # no ArcFace file here

    def test_unknown_checkpoint_is_rejected_naming_it(self, host):
        loader = host.node("PASLLoadModels")
        widgets = {"aeg_checkpoint": "not_there_nets_ema.ckpt", "deca_model": "deca_model.tar", "flame_model": "generic_model.pkl",
                   "identity_encoders": "auto", "device": "auto", "precision": "auto"}
        errors = host.validate(loader, widgets)
        assert {e["type"] for e in errors} == {"custom_validation_failed"}
        assert [e["details"].split(" - ", 1)[0] for e in errors] == list(widgets)  # the host repeats it per input
        (message,) = {e["details"].split(" - ", 1)[1] for e in errors}
        assert "not_there_nets_ema.ckpt" in message and "drive.google.com" in message
        assert host.validate(loader, widgets | {"aeg_checkpoint": CHECKPOINT}) == []
        deca = host.validate(loader, widgets | {"aeg_checkpoint": CHECKPOINT, "deca_model": "other_deca.tar"})
        assert deca and all("'other_deca.tar' is not in models/pasl" in e["details"] for e in deca)
        arcface = host.validate(loader, widgets | {"aeg_checkpoint": CHECKPOINT, "identity_encoders": "backbone_ir50_ms1m_epoch63.pth"})
        assert arcface and all("'backbone_ir50_ms1m_epoch63.pth' is not in models/pasl" in e["details"] for e in arcface)
        without = {k: v for k, v in widgets.items() if k != "identity_encoders"} | {"aeg_checkpoint": CHECKPOINT}
        assert host.validate(loader, without) == []  # optional: workflows saved before it existed still run

    def test_fingerprint_changes_with_the_file(self, host):
        inputs = {"aeg_checkpoint": CHECKPOINT, "deca_model": "deca_model.tar", "flame_model": "generic_model.pkl",
                  "device": "auto", "precision": "auto"}
        loader = host.node("PASLLoadModels")
        before = host.fingerprint(loader, **inputs)
        assert before == host.fingerprint(loader, **inputs)
        path = host.base / "models" / "pasl" / CHECKPOINT
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
        assert host.fingerprint(loader, **inputs) != before

    def test_loads_every_network_on_the_cpu_in_fp32(self, host, models):
        managed = models[0]
        assert managed.dtype == torch.float32
        assert managed.patcher.load_device == torch.device("cpu") and managed.patcher.offload_device == torch.device("cpu")
        loaded = managed.load()
        assert loaded.aeg is not None and loaded.shape_encoder is not None and loaded.flame is not None
        assert loaded.pae is not None and sorted(loaded.pae.networks) == ["FF", "FP", "FS", "PP", "SP", "SS"]
        assert managed.patcher.model["pae"] is loaded.pae  # under the memory manager with the others
        assert managed.patcher in host.mm.current_loaded_models

    def test_identity_encoders_can_be_switched_off(self, host):
        run = host.run(host.node("PASLLoadModels"), aeg_checkpoint=CHECKPOINT, deca_model="deca_model.tar",
                       flame_model="generic_model.pkl", identity_encoders="none", device="auto", precision="auto")
        assert run[0].load().pae is None and "pae" not in run[0].patcher.model


# ----------------------------------------------------------------------------------------- Face Align
class TestFaceAlign:
    def test_dark_frame_is_flagged_and_crops_are_images(self, host, aligned):
        crops, alignment, report = aligned.outputs
        assert crops.shape == (3, 256, 256, 3) and crops.dtype == torch.float32
        assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
        assert alignment.has_face.tolist() == [True, False, True]
        assert "no face in frame 1" in report
        assert float(crops[DARK].max()) == 0.0  # the black frame, letterboxed
        assert "auto" in host.backends

    def test_faceless_batch_raises_no_face_error(self, host):
        no_face_error = host.pack_module("pasl.errors").NoFaceError
        with pytest.raises(no_face_error, match="no face in any of the 2 images"):
            host.run(host.node("PASLFaceAlign"), **_align_inputs(torch.zeros(2, 64, 80, 3)))


# ----------------------------------------------------------------------------------------- Encode
class TestEncode:
    def test_one_128_code_per_face_equal_to_the_library(self, host, models, style, source_aligned, aligned):
        assert style[0].shape == (1, 128) and style[0].dtype == torch.float32
        with torch.inference_mode():
            expected = _library_models(models).aeg.style_encoder(source_aligned[0].movedim(-1, 1))
        torch.testing.assert_close(style[0], expected, rtol=1e-5, atol=1e-5)

    def test_a_batch_of_rgba_faces_gives_one_rgb_code_each(self, host, models, style, source_aligned, aligned):
        faces = torch.cat([source_aligned[0], aligned[0][:1]])
        run = host.run(host.node("PASLEncodeStyle"), models=models[0], source=torch.cat([faces, torch.ones(2, 256, 256, 1)], dim=-1))
        assert run[0].shape == (2, 128) and run.progress == [(1, 3), (2, 3), (3, 3)]
        assert run[1].yaw.shape == (2,) and run[2].count("face ") == 2
        torch.testing.assert_close(run[0][:1], style[0], rtol=1e-5, atol=1e-5)  # alpha dropped, batch of one code each


    def test_identity_and_pose_bin_of_the_source(self, host, models, style, source_aligned):
        _, identity, pose = style.outputs
        library, shape = host.pack_module("pasl.identity"), host.pack_module("pasl.shape")
        crops, alignment = source_aligned[0].movedim(-1, 1), source_aligned[1]
        loaded = _library_models(models)
        with torch.inference_mode():  # the source read as Shape Recompose and the pipeline read it (the paper default, refit)
            codes = shape.shape_codes(loaded.shape_encoder, crops, alignment.landmarks_crop, alignment.has_face,
                                      crop_landmarks="refit", detector=host.pack_module("nodes.host").crop_detector(alignment))
            expected = library.encode_identity(loaded, crops, codes)
        assert sorted(identity.embeddings) == ["FF", "FP", "FS", "PP", "SP", "SS"]
        for kind, embedding in identity.embeddings.items():
            assert embedding.shape == (1, 512)
            torch.testing.assert_close(embedding, expected.embeddings[kind], rtol=1e-5, atol=1e-4)
        (yaw,) = identity.yaw.tolist()
        assert pose == f"face 0: {'F' if abs(yaw) <= 30 else 'S' if abs(yaw) < 60 else 'P'} (yaw {yaw:+.1f})"

    def test_without_identity_encoders_the_outputs_say_so(self, host, source_aligned):
        models = host.run(host.node("PASLLoadModels"), aeg_checkpoint=CHECKPOINT, deca_model="deca_model.tar",
                          flame_model="generic_model.pkl", identity_encoders="none", device="auto", precision="auto")
        run = host.run(host.node("PASLEncodeStyle"), models=models[0], source=source_aligned[0])
        assert run[1] is None and run[2].startswith("face 0: ")  # the pose bin needs DECA only


# ----------------------------------------------------------------------------------------- Identity Score
class TestIdentityScore:
    def test_scores_generated_faces_and_skips_the_faceless_frame(self, scored):
        mean, report = scored.outputs
        assert -1.0 <= mean <= 1.0
        assert "over 2 of 3 faces" in report and f"face {DARK}: no face, skipped" in report
        assert scored.progress[-1] == (3, 3)

    def test_equals_the_library_score(self, host, models, style, generated, scored):
        library = host.pack_module("pasl.identity")
        with torch.inference_mode():
            expected = library.score_identity(_library_models(models), style[1], generated[0].movedim(-1, 1))
        assert scored[0] == pytest.approx(expected.mean, abs=1e-5)  # the black faceless face is skipped either way

    def test_an_empty_identity_is_explained(self, host, models, generated):
        with pytest.raises(ValueError, match="identity input is empty"):
            host.run(host.node("PASLIdentityScore"), models=models[0], identity=None, faces=generated[0], protocol="fixed")


# ----------------------------------------------------------------------------------------- Metrics
class TestMetrics:
    def test_equals_the_library_scores(self, host, models, generated, aligned, source_aligned):
        run = host.run(host.node("PASLMetrics"), models=models[0], results=generated[0], drivers=aligned[0],
                       sources=source_aligned[0], backend="auto", protocol="fixed")
        report, csim, ard = run.outputs
        scores = host.pack_module("pasl.eval.scores")
        library = _library_models(models)
        metric = scores.MetricModels(library.shape_encoder, host.detector, pae=library.pae)
        with torch.inference_mode():
            expected = scores.score_faces(metric, generated[0].movedim(-1, 1), aligned[0].movedim(-1, 1),
                                          source_aligned[0].movedim(-1, 1).expand(3, -1, -1, -1))
        assert csim == pytest.approx(float(expected["pae_csim"].mean()), abs=1e-5)
        assert ard == pytest.approx(float(expected["ard"].mean()), abs=1e-4)
        assert report.startswith("### PASL Metrics: 3 faces") and "| pae_csim |" in report and "| ssim |" not in report
        assert run.progress[-1] == (3, 3)

    def test_ground_truth_adds_pixel_metrics_and_counts_must_match(self, host, models, generated, aligned):
        run = host.run(host.node("PASLMetrics"), models=models[0], results=generated[0], drivers=aligned[0],
                       ground_truth=generated[0], backend="auto", protocol="fixed")
        report, csim, _ = run.outputs
        assert "| ssim | 1.0000 |" in report and "| psnr | n/a |" in report  # identical images: SSIM 1, PSNR infinite
        assert math.isnan(csim)  # no sources, no identity score
        with pytest.raises(ValueError, match="3 results but 2 drivers"):
            host.run(host.node("PASLMetrics"), models=models[0], results=generated[0], drivers=aligned[0][:2],
                     backend="auto", protocol="fixed")


# ----------------------------------------------------------------------------------------- Shape Recompose + Render
class TestShape:
    def test_recompose_gives_one_shape_per_driving_frame(self, shapes):
        shape, report = shapes.outputs
        assert shape.batch_size == 3
        assert report == "cycle check off"
        assert shapes.progress[-1] == (4, 4)  # the source, then the three driving frames

    def test_cycle_report_leaves_out_the_faceless_frame(self, host, models, source_aligned, aligned):
        run = host.run(host.node("PASLShapeRecompose"), models=models[0], source_align=source_aligned[1], driver_align=aligned[1],
                       mode="recompose", cycle_check=True, refine_steps=0)
        assert run[1].startswith("cycle error: shape ") and run[1].endswith("(mean of 2 frames)")

    def test_relative_motion_with_strengths(self, host, models, source_aligned, aligned, shapes):
        from pasl.edit import MotionStrengths, transfer_motion

        run = host.run(host.node("PASLShapeRecompose"), models=models[0], source_align=source_aligned[1], driver_align=aligned[1],
                       mode="recompose", cycle_check=False, refine_steps=0, motion="relative", expression_strength=0.5,
                       camera_strength=0.0)
        relative, driver = run[0].codes, shapes[0].codes  # the absolute result carries the driver's pose, expression, camera
        source = host.run(host.node("PASLShapeEdit"), models=models[0], source_align=source_aligned[1], **EDIT_DEFAULTS)[0].codes
        expected = transfer_motion(source, driver, driver.index(0), MotionStrengths(expression=0.5, camera=0.0))
        for name in ("shape", "pose", "exp", "cam"):
            assert torch.allclose(getattr(relative, name), getattr(expected, name), atol=1e-5), name
        assert torch.equal(relative.cam, source.cam.expand(3, 3)) and torch.allclose(relative.exp[0], source.exp[0], atol=1e-6)

    def test_strengths_need_recompose(self, host):
        node = host.node("PASLShapeRecompose")
        assert node.validate_inputs(mode="reference", motion="relative").startswith("PASL Shape Recompose: relative")
        assert node.validate_inputs(mode="recompose", motion="relative") is True
        assert node.validate_inputs(mode="reference", head_strength=1.0) is True

    def test_render_gives_depth_and_binary_landmarks(self, maps):
        depth, landmarks = maps.outputs
        for image in (depth, landmarks):
            assert image.shape == (3, 256, 256, 3) and image.dtype == torch.float32
            assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert set(torch.unique(landmarks).tolist()) == {0.0, 1.0}
        assert float(depth[DARK].max()) == 0.0 and float(landmarks[DARK].max()) == 0.0  # no face, nothing drawn
        assert all(float(depth[i].max()) > 0.5 for i in (0, 2))  # a head in front of the background
        assert float((depth > 0).float().mean()) > 0.05


EDIT_DEFAULTS = dict(angles="add", yaw=0.0, pitch=0.0, roll=0.0, jaw=0.0, expression=1.0, smile=0.0, mouth_open=0.0,
                     brows_up=0.0, brows_frown=0.0, eyes_closed=0.0)


class TestShapeEdit:
    def test_set_yaw_on_the_photos_own_shape(self, host, models, source_aligned):
        from pasl.edit import head_angles

        run = host.run(host.node("PASLShapeEdit"), models=models[0], source_align=source_aligned[1], **(EDIT_DEFAULTS | dict(
            angles="set", yaw=75.0, pitch=0.0, roll=0.0, jaw=12.0, smile=0.5)))
        shape, preview, mask = run.outputs
        assert shape.batch_size == 1 and abs(float(head_angles(shape.codes)[0, 0]) - 75.0) < 1e-3
        assert preview.shape == (1, 256, 256, 3) and mask.shape == (1, 256, 256)
        assert float(mask.max()) > 0.9 and float(mask.mean()) > 0.05
        assert run.ui is not None and torch.equal(run.ui.image, preview)  # shown on the node

    def test_zero_offsets_keep_the_codes_and_the_faceless_frame(self, host, models, shapes):
        run = host.run(host.node("PASLShapeEdit"), models=models[0], shape=shapes[0], **EDIT_DEFAULTS)
        edited, _, mask = run.outputs
        for name in ("shape", "exp", "pose", "cam"):
            assert torch.equal(getattr(edited.codes, name), getattr(shapes[0].codes, name)), name
        assert float(mask[DARK].max()) == 0.0 and edited.face_mask.tolist() == shapes[0].face_mask.tolist()

    def test_presets_are_saved_and_reused(self, host, models, source_aligned):
        node = host.node("PASLShapeEdit")
        first = host.run(node, models=models[0], source_align=source_aligned[1],
                         **(EDIT_DEFAULTS | dict(angles="set", yaw=45.0, smile=0.3)), save_preset_as="my smile")
        saved = Path(host.folder_paths.models_dir) / "pasl" / "presets" / "my smile.json"
        assert saved.is_file() and '"yaw": 45.0' in saved.read_text()
        again = host.run(node, models=models[0], source_align=source_aligned[1], **EDIT_DEFAULTS, preset="my smile.json")
        for name in ("pose", "exp", "cam"):
            assert torch.equal(getattr(again[0].codes, name), getattr(first[0].codes, name)), name
        options = next(i for i in node.define_schema().inputs if i.id == "preset").options
        assert "my smile.json" in options
        assert node.validate_inputs(save_preset_as="///") != True and node.validate_inputs(save_preset_as="../x") is True  # noqa: E712

    def test_needs_an_input_and_a_valid_jaw(self, host, models):
        with pytest.raises(ValueError, match="connect source_align"):
            host.run(host.node("PASLShapeEdit"), models=models[0], **EDIT_DEFAULTS)
        node = host.node("PASLShapeEdit")
        assert "jaw" in node.validate_inputs(angles="set", jaw=-5.0) and node.validate_inputs(angles="add", jaw=-5.0) is True


class TestAnimatePortrait:
    def test_frames_turn_and_come_back(self, host, models):
        photo = _frames(1, 300, 300, seed=1)
        run = host.run(host.node("PASLAnimatePortrait"), models=models[0], source=photo, keyframes="0: yaw=0\n3: yaw=70\n6: yaw=0",
                       frames=0, easing="linear", backend="auto", paste_back=True, color_match=0.0, source_is_crop=False)
        images, faces, report = run.outputs
        assert images.shape == (7, 300, 300, 3) and faces.shape == (7, 256, 256, 3)
        assert torch.allclose(faces[0], faces[6], atol=1e-5) and float((faces[0] - faces[3]).abs().max()) > 0.05
        assert float((images[:, 0, 0] - photo[0, 0, 0]).abs().max()) == 0.0  # the photo's corner is untouched
        assert report.startswith("7 frames from 3 keyframes") and run.progress[-1] == (7, 7)

    def test_bad_keyframes_fail_validation(self, host):
        message = host.node("PASLAnimatePortrait").validate_inputs(keyframes="0: nose=1")
        assert isinstance(message, str) and "unknown field" in message


# ----------------------------------------------------------------------------------------- Generate
class TestGenerate:
    def test_batch_one_style_is_broadcast_over_the_maps(self, generated):
        faces = generated[0]
        assert faces.shape == (3, 256, 256, 3) and faces.dtype == torch.float32
        assert 0.0 <= float(faces.min()) and float(faces.max()) <= 1.0
        assert float(faces[DARK].max()) == 0.0  # empty maps: black, the generator is not run
        assert all(float(faces[i].std()) > 0.01 for i in (0, 2))
        assert generated.progress == [(2, 3), (3, 3)]  # batch_size 2: the second call broadcasts style[0] to frame 2
        # the values: the node chain equals the library pipeline (TestReenact.test_the_node_chain_matches_it)

    def test_mismatched_batches_are_rejected(self, host, models, maps):
        depth, landmarks = maps.outputs
        with pytest.raises(ValueError, match="batch sizes must be equal or 1"):
            host.run(host.node("PASLGenerate"), models=models[0], style=torch.zeros(2, 128), depth=depth, landmarks=landmarks, batch_size=8)

    def test_host_validation_of_its_inputs(self, host):
        links = {"models": "PASL_MODEL", "style": "PASL_STYLE", "depth": "IMAGE", "landmarks": "IMAGE"}
        generate = host.node("PASLGenerate")
        assert host.validate(generate, {"batch_size": 8}, links) == []
        assert [e["type"] for e in host.validate(generate, {"batch_size": 0}, links)] == ["value_smaller_than_min"]
        assert [e["type"] for e in host.validate(generate, {"batch_size": 8}, links | {"style": "IMAGE"})] == ["return_type_mismatch"]


# ----------------------------------------------------------------------------------------- Paste Back
class TestPasteBack:
    def test_faces_go_back_into_the_frames(self, pasted, driving):
        image, mask = pasted.outputs
        assert image.shape == (3, HEIGHT, WIDTH, 3) and mask.shape == (3, HEIGHT, WIDTH)
        assert torch.equal(image[DARK], driving[DARK]) and float(mask[DARK].abs().max()) == 0.0
        for i in (0, 2):
            assert float(mask[i].max()) > 0.9 and 0.02 < float((mask[i] > 0).float().mean()) < 0.9
            outside = mask[i] == 0
            assert torch.equal(image[i][outside], driving[i][outside])
            assert float((image[i] - driving[i]).abs().max()) > 0.1  # a face was pasted

    def test_upscaled_512_faces_are_accepted(self, host, generated, aligned, driving, pasted):
        faces_512 = torch.nn.functional.interpolate(generated[0].movedim(-1, 1), size=(512, 512), mode="bilinear",
                                                    align_corners=False).movedim(1, -1).clamp(0, 1)
        image, mask = host.run(host.node("PASLPasteBack"), **_paste_inputs(faces_512, aligned, driving)).outputs
        assert image.shape == (3, HEIGHT, WIDTH, 3) and mask.shape == (3, HEIGHT, WIDTH)
        assert torch.equal(image[DARK], driving[DARK])
        assert float((mask - pasted[1]).abs().max()) < 0.05  # the same place in the frame
        assert float((image - pasted[0]).abs().mean()) < 0.01

    def test_non_square_faces_are_rejected(self, host, generated, aligned, driving):
        with pytest.raises(ValueError, match="square"):
            host.run(host.node("PASLPasteBack"), **_paste_inputs(generated[0][:, :, :200], aligned, driving))


# ----------------------------------------------------------------------------------------- Reenact
class TestReenact:
    def test_identity_score_goes_into_the_report(self, host, models, driving, reenacted):
        run = host.run(host.node("PASLReenact"), models=models[0], source=_frames(1, 300, 300, seed=1), driving=driving,
                       mode="recompose", backend="auto", smoothing=0.0, lock_scale=False, paste_back=True, color_match=0.0,
                       source_is_crop=False, identity_score=True)
        assert run[3].startswith(reenacted[3] + "; identity (PAE-CSIM to the source) mean ")
        torch.testing.assert_close(run[0], reenacted[0])  # scoring changes nothing else

    def test_three_frames_end_to_end(self, reenacted, driving):
        image, faces, mask, report = reenacted.outputs
        assert image.shape == (3, HEIGHT, WIDTH, 3) and faces.shape == (3, 256, 256, 3) and mask.shape == (3, HEIGHT, WIDTH)
        assert report == "2 of 3 frames reenacted; no face in frame 1 (passed through unchanged)"
        assert torch.equal(image[DARK], driving[DARK]) and float(mask[DARK].max()) == 0.0
        assert all(float(mask[i].max()) > 0.9 for i in (0, 2))
        assert reenacted.progress[-1] == (3, 3)

    def test_the_node_chain_matches_it(self, reenacted, generated, pasted):
        """Align -> Encode -> Recompose -> Render -> Generate -> Paste Back (style of batch 1, generated two
        frames then one) gives what the library's one-call pipeline gives on the same images."""
        image, faces, mask, _ = reenacted.outputs
        found = [0, 2]  # on the faceless frame the library returns the driver's crop, the node chain a black face
        pairs = {"faces": (generated[0][found], faces[found]), "image": (pasted[0], image), "mask": (pasted[1], mask)}
        print("node chain vs library, max |diff|:", {k: float((a - b).abs().max()) for k, (a, b) in pairs.items()})
        torch.testing.assert_close(generated[0][found], faces[found], rtol=0, atol=1e-4)
        torch.testing.assert_close(pasted[0], image, rtol=0, atol=1e-4)
        torch.testing.assert_close(pasted[1], mask, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------------------- memory
@pytest.fixture
def memory_calls(host, monkeypatch):
    """Every ``load_models_gpu`` call as (patchers, memory_required, force_full_load), and a count of ``soft_empty_cache``."""
    calls, freed, load = [], [], host.mm.load_models_gpu

    def recording_load(models, memory_required=0, force_full_load=False, **options):
        calls.append((list(models), memory_required, force_full_load))
        return load(models, memory_required=memory_required, force_full_load=force_full_load, **options)

    monkeypatch.setattr(host.mm, "load_models_gpu", recording_load)
    monkeypatch.setattr(host.mm, "soft_empty_cache", lambda force=False: freed.append(force))
    return calls, freed


class TestMemory:
    def test_generate_asks_for_its_working_memory_and_frees_the_cache_after(self, host, models, style, maps, memory_calls):
        from pasl.memory import generator_bytes

        calls, freed = memory_calls
        host.run(host.node("PASLGenerate"), models=models[0], style=style[0], depth=maps[0], landmarks=maps[1], batch_size=2)
        assert calls == [([models[0].patcher], generator_bytes(2, torch.float32), True)]
        assert len(freed) == 1

    def test_generate_halves_its_batch_when_memory_runs_out(self, host, models, style, maps, generated, memory_calls, monkeypatch):
        calls, freed = memory_calls
        generator, sizes = _library_models(models).aeg.generator, []
        forward = generator.forward

        def one_frame_fits(depth, landmarks, style):
            sizes.append(depth.shape[0])
            if depth.shape[0] > 1:
                raise torch.OutOfMemoryError("CUDA out of memory (fake)")
            return forward(depth, landmarks, style)

        monkeypatch.setattr(generator, "forward", one_frame_fits)
        run = host.run(host.node("PASLGenerate"), models=models[0], style=style[0], depth=maps[0], landmarks=maps[1], batch_size=3)
        assert sizes == [2, 1, 1]  # frames 0-2 (frame 1 has no face: 2 rows) fail, then one frame at a time
        assert len(freed) == 2  # ComfyUI's soft_empty_cache before the retry, and after the stage
        torch.testing.assert_close(run[0], generated[0], rtol=0, atol=1e-5)

    def test_one_frame_out_of_memory_is_one_sentence(self, host, models, style, maps, monkeypatch):
        out_of_memory = host.pack_module("pasl.errors").OutOfMemoryError  # the pack's own copy of the class
        generator = _library_models(models).aeg.generator

        def nothing_fits(*args):
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")

        monkeypatch.setattr(generator, "forward", nothing_fits)
        with pytest.raises(out_of_memory, match=r"^the generator ran out of GPU memory even one frame at a time \(batch size 2"):
            host.run(host.node("PASLGenerate"), models=models[0], style=style[0], depth=maps[0], landmarks=maps[1], batch_size=2)

    def test_reenact_loads_the_models_and_the_detector_at_once(self, host, models, driving, memory_calls):
        from pasl.memory import generator_bytes, shape_encoder_bytes

        calls, freed = memory_calls
        host.run(host.node("PASLReenact"), models=models[0], source=_frames(1, 300, 300, seed=1), driving=driving,
                 mode="recompose", backend="auto", smoothing=0.0, lock_scale=False, paste_back=True, color_match=0.0,
                 source_is_crop=False)
        # three frames: one chunk, generator batch 3; the scripted detector has no networks to manage
        assert calls == [([models[0].patcher], max(generator_bytes(3, torch.float32), shape_encoder_bytes(3)), True)]
        assert len(freed) == 1

    def test_the_fan_detector_is_under_the_model_manager(self, host, models, tmp_path, memory_calls, monkeypatch):
        from fan_synthetic import write_fan_files

        calls, _ = memory_calls
        host_module = host.pack_module("nodes.host")
        write_fan_files(tmp_path)
        monkeypatch.setattr(host_module, "folders", lambda: [str(tmp_path)])
        found = host.real_detector("fan")
        patcher = host_module._DETECTOR_PATCHERS[id(found)]
        assert patcher.model["s3fd"] is found.s3fd and patcher.model["fan"] is found.fan
        assert calls == [([patcher], 0, True)] and host.mm.current_loaded_models[0] is patcher
        assert host.real_detector("fan", load=False) is found and len(calls) == 1
        models[0].load(memory_required=5, detectors=[found, None])
        assert calls[-1] == ([models[0].patcher, patcher], 5, True)


class TestFps:
    """The smoother's cutoffs are in Hz: the nodes that smooth pass the clip's frame rate on (25 when not given)."""

    @pytest.fixture
    def smoothers(self, host, monkeypatch):
        made = []

        class RecordingSmoother(host.pack_module("pasl.align.smooth").TemporalSmoother):
            def __init__(self, *args, **options):
                super().__init__(*args, **options)
                made.append(self.fps)

        for module in ("nodes.align", "pasl.pipeline", "pasl.align.track"):  # the tracker smooths each face
            monkeypatch.setattr(host.pack_module(module), "TemporalSmoother", RecordingSmoother)
        return made

    def test_face_align(self, host, smoothers):
        frames = _frames(2, 48, 64)
        host.run(host.node("PASLFaceAlign"), **_align_inputs(frames, smoothing=1.0))
        first = list(smoothers)
        host.run(host.node("PASLFaceAlign"), **_align_inputs(frames, smoothing=1.0, fps=29.97))
        assert first and set(first) == {25.0} and set(smoothers[len(first):]) == {29.97}

    def test_reenact(self, host, models, smoothers):
        host.run(host.node("PASLReenact"), models=models[0], source=_frames(1, 300, 300, seed=1), driving=_frames(1),
                 mode="recompose", backend="auto", smoothing=1.0, lock_scale=False, paste_back=False, color_match=0.0,
                 source_is_crop=False, fps=12.5)
        assert smoothers and set(smoothers) == {12.5}


# ----------------------------------------------------------------------------------------- host behaviours
class TestHostBehaviours:
    @pytest.mark.parametrize("run", ["aligned", "style", "shapes", "maps", "generated", "pasted", "reenacted", "scored"])
    def test_progress_bar_reaches_its_total(self, request, run):
        progress = request.getfixturevalue(run).progress
        assert progress, "no progress reported"
        values = [value for value, _ in progress]
        assert values == sorted(values) and progress[-1][0] == progress[-1][1]

    def test_outputs_are_computed_in_inference_mode(self, generated, pasted):
        assert generated[0].is_inference() and pasted[0].is_inference()

    def test_an_interrupt_stops_the_node_at_its_next_progress_step(self, host):
        """The user's cancel sets the flag while a node runs; the pack's next progress step raises.
        Face Align reports every 16 frames: the cancel comes after the first 16, frames 17-32 are
        already under way, the last 8 are never looked at."""
        host.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: host.mm.interrupt_current_processing())
        before = host.detector.calls
        try:
            with pytest.raises(host.mm.InterruptProcessingException):
                host.run(host.node("PASLFaceAlign"), **_align_inputs(_frames(40, 48, 64)))
        finally:
            host.utils.set_progress_bar_global_hook(None)
        assert host.detector.calls - before == 32
        assert not host.mm.processing_interrupted()  # raising clears the flag, as in the host

    def test_node_classes_are_locked_while_they_run(self, host):
        clone = sys.modules["double_execution"].locked_clone(host.node("PASLGenerate"))
        with pytest.raises(AttributeError, match="locked"):
            clone.cache = {}
        assert clone.define_schema().node_id == "PASLGenerate"
