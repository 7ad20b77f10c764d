"""The pack inside a real, headless ComfyUI (0.3.75, built by ``.ci/build_host``), driven over HTTP.

One server serves the whole session (start ~7 s on 2 cores). Its base directory holds a synthetic
official-format AEG checkpoint, a truncated copy of it, and three 256x256 input PNGs. Skips when the
host is not built, fails instead under ``PASL_REQUIRE_HOST=1`` (``.ci/run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from host_harness import PACK_NAME, ComfyServer, RunResult, comfyui_dirs, load_json, pack_node_ids, require_host, ui_to_api
from pae_synthetic import link_pae_files
from pipeline_synthetic import weights_folder
from shared_assets import skip_or_fail
from synthetic import aeg_inputs
from workflow_inputs import UPSCALER, write_face_inputs, write_upscaler

pytestmark = pytest.mark.host

API_WORKFLOW = Path(__file__).resolve().parent / "workflows" / "generate_from_maps_api.json"
CHECKPOINT = "204000_nets_ema.ckpt"
"""The name of the official demo checkpoint: the example workflow selects it."""
TRUNCATED = "truncated_nets_ema.ckpt"
"""First MiB of the synthetic checkpoint: a download cut short."""
INPUTS = ("source.png", "depth.png", "landmarks.png")
CONTRACT = {
    "PASLLoadModels": ("PASL Load Models", ["PASL_MODEL"]),
    "PASLFaceAlign": ("PASL Face Align", ["IMAGE", "PASL_ALIGN", "STRING"]),
    "PASLEncodeStyle": ("PASL Pose-Adapted Encode", ["PASL_STYLE", "PASL_IDENTITY", "STRING"]),
    "PASLShapeRecompose": ("PASL Shape Recompose", ["PASL_SHAPE", "STRING"]),
    "PASLShapeRender": ("PASL Shape Render", ["IMAGE", "IMAGE"]),
    "PASLGenerate": ("PASL Generate", ["IMAGE"]),
    "PASLPasteBack": ("PASL Paste Back", ["IMAGE", "MASK"]),
    "PASLReenact": ("PASL Reenact", ["IMAGE", "IMAGE", "MASK", "STRING"]),
    "PASLIdentityScore": ("PASL Identity Score", ["FLOAT", "STRING"]),
    "PASLShapeEdit": ("PASL Shape Edit", ["PASL_SHAPE", "IMAGE", "MASK"]),
    "PASLAnimatePortrait": ("PASL Animate Portrait", ["IMAGE", "IMAGE", "STRING"]),
    "PASLMetrics": ("PASL Metrics", ["STRING", "FLOAT", "FLOAT"]),
}
"""node id -> (display name, output types) the workflows and users rely on."""
LOADER, GENERATE, SAVE = "1", "6", "7"
"""Node ids in generate_from_maps_api.json."""


@dataclass
class Host:
    server: ComfyServer
    base: Path

    @property
    def object_info(self) -> dict:
        return self.server.object_info

    def run(self, prompt: dict) -> RunResult:
        result = self.server.run(prompt)
        assert result.status != "timeout", f"prompt timed out; log tail:\n{self.server.log_tail()}"
        return result


def _write_png(array: torch.Tensor, path: Path) -> None:
    """``(3, H, W)`` in [0, 1] -> 8-bit RGB PNG."""
    pixels = (array.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)


@pytest.fixture(scope="session", params=comfyui_dirs(), ids=lambda tree: tree.name)
def host(request, tmp_path_factory, pae_folder) -> Host:
    """A running ComfyUI, once per tree: 0.3.75 and 0.3.52 (older than the declared 0.3.64)."""
    tree = request.param
    require_host(tree)
    base = tmp_path_factory.mktemp("comfy_base")
    weights_folder(base / "models" / "pasl")  # AEG (seed 0), DECA, FLAME, topology: official formats
    link_pae_files(pae_folder, base / "models" / "pasl")  # the six PAE networks in their POE/ folders
    write_upscaler(base / "models" / "upscale_models" / UPSCALER)
    with open(base / "models" / "pasl" / CHECKPOINT, "rb") as whole, open(base / "models" / "pasl" / TRUNCATED, "wb") as cut:
        cut.write(whole.read(1 << 20))
    (base / "input").mkdir()
    maps = aeg_inputs(seed=7, batch=1)
    for name, key in zip(INPUTS, ("source", "depth", "landmarks")):
        _write_png(maps[key][0], base / "input" / name)
    write_face_inputs(base / "input")
    server = ComfyServer(base, tree=tree)
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(f"the ComfyUI host did not start: {err}", pytrace=False)
    try:
        yield Host(server, base)
    finally:
        server.stop()


def api_workflow(**loader_inputs) -> dict:
    prompt = load_json(API_WORKFLOW)
    prompt[LOADER]["inputs"].update(loader_inputs)
    return prompt


def _load_rgb(path: Path) -> torch.Tensor:
    """As ComfyUI's LoadImage: RGB, float32 / 255; here ``(1, 3, H, W)``."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


