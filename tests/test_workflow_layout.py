"""The example workflows' layout: no node hides another, every node sits in its stage's group.

The saved files are checked here without a browser (rectangles from ``pos``/``size``, title bars
included); ``test_the_real_frontend_draws_them_without_overlap`` (marker ``host``) loads them in
ComfyUI's real frontend in headless Chromium (``frontend_check.py``) and checks what it draws.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from host_harness import load_json, require_host
from workflow_builder import NOTES, TEMPLATE_NAMES, ui_path
from workflow_layout import (
    GROUP_TITLE_HEIGHT,
    TITLE_HEIGHT,
    estimated_min_size,
    layout,
    layout_problems,
    load_measured,
    node_rect,
    stages,
)

HERE = Path(__file__).resolve().parent
TWINS = sorted(p.name[: -len("_api.json")] for p in (HERE / "workflows").glob("*_api.json"))


def _saved(name: str) -> dict:
    return load_json(ui_path(name))


def _rects(workflow: dict) -> tuple[list, list, set]:
    nodes = [(f"{n['id']} {n.get('title') or n['type']}", node_rect(n)) for n in workflow["nodes"]]
    groups = [(g["title"], tuple(g["bounding"])) for g in workflow["groups"]]
    notes = {f"{n['id']} {n.get('title') or n['type']}" for n in workflow["nodes"] if n["type"] == "Note"}
    return nodes, groups, notes


# ----------------------------------------------------------------------------------------- the saved files
@pytest.mark.parametrize("name", TWINS)
class TestSavedWorkflows:
    def test_no_node_overlaps_and_each_is_in_one_group(self, name):
        nodes, groups, notes = _rects(_saved(name))
        assert len(notes) == 1 and len(groups) >= 3
        assert layout_problems(nodes, groups, free=notes) == []

    def test_nodes_are_at_least_as_large_as_the_frontend_draws_them(self, name):
        measured = load_measured()
        for node in _saved(name)["nodes"]:
            if node["type"] in measured:
                width, height = measured[node["type"]]["size"]
                assert node["size"][0] >= width and node["size"][1] >= height, (node["title"], node["size"], (width, height))

    def test_the_note_is_above_every_group(self, name):
        workflow = _saved(name)
        (note,) = [n for n in workflow["nodes"] if n["type"] == "Note"]
        bottom = note["pos"][1] + note["size"][1]
        assert all(g["bounding"][1] > bottom for g in workflow["groups"])
        assert note["size"][1] >= 88 and NOTES[name] == note["widgets_values"][0]

    def test_groups_are_the_pipeline_stages_from_left_to_right(self, name):
        groups = {g["title"]: g["bounding"] for g in _saved(name)["groups"]}
        if "Source" in groups and "Generate" in groups:
            assert groups["Source"][0] < groups["Generate"][0]
        if "Generate" in groups and "Paste back" in groups:
            assert groups["Generate"][0] < groups["Paste back"][0]


def test_template_files_have_readable_names():
    """ComfyUI's template browser shows a pack's workflow file name as the card's title, and the .jpg beside it as the picture."""
    assert sorted(TEMPLATE_NAMES) == TWINS
    for name in TWINS:
        assert re.fullmatch(r"PASL [A-Za-z0-9 ]+", TEMPLATE_NAMES[name]), TEMPLATE_NAMES[name]
        assert ui_path(name).is_file() and ui_path(name, ".jpg").is_file()
    assert sorted(p.stem for p in (HERE.parent / "workflows").glob("*.json")) == sorted(TEMPLATE_NAMES.values())


# ----------------------------------------------------------------------------------------- the layout itself
def _info(sockets: list[str], widgets: list[str], outputs: list[str]) -> dict:
    required = {name: ["IMAGE"] for name in sockets} | {name: ["INT", {"default": 1}] for name in widgets}
    return {"input": {"required": required}, "input_order": {"required": sockets + widgets}, "output": outputs, "output_name": outputs}


OBJECT_INFO = {
    "LoadImage": _info([], ["image"], ["IMAGE", "MASK"]),
    "PASLFaceAlign": _info(["images"], ["smoothing"], ["IMAGE", "PASL_ALIGN"]),
    "PASLLoadModels": _info([], ["a", "b", "c"], ["PASL_MODEL"]),
    "PASLEncodeStyle": _info(["models", "source"], [], ["PASL_STYLE"]),
    "PASLGenerate": _info(["models", "style", "depth"], ["batch_size"], ["IMAGE"]),
    "SomeUpscaler": _info(["image", "model"], [], ["IMAGE"]),
    "SomeLoader": _info([], ["name"], ["MODEL"]),
    "SaveImage": _info(["images"], ["filename_prefix"], []),
}


def _api(**nodes) -> dict:
    return {
        node_id.lstrip("n"): {"class_type": kind, "inputs": inputs, "_meta": {"title": kind}} for node_id, (kind, inputs) in nodes.items()
    }


