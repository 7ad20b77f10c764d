"""The benchmark command runs and reports what it promises (timings are not asserted)."""

import json

from pasl.bench import main


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
