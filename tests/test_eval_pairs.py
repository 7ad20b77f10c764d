"""pasl.eval.pairs and ``python -m pasl.eval compose-pairs``: bins, gaps, identities, seeds, the list format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pasl.errors import PASLError
from pasl.eval.pairs import Face, compose_pairs, faces_from_mapping, summarise, write_pairs
from pasl.pae import pose_bin

ROOT = Path(__file__).resolve().parents[1]


def _mapping(n_ids: int = 6, per_id: int = 12, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        f"data/id{i:02d}/img{k:02d}.png": {
            "yaw": float(rng.uniform(-90, 90)), "pitch": float(rng.uniform(-30, 30)), "identity": f"id{i:02d}",
        }
        for i in range(n_ids) for k in range(per_id)
    }


@pytest.fixture
def faces() -> list[Face]:
    return faces_from_mapping(_mapping())


@pytest.mark.parametrize("mode", ["self", "cross"])
def test_pairs_respect_bins_gap_and_identities(faces, mode):
    by_path = {f.path: f for f in faces}
    pairs = compose_pairs(faces, mode=mode, min_gap=40.0, per_bin_pair=15, seed=3)
    assert pairs
    counts = summarise(pairs, faces)
    assert set(counts) <= {"FS", "FP", "SF", "SP", "PF", "PS"}
    assert all(c <= 15 for c in counts.values())
    assert len({(p.source, p.driver) for p in pairs}) == len(pairs)  # no repeats
    for p in pairs:
        s, d = by_path[p.source], by_path[p.driver]
        assert pose_bin(s.yaw) != pose_bin(d.yaw)
        assert abs(s.yaw - d.yaw) >= 40.0
        if mode == "self":
            assert s.identity == d.identity and p.ground_truth == p.driver and p.source != p.driver
        else:
            assert s.identity != d.identity and p.ground_truth is None


def test_cross_mode_fills_the_requested_counts_when_it_can(faces):
    counts = summarise(compose_pairs(faces, mode="cross", min_gap=0.0, per_bin_pair=10, seed=0), faces)
    assert counts == {bp: 10 for bp in ("FS", "FP", "SF", "SP", "PF", "PS")}


def test_same_seed_same_list_different_seed_different_list(faces):
    a = compose_pairs(faces, seed=7, per_bin_pair=20)
    assert a == compose_pairs(list(reversed(faces)), seed=7, per_bin_pair=20)  # input order does not matter
    assert a != compose_pairs(faces, seed=8, per_bin_pair=20)


def test_bin_pairs_and_pitch_filter(faces):
    pairs = compose_pairs(faces, bin_pairs=["FP"], max_pitch=10.0, per_bin_pair=50, min_gap=0.0)
    by_path = {f.path: f for f in faces}
    assert pairs and all(pose_bin(by_path[p.source].yaw) == "F" and pose_bin(by_path[p.driver].yaw) == "P" for p in pairs)
    assert all(abs(by_path[p.source].pitch) <= 10 and abs(by_path[p.driver].pitch) <= 10 for p in pairs)
    with pytest.raises(PASLError, match="F, S, P"):
        compose_pairs(faces, bin_pairs=["FX"])


def test_sources_are_spread_before_any_repeats():
    faces = [Face(f"s{i}.png", 0.0, None, f"a{i}") for i in range(4)] + [Face(f"d{i}.png", 80.0, None, f"b{i}") for i in range(5)]
    pairs = compose_pairs(faces, bin_pairs=["FP"], per_bin_pair=8, min_gap=30.0)
    sources = [p.source for p in pairs]
    assert len(pairs) == 8 and all(sources.count(f"s{i}.png") == 2 for i in range(4))
    assert len(compose_pairs(faces, bin_pairs=["FP"], per_bin_pair=100)) == 20  # all 4 x 5 eligible pairs, then it stops


def test_bad_inputs_are_one_sentence():
    with pytest.raises(PASLError, match="whitespace"):
        faces_from_mapping({"a b.png": {"yaw": 0, "identity": 1}})
    with pytest.raises(PASLError, match="numeric"):
        faces_from_mapping({"a.png": {"identity": 1}})
    with pytest.raises(PASLError, match="empty"):
        faces_from_mapping({})


def test_write_pairs_official_format(tmp_path):
    from pasl.eval.pairs import Pair

    out = write_pairs([Pair("a.png", "b.png", "b.png"), Pair("c.png", "d.png")], tmp_path / "sub" / "pairs.txt")
    assert out.read_text() == "a.png b.png b.png\nc.png d.png\n"


@pytest.mark.parametrize("mode", ["self", "cross"])
def test_cli_writes_the_release_list_format(tmp_path, mode):
    yaws = tmp_path / "yaws.json"
    yaws.write_text(json.dumps(_mapping()))
    out = tmp_path / "pairs.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pasl.eval", "compose-pairs", "--yaws", str(yaws), "--out", str(out), "--mode", mode,
         "--seed", "5", "--per-bin-pair", "4", "--min-gap", "30"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    lines = out.read_text().splitlines()
    assert summary["pairs"] == len(lines) > 0 and summary["faces"] == 72
    mapping = _mapping()
    for line in lines:
        fields = line.split(" ")
        assert len(fields) == (3 if mode == "self" else 2)
        assert all(f in mapping for f in fields)
        if mode == "self":
            assert fields[2] == fields[1]


def test_cli_errors_are_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "pasl.eval", "compose-pairs", "--yaws", str(tmp_path / "missing.json"), "--out", str(tmp_path / "p.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1 and "not found" in run.stderr