def expected_face(base: Path) -> np.ndarray:
    """The PNG the workflow must write, computed in this process with ``pasl`` alone (fp32, CPU)."""
    from pasl.aeg_files import load_aeg

    model = load_aeg(base / "models" / "pasl" / CHECKPOINT)
    source, depth, landmarks = (_load_rgb(base / "input" / name) for name in INPUTS)
    with torch.inference_mode():
        face = model.generator(depth, landmarks, model.style_encoder(source))
    # SaveImage: np.clip(255 * image, 0, 255).astype(uint8), i.e. truncation
    return np.clip(255.0 * face[0].permute(1, 2, 0).numpy(), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- (a)
class TestRegistration:
    def test_pack_imports_without_failure(self, host):
        assert host.server.pack_import_error() is None, f"the pack failed to import:\n{host.server.pack_import_error()}"
        assert not [line for line in host.server.import_failures() if PACK_NAME in line]

    def test_every_node_of_the_extension_is_registered(self, host):
        expected = pack_node_ids(host.server.tree)
        assert set(CONTRACT) <= set(expected), f"the extension returns {sorted(expected)}"
        from_pack = {
            node_id for node_id, info in host.object_info.items()
            if info.get("python_module") == f"custom_nodes.{PACK_NAME}"
        }
        assert from_pack == set(expected)
        for node_id, display_name in expected.items():
            assert host.object_info[node_id]["display_name"] == display_name

    @pytest.mark.parametrize("node_id", sorted(CONTRACT))
    def test_contract_names_and_outputs(self, host, node_id):
        display_name, outputs = CONTRACT[node_id]
        info = host.object_info[node_id]
        assert info["display_name"] == display_name
        assert info["output"] == outputs
        assert info["category"].startswith("PASL")

    @pytest.mark.parametrize("node_id", sorted(CONTRACT))
    def test_every_input_reaches_the_frontend_with_a_tooltip(self, host, node_id):
        sections = host.object_info[node_id]["input"]
        inputs = {name: spec for section in ("required", "optional") for name, spec in sections.get(section, {}).items()}
        missing = [name for name, spec in inputs.items() if len(spec) < 2 or len(spec[1].get("tooltip") or "") < 10]
        assert inputs and not missing, f"{node_id}: no tooltip for {missing}"

    def test_loader_lists_the_model_folder(self, host):
        required = host.object_info["PASLLoadModels"]["input"]["required"]
        options = _combo_options(required["aeg_checkpoint"])
        assert CHECKPOINT in options and TRUNCATED in options
        assert _combo_options(required["device"]) == ["auto", "cpu", "cuda", "mps"]
        assert _combo_options(required["precision"]) == ["auto", "fp32", "fp16", "bf16"]


def _combo_options(spec: list) -> list:
    """Options of a combo input spec: ``[[...], {...}]`` (V1) or ``["COMBO", {"options": [...]}]`` (V3)."""
    if isinstance(spec[0], list):
        return spec[0]
    assert spec[0] == "COMBO", spec
    return spec[1]["options"]


# ----------------------------------------------------------------------------------------- (b)
@pytest.fixture(scope="session")
def generated(host) -> RunResult:
    """generate_from_maps_api.json, run once."""
    return host.run(api_workflow())


def saved_png(generated: RunResult) -> Path:
    assert generated.status == "success" and len(generated.images) == 1, generated.errors or generated.response
    return generated.images[0]


class TestGenerateFromMaps:
    def test_runs_and_saves_one_png(self, host, generated):
        assert generated.status == "success", f"{generated.errors or generated.response}\n{host.server.log_tail()}"
        assert len(generated.images) == 1
        assert generated.images[0].is_file()
        assert generated.images[0].parent == host.base / "output" / "pasl"

    def test_png_is_a_256_rgb_face_not_a_constant(self, generated):
        with Image.open(saved_png(generated)) as image:
            assert image.size == (256, 256)
            assert image.mode == "RGB"
            pixels = np.asarray(image)
        assert pixels.std() > 5.0
        assert len(np.unique(pixels)) > 32

    def test_png_equals_the_library_computation(self, host, generated):
        """Same file, inputs and maths outside ComfyUI: catches channel order, BHWC/BCHW and wiring slips."""
        with Image.open(saved_png(generated)) as image:
            got = np.asarray(image).astype(np.int16)
        want = expected_face(host.base).astype(np.int16)
        diff = np.abs(got - want)
        print(f"host vs library: max |diff| {diff.max()}, {(diff > 0).mean():.4%} of values differ")
        assert diff.max() <= 1, f"max |diff| = {diff.max()} (uint8 levels)"
        assert (diff > 0).mean() < 0.01


# ----------------------------------------------------------------------------------------- (c)
class TestValidation:
    def test_unknown_checkpoint_is_rejected_before_running(self, host):
        """ComfyUI 0.3.75 checks Combo membership only for V1 list specs, not for V3 ``COMBO`` inputs,
        so the loader must refuse an unknown file itself (``validate_inputs``), before anything runs."""
        result = host.run(api_workflow(aeg_checkpoint="not_there_nets_ema.ckpt"))
        assert result.status == "rejected", (
            f"an unknown aeg_checkpoint was accepted by validation ({result.status}: "
            f"{[e.get('exception_message') for e in result.errors]})"
        )
        assert result.response["error"]["type"] == "prompt_outputs_failed_validation"
        assert set(result.response["node_errors"]) == {LOADER}
        node_errors = result.response["node_errors"][LOADER]
        assert node_errors["class_type"] == "PASLLoadModels"
        # ComfyUI 0.3.75 repeats a failed validate_inputs once per validated input: one message, n copies.
        # ("<input> - <message>" each); the pack's message must be the same in all of them.
        assert len({e["details"].split(" - ", 1)[1] for e in node_errors["errors"]}) == 1
        error = node_errors["errors"][0]
        assert error["type"] in ("value_not_in_list", "custom_validation_failed")
        assert "aeg_checkpoint" in error["details"] and "not_there_nets_ema.ckpt" in error["details"]
        assert "drive.google.com" in error["details"]  # says where to get the file

    def test_image_into_the_style_socket_is_rejected(self, host):
        prompt = api_workflow()
        prompt[GENERATE]["inputs"]["style"] = ["2", 0]  # LoadImage's IMAGE into PASL_STYLE
        result = host.run(prompt)
        assert result.status == "rejected"
        errors = result.response["node_errors"][GENERATE]["errors"]
        assert [e["type"] for e in errors] == ["return_type_mismatch"]
        assert "PASL_STYLE" in errors[0]["details"] and "IMAGE" in errors[0]["details"]

    def test_batch_size_out_of_range_is_rejected(self, host):
        prompt = api_workflow()
        prompt[GENERATE]["inputs"]["batch_size"] = 0
        result = host.run(prompt)
        assert result.status == "rejected"
        assert [e["type"] for e in result.response["node_errors"][GENERATE]["errors"]] == ["value_smaller_than_min"]


# ----------------------------------------------------------------------------------------- (d)
class TestExecutionError:
    def test_truncated_checkpoint_reports_the_file_and_the_server_survives(self, host):
        result = host.run(api_workflow(aeg_checkpoint=TRUNCATED))
        assert result.status == "error"
        assert len(result.errors) == 1
        error = result.errors[0]
        assert error["node_type"] == "PASLLoadModels"
        assert error["exception_type"].endswith("WeightFileError")
        assert TRUNCATED in error["exception_message"]
        assert "corrupt" in error["exception_message"]
        assert not result.images
        # the server keeps serving: a core-only prompt still runs
        assert host.server.alive()
        after = host.run({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "after_error"}},
        })
        assert after.status == "success" and len(after.images) == 1


