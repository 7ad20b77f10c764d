"""The benchmark command runs and reports what it promises (timings are not asserted)."""

import json
import math

import pytest

from pasl.bench import main
from shared_assets import skip_or_fail


def test_aeg_bench_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "aeg.json"
    assert main(["aeg", "--batches", "1", "--repeat", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "encode_ms_per_frame" in printed.splitlines()[1]
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["impl"] == "pasl" and row["batch"] == 1
    assert row["encode_ms_per_frame"] > 0 and row["generate_ms_per_frame"] > 0
    assert result["dtype"] == "fp32" and result["device"] == "cpu"


def test_render_bench_runs_on_the_free_topology_files(tmp_path):
    from pathlib import Path

    flame = Path(__file__).resolve().parents[2] / "shared" / "assets" / "flame"
    if not (flame / "head_template.obj").exists():

        skip_or_fail("../shared/assets/flame is not available")
    out = tmp_path / "render.json"
    assert main(["render", "--batches", "2", "--repeat", "1", "--weights-dir", str(flame), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["flame"] == "template-only FLAME" and result["rows"][0]["ms_per_frame"] > 0


def test_align_bench_reports_each_backend(tmp_path):
    from pathlib import Path

    import pytest

    video = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "video" / "pyfeat_single_face.mp4"
    if not video.exists():
        skip_or_fail("../shared/assets is not available")
    pytest.importorskip("dlib")
    out = tmp_path / "align.json"
    assert main(["align", str(video), "--frames", "2", "--backends", "dlib-hog,fan", "--json", str(out)]) == 0
    rows = {(r["stage"], r["backend"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[("detect+landmarks", "dlib-hog")]["ms_per_frame"] > 0
    second = rows[("crop landmarks (DECA pass)", "dlib-hog")]
    assert second["ms_per_frame"] > 0 and second["size"] == "256x256" and 0 <= second["faces_found"] <= 2
    assert "skipped" in rows[("detect+landmarks", "fan")]  # no FAN weights here: reported, not crashed


def _finite_positive(value) -> bool:
    import math

    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _shared_inputs():
    from pathlib import Path

    import pytest

    shared = Path(__file__).resolve().parents[2] / "shared" / "assets"
    video = shared / "faces" / "video" / "pyfeat_single_face.mp4"
    if not video.exists() or not (shared / "flame" / "head_template.obj").exists():
        skip_or_fail("../shared/assets is not available")
    pytest.importorskip("dlib")
    return video, shared / "flame"


def test_pipeline_bench_reports_stages_ratios_and_bf16_error(tmp_path, capsys):
    video, flame = _shared_inputs()
    out = tmp_path / "pipeline.json"
    argv = ["pipeline", "--video", str(video), "--frames", "2", "--chunk-size", "2", "--batch-size", "2", "--official-frames", "1",
            "--precision", "bf16", "--variant-frames", "1", "--backend", "dlib-hog", "--synthetic", "--weights-dir", str(flame),
            "--repeat", "2", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "end to end / generator" in printed and "bf16 weights" in printed and "over the 2 runs" in printed
    assert "video: decode and encode in background threads" in printed  # the CLI's way, the default
    result = json.loads(out.read_text())
    assert result["benchmark"] == "pipeline" and result["dtype"] == "bf16" and result["weights"].startswith("synthetic")
    runs = {row["run"]: row for row in result["rows"]}
    assert set(runs) == {"photo", "video", "official-demo path"}
    video_run = runs["video"]
    assert video_run["frames"] == 2 and video_run["faces_found"] == 2
    assert video_run["io"] == "background" and runs["official-demo path"]["io"] == "inline"  # the authors' demo is sequential
    for stage in ("decode", "align", "crop_landmarks", "shape", "render", "generate", "paste", "encode"):
        assert _finite_positive(video_run["ms_per_frame"][stage]), stage
    assert _finite_positive(runs["photo"]["ms_per_frame"]["style"])
    for key in ("end_to_end_ms_per_frame", "fps", "generator_only_ms_per_frame", "end_to_end_vs_generator"):
        assert _finite_positive(video_run[key]), key
    low, high = video_run["vs_generator_range"]
    assert video_run["repeats"] == 2 and low <= video_run["end_to_end_vs_generator"] <= high
    photo = runs["photo"]  # one frame: the source's encoding and the driver's pass, each timed
    assert photo["repeats"] == 2 and _finite_positive(photo["driver_vs_generator"])
    assert _finite_positive(photo["generator_only_ms_per_frame"])
    assert photo["source_ms"] + photo["driver_ms"] == pytest.approx(photo["end_to_end_ms_per_frame"], rel=0.5)
    assert photo["driver_ms"] >= photo["ms_per_frame"]["generate"]
    assert _finite_positive(runs["official-demo path"]["vs_this_run"]) and "FAN" in runs["official-demo path"]["note"]
    assert runs["official-demo path"]["ms_per_frame"]["paste"] == 0  # the demo writes aligned crops
    assert _finite_positive(result["peak_rss_mb"])
    variants = {v["variant"]: v for v in result["precision_variants"]}
    assert set(variants) == {"fp32 weights", "as loaded (float32 weights, autocast bfloat16)", "bf16 weights",
                             "bf16 autocast + channels_last", "bf16 weights + channels_last"}
    for name, variant in variants.items():
        assert _finite_positive(variant["generator_ms_per_frame"])
        if name != "fp32 weights":  # bf16 keeps 8 mantissa bits: faces in [0, 1] differ by a few 1e-2 at most
            assert 0 < variant["max_abs"] < 0.25 and 0 < variant["mean_abs"] < 0.03 and 20 < variant["psnr_db"] < 80


def test_gpu_check_runs_on_the_cpu(tmp_path):
    video, flame = _shared_inputs()
    out = tmp_path / "gpu.json"
    argv = ["gpu-check", "--device", "cpu", "--video", str(video), "--frames", "2", "--batches", "1,2", "--error-frames", "1",
            "--backend", "dlib-hog", "--synthetic", "--weights-dir", str(flame), "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "gpu-check" and result["precision"] == "bf16"
    errors = result["errors_vs_cpu_fp32"]
    assert errors["frames"] == 1
    # same device, DECA/FLAME/maps in float32 on both sides: identical; the generator in bf16 is not
    for key in ("deca_codes_max_abs", "flame_vertices_max_abs", "depth_map_max_abs", "landmarks_map_max_abs"):
        assert errors[key] == 0, key
    assert 0 < errors["faces_max_abs"] < 0.25 and 20 < errors["faces_psnr_db"] < 80
    assert [row["batch"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        for key in ("end_to_end_fps", "generator_only_fps", "end_to_end_vs_generator"):
            assert _finite_positive(row[key]), key


def test_stage_timer_charges_nested_stages_once():
    import time

    from pasl.timing import StageTimer

    timer = StageTimer()
    start = time.perf_counter()
    with timer("shape"):
        with timer("crop_landmarks"):
            pass
        with timer("crop_landmarks"):
            pass
    elapsed_ms = (time.perf_counter() - start) * 1000
    assert timer.calls == {"shape": 1, "crop_landmarks": 2}
    assert set(timer.ms) == {"shape", "crop_landmarks"} and all(v >= 0 for v in timer.ms.values())
    assert timer.total_ms() <= elapsed_ms  # exclusive: the inner time is not counted in the outer stage too
    timer.reset()
    assert timer.ms == {} and timer.calls == {}


def test_train_bench_times_steps_by_batch_size(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert main(["train", "--model", "tiny", "--batches", "2", "--repeat", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "train" and result["model"] == "tiny" and [r["batch"] for r in result["rows"]] == [2]
    for row in result["rows"]:
        assert row["s_per_step"] > 0 and row["images_per_s"] == pytest.approx(row["batch"] / row["s_per_step"])
        assert math.isfinite(row["g_total"])
    assert "s_per_step" in capsys.readouterr().out