API = _api(
    n1=("PASLLoadModels", {"a": 1, "b": 1, "c": 1}),
    n2=("LoadImage", {"image": "s.png"}),
    n3=("LoadImage", {"image": "d.png"}),
    n4=("PASLFaceAlign", {"images": ["2", 0], "smoothing": 1}),
    n5=("PASLEncodeStyle", {"models": ["1", 0], "source": ["4", 0]}),
    n6=("PASLGenerate", {"models": ["1", 0], "style": ["5", 0], "depth": ["3", 0], "batch_size": 8}),
    n7=("SomeLoader", {"name": "x"}),
    n8=("SomeUpscaler", {"model": ["7", 0], "image": ["6", 0]}),
    n9=("SaveImage", {"images": ["8", 0], "filename_prefix": "p"}),
)


def test_stages_follow_classes_roles_and_neighbours():
    assert stages(API) == {
        "1": "Models", "2": "Source", "3": "Driver", "4": "Source", "5": "Source",
        "6": "Generate", "7": "Generate", "8": "Generate", "9": "Generate",
    }


def test_a_computed_layout_has_no_problem_and_grows_with_the_widgets():
    placed = layout(API, OBJECT_INFO, "a note " * 40, measured={})
    nodes = [(node_id, (x, y - TITLE_HEIGHT, w, h + TITLE_HEIGHT)) for node_id, (x, y) in placed.positions.items()
             for w, h in [placed.sizes[node_id]]]
    (x, y), (w, h) = placed.note
    nodes.append(("note", (x, y - TITLE_HEIGHT, w, h + TITLE_HEIGHT)))
    groups = [(g["title"], tuple(g["bounding"])) for g in placed.groups]
    assert [g for g, _ in groups] == ["Source", "Driver", "Models", "Generate"]
    assert layout_problems(nodes, groups, free={"note"}) == []
    # the upscaler's loader stacks with Generate; the upscaler and the save follow to the right
    assert placed.positions["7"][0] == placed.positions["6"][0] < placed.positions["8"][0] < placed.positions["9"][0]
    assert placed.sizes["1"][1] == estimated_min_size(OBJECT_INFO["PASLLoadModels"])[1] == 20 + 3 * 24 + 14
    bigger = dict(OBJECT_INFO, PASLLoadModels=_info([], ["a", "b", "c", "d", "e"], ["PASL_MODEL"]))
    assert layout(API, bigger, "note", measured={}).sizes["1"][1] == placed.sizes["1"][1] + 2 * 24


def test_a_measured_size_is_used_only_for_the_inputs_it_was_measured_with():
    from workflow_layout import signature

    info = OBJECT_INFO["PASLGenerate"]
    same = {"PASLGenerate": {"size": [250, 300], "signature": signature(info)}}
    assert layout(API, OBJECT_INFO, "n", measured=same).sizes["6"] == (320, 300)
    older = {"PASLGenerate": {"size": [250, 50], "signature": ["other"]}}
    assert layout(API, OBJECT_INFO, "n", measured=older).sizes["6"][1] == estimated_min_size(info)[1]


def test_problems_are_found():
    group = ("G", (0.0, 0.0, 500.0, 400.0))
    a = ("a", (10.0, GROUP_TITLE_HEIGHT + 10.0, 200.0, 100.0))
    assert layout_problems([a], [group]) == []
    overlapping = ("b", (150.0, GROUP_TITLE_HEIGHT + 60.0, 200.0, 100.0))
    assert any("overlap" in p for p in layout_problems([a, overlapping], [group]))
    too_close = ("c", (215.0, GROUP_TITLE_HEIGHT + 10.0, 200.0, 100.0))
    assert any("closer" in p for p in layout_problems([a, too_close], [group]))
    outside = ("d", (400.0, 300.0, 200.0, 200.0))
    assert any("inside 0 groups" in p for p in layout_problems([a, outside], [group]))
    under_title = ("e", (300.0, 5.0, 100.0, 100.0))
    assert any("inside 0 groups" in p for p in layout_problems([under_title], [group]))
    assert any("groups" in p for p in layout_problems([], [group, ("H", (400.0, 100.0, 300.0, 300.0))]))


# ----------------------------------------------------------------------------------------- the real frontend
@pytest.mark.host
def test_the_real_frontend_draws_them_without_overlap():
    """Every bundled workflow in ComfyUI's frontend (headless Chromium): no overlap, every node in a group,
    no node enlarged by the frontend, no page error; and the template browser lists them by their readable names
    and can fetch each one and its picture. Skips without chromium or ../shared/tools/cdp.py."""
    import frontend_check

    require_host()
    reason = frontend_check.unavailable_reason()
    if reason:
        pytest.skip(reason)
    results = frontend_check.run()
    assert sorted(results) == sorted([*(f"{name}.json" for name in TEMPLATE_NAMES.values()), "templates"])
    assert {name: problems for name, problems in results.items() if problems} == {}
