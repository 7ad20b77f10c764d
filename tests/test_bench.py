"""The benchmark command runs and reports what it promises (timings are not asserted)."""

import json

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