# ----------------------------------------------------------------------------------------- UI twins
WORKFLOW_NAMES = sorted(p.name[: -len("_api.json")] for p in (Path(__file__).resolve().parent / "workflows").glob("*_api.json"))


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
class TestUIWorkflows:
    def test_is_a_frontend_save_with_a_note_and_a_thumbnail(self, name):
        from workflow_builder import ui_path

        workflow = load_json(ui_path(name))
        assert workflow["version"] == 0.4
        notes = [n for n in workflow["nodes"] if n["type"] == "Note"]
        assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 80
        ids = {n["id"] for n in workflow["nodes"]}
        assert workflow["last_node_id"] == max(ids)
        assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
        by_id = {n["id"]: n for n in workflow["nodes"]}
        for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
            assert link_id in by_id[origin]["outputs"][origin_slot]["links"]
            target_input = by_id[target]["inputs"][target_slot]
            assert target_input["link"] == link_id and kind == by_id[origin]["outputs"][origin_slot]["type"]
            assert target_input["type"] in (kind, "*")  # "*": an input that takes any type (core PreviewAny)
        with Image.open(ui_path(name, ".jpg")) as thumbnail:
            assert thumbnail.size == (640, 360)

    def test_converts_to_the_api_twin(self, host, name):
        from workflow_builder import FOREIGN_OBJECT_INFO, ui_path

        converted = ui_to_api(load_json(ui_path(name)), {**FOREIGN_OBJECT_INFO, **host.object_info})
        expected = load_json(Path(__file__).resolve().parent / "workflows" / f"{name}_api.json")
        strip = lambda prompt: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}  # noqa: E731
        assert strip(converted) == strip(expected)


# ----------------------------------------------------------------------------------------- example workflows
def _outputs(host: Host, prefix: str) -> list[Path]:
    return sorted((host.base / "output" / "pasl").glob(f"{prefix}_*"))


@pytest.fixture(scope="session")
def faces(host):
    from workflow_inputs import faces_available

    if not faces_available():
        skip_or_fail("../shared/assets/faces is not available: the face workflows need real faces")
    return host


def _run_example(host: Host, name: str) -> RunResult:
    for old in _outputs(host, "reenacted"):
        old.unlink()
    result = host.run(load_json(Path(__file__).resolve().parent / "workflows" / f"{name}_api.json"))
    assert result.status == "success", f"{result.errors or result.response}\n{host.server.log_tail()}"
    return result


class TestExampleWorkflows:
    def test_photo_to_photo_pastes_a_face_into_the_driving_photo(self, faces):
        result = _run_example(faces, "photo_to_photo")
        (report,) = result.history["outputs"]["15"]["text"]  # PreviewAny of PASL Identity Score's report
        assert report.startswith("identity (PAE-CSIM to the source") and "over 1 of 1 faces" in report
        (metrics,) = result.history["outputs"]["17"]["text"]  # PreviewAny of PASL Metrics' table
        assert metrics.startswith("### PASL Metrics: 1 faces") and "| ard |" in metrics and "| pae_csim |" in metrics
        (result,) = _outputs(faces, "reenacted")
        driving = np.asarray(Image.open(faces.base / "input" / "driving.png").convert("RGB")).astype(int)
        pixels = np.asarray(Image.open(result)).astype(int)
        assert pixels.shape == driving.shape
        changed = np.abs(pixels - driving).max(-1) > 1  # LoadImage -> SaveImage may truncate by one level
        assert 0.01 < changed.mean() < 0.6
        (depth,) = _outputs(faces, "depth")
        (landmarks,) = _outputs(faces, "landmarks")
        assert Image.open(depth).size == Image.open(landmarks).size == (256, 256)
        assert set(np.unique(np.asarray(Image.open(landmarks)))) == {0, 255}

    def test_photo_to_video_keeps_size_frames_and_audio(self, faces):
        from pasl.video import iter_frame_chunks, probe
        from workflow_inputs import VIDEO_FRAMES

        _run_example(faces, "photo_to_video")
        (video,) = _outputs(faces, "reenacted")
        info, driving = probe(video), probe(faces.base / "input" / "driving.mp4")
        assert (info.width, info.height) == (driving.width, driving.height)
        assert info.has_audio
        assert sum(len(chunk) for chunk in iter_frame_chunks(video, 8)) == VIDEO_FRAMES

    def test_upscaled_faces_are_pasted_back_at_the_photo_size(self, faces):
        _run_example(faces, "upscale_faces")
        (result,) = _outputs(faces, "reenacted")
        assert Image.open(result).size == Image.open(faces.base / "input" / "driving.png").size

    def test_face_restorer_workflow_where_its_pack_is_installed(self, faces):
        if "FaceRestoreCFWithModel" not in faces.object_info:
            pytest.skip("the facerestore_cf pack is not installed in this host (the workflow documents it)")
        _run_example(faces, "face_restore")

    def test_head_editor_turns_the_portraits_face(self, faces):
        _run_example(faces, "head_editor")
        (result,) = sorted((faces.base / "output" / "pasl").glob("edited_*"))
        source = np.asarray(Image.open(faces.base / "input" / "face_source.png").convert("RGB")).astype(int)
        pixels = np.asarray(Image.open(result)).astype(int)
        assert pixels.shape == source.shape
        changed = np.abs(pixels - source).max(-1) > 1
        assert 0.01 < changed.mean() < 0.6 and not changed[0, 0]

    def test_animate_portrait_makes_a_video_of_the_photo(self, faces):
        from pasl.video import probe, read_video

        for old in (faces.base / "output" / "pasl").glob("animated_*"):
            old.unlink()
        _run_example(faces, "animate_portrait")
        (video,) = sorted((faces.base / "output" / "pasl").glob("animated_*"))
        info, frames = probe(video), read_video(video)
        source = Image.open(faces.base / "input" / "face_source.png")
        assert frames.shape[0] == 9 and (info.width, info.height) == source.size
        assert np.abs(frames[0].astype(int) - frames[4].astype(int)).max() > 10  # the head turned
