"""Where each node of an example workflow goes, so that nothing hides anything in ComfyUI's frontend.

The frontend draws a node's title bar *above* its ``pos`` and needs a minimum body height for its
sockets and widgets; a saved size below that is enlarged on load, so nodes placed on a fixed grid end up
on top of each other and hide their widgets. Here every node gets at least the size the frontend draws
(``tests/workflows/frontend_sizes.json``, measured in the real frontend by ``tests/frontend_check.py
--measure``; for a node whose inputs changed since, the frontend's own row formula), nodes are put in
titled groups by stage (Models, Source, Driver, Shape, Generate, Paste back, ...), the groups in columns
left to right, and the nodes inside a group in sub-columns by their order in the graph.

:func:`layout_problems` is the check: it is run on the saved files (``tests/test_workflow_layout.py``)
and on what the real frontend draws (``tests/frontend_check.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

SIZES_FILE = Path(__file__).resolve().parent / "workflows" / "frontend_sizes.json"

TITLE_HEIGHT = 30
"""``LiteGraph.NODE_TITLE_HEIGHT``: the title bar is drawn above a node's ``pos``."""
GROUP_TITLE_HEIGHT = 34
"""A group's title bar: its font size (24) * 1.4."""
SLOT_ROW, WIDGET_ROW, BODY_PADDING = 20, 24, 14
"""The frontend's minimum body height is ``SLOT_ROW * max(sockets, outputs) + WIDGET_ROW * widgets + BODY_PADDING``:
exact for every measured node with plain widgets (``frontend_sizes.json``), 8 px too much for one without widgets;
a text box (PreviewAny) is taller, which is why measured sizes come first."""
NODE_WIDTH = 320
PREVIEW_HEIGHT = {"LoadImage": 280, "SaveImage": 280, "PreviewImage": 280, "LoadVideo": 280, "SaveVideo": 280, "PreviewAny": 80}
"""Room below the widgets for what the node shows once it has run or a file is picked (an image, a video, text)."""
GAP_X, GAP_Y = 70, 36
"""Between two nodes of a group: across (room for the wires) and down (title bar to the node above)."""
GROUP_PADDING, GROUP_GAP = 24, 60
MARGIN = 10
""":func:`layout_problems`' smallest allowed distance between two node rectangles."""
UNMEASURED_MIN_HEIGHT = 88
"""A class the frontend was not measured with may be drawn as a "missing node" placeholder: 88 px at least."""
NOTE_MIN_HEIGHT = 88
"""The frontend's minimum body height of a Note."""


@dataclass(frozen=True)
class Stage:
    title: str
    column: int
    color: str


STAGES = [
    Stage("Source", 0, "#8A8"),
    Stage("Driver", 0, "#b58b2a"),
    Stage("Models", 1, "#3f789e"),
    Stage("Shape", 1, "#88A"),
    Stage("Reenact", 1, "#88A"),
    Stage("Animate", 1, "#88A"),
    Stage("Generate", 2, "#a1309b"),
    Stage("Video out", 2, "#b06634"),
    Stage("Paste back", 3, "#b06634"),
    Stage("Scores", 3, "#8AA"),
    Stage("Other", 4, "#444"),
]
"""In this order, top to bottom in each column (the loaders above the shape stage keep the picture wide, not tall)."""

CLASS_STAGES = {
    "PASLLoadModels": "Models",
    "PASLEncodeStyle": "Source",
    "PASLShapeRecompose": "Shape",
    "PASLShapeEdit": "Shape",
    "PASLAnimatePortrait": "Animate",
    "PASLShapeRender": "Shape",
    "PASLGenerate": "Generate",
    "PASLPasteBack": "Paste back",
    "PASLIdentityScore": "Scores",
    "PASLMetrics": "Scores",
    "PASLReenact": "Reenact",
    "CreateVideo": "Video out",
    "SaveVideo": "Video out",
}
"""Stages fixed by a node's class; other nodes follow their neighbours (see :func:`stages`)."""
INPUT_CLASSES = {"LoadImage", "LoadVideo", "GetVideoComponents", "PASLFaceAlign"}
"""Nodes that belong to the source or to the driver, depending on which input they end up in."""


# ----------------------------------------------------------------------------------------- stages
def _links(api: dict) -> list[tuple[str, str, str]]:
    """``(origin id, target id, target input name)`` for every link of an API prompt."""
    return [(str(v[0]), node_id, name) for node_id, spec in api.items() for name, v in spec["inputs"].items() if isinstance(v, list)]


def stages(api: dict) -> dict[str, str]:
    """The stage (a :data:`STAGES` title) of every node of an API prompt.

    By class (:data:`CLASS_STAGES`); an input node (:data:`INPUT_CLASSES`) is "Source" when what it feeds
    reaches an input named ``source*``, else "Driver"; any other node with linked inputs joins the stage of
    its first input that is not a bare loader; a node without linked inputs (a loader) joins its first consumer.
    """
    links = _links(api)
    consumers: dict[str, list[tuple[str, str]]] = {}
    for origin, target, name in links:
        consumers.setdefault(origin, []).append((target, name))
    origins = {node_id: [str(v[0]) for v in spec["inputs"].values() if isinstance(v, list)] for node_id, spec in api.items()}

    def feeds_source(node_id: str, seen: frozenset = frozenset()) -> bool:
        for target, name in consumers.get(node_id, []):
            if name.startswith("source"):
                return True
            if api[target]["class_type"] in INPUT_CLASSES and target not in seen and feeds_source(target, seen | {node_id}):
                return True
        return False

    result: dict[str, str] = {}

    def stage_of(node_id: str, seen: frozenset = frozenset()) -> str:
        if node_id in result:
            return result[node_id]
        kind = api[node_id]["class_type"]
        if kind in CLASS_STAGES:
            return CLASS_STAGES[kind]
        if kind in INPUT_CLASSES:
            return "Source" if feeds_source(node_id) else "Driver"
        seen = seen | {node_id}
        if origins[node_id]:
            candidates = [o for o in origins[node_id] if o not in seen and (origins[o] or api[o]["class_type"] in CLASS_STAGES)]
        else:
            candidates = [t for t, _ in consumers.get(node_id, []) if t not in seen]
        return stage_of(candidates[0], seen) if candidates else "Other"

    for node_id in api:
        result[node_id] = stage_of(node_id)
    return result


# ----------------------------------------------------------------------------------------- sizes
def _definition(info: dict) -> tuple[list[str], list[str]]:
    """``(socket-only input names, widget input names)`` of an ``/object_info`` entry, in frontend order."""
    from host_harness import widget_inputs

    widgets = widget_inputs(info)
    order = info.get("input_order") or {section: list(specs) for section, specs in (info.get("input") or {}).items()}
    names = [n for section in ("required", "optional") for n in order.get(section) or []]
    return [n for n in names if n not in widgets], widgets


def signature(info: dict) -> list[str]:
    """What a measured size depends on: the node's input names and output types."""
    sockets, widgets = _definition(info)
    return sockets + widgets + ["->"] + list(info.get("output") or [])


def estimated_min_size(info: dict) -> tuple[int, int]:
    """The frontend's minimum body size from the row formula (an upload button counts as a widget)."""
    sockets, widgets = _definition(info)
    uploads = sum(
        1
        for section in (info.get("input") or {}).values()
        for spec in section.values()
        if len(spec) > 1 and isinstance(spec[1], dict) and (spec[1].get("image_upload") or spec[1].get("video_upload"))
    )
    rows = max(len(sockets), len(info.get("output") or []))
    return 210, SLOT_ROW * rows + WIDGET_ROW * (len(widgets) + uploads) + BODY_PADDING


def load_measured() -> dict:
    return json.loads(SIZES_FILE.read_text()) if SIZES_FILE.is_file() else {}


def node_size(kind: str, title: str, info: dict, measured: dict) -> tuple[int, int]:
    """The size a node is saved with: at least what the frontend draws, plus room for its preview."""
    width, height = estimated_min_size(info)
    entry = measured.get(kind)
    if entry and entry["signature"] == signature(info):
        width, height = entry["size"]  # the frontend's own number (DOM widgets such as a text box differ)
    elif entry:
        width, height = max(width, entry["size"][0]), max(height, entry["size"][1])
    else:
        height = max(height, UNMEASURED_MIN_HEIGHT)
    width = max(NODE_WIDTH, math.ceil(width), 8 * len(title) + 60)
    return width, math.ceil(height) + PREVIEW_HEIGHT.get(kind, 0)


def note_size(text: str, width: int) -> tuple[int, int]:
    """A Note's rectangle (title bar included), tall enough for ``text`` at about 8 px per character, 20 px per line."""
    per_line = max(20, int((width - 40) / 8))
    lines = sum(max(1, math.ceil(len(paragraph) / per_line)) for paragraph in text.split("\n"))
    return width, TITLE_HEIGHT + max(NOTE_MIN_HEIGHT, 20 * lines + 30)


# ----------------------------------------------------------------------------------------- placement
@dataclass
class Group:
    stage: Stage
    nodes: list[str]
    columns: list[list[str]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    pos: tuple[int, int] = (0, 0)


@dataclass
class Layout:
    positions: dict[str, tuple[int, int]]
    sizes: dict[str, tuple[int, int]]
    groups: list[dict]
    note: tuple[tuple[int, int], tuple[int, int]]
    """``((x, y), (width, height))`` of the workflow's Note."""


def _local_depths(api: dict, members: list[str]) -> dict[str, int]:
    """Order inside a group: 1 + the deepest input that is in the same group."""
    inside = set(members)
    depth: dict[str, int] = {}

    def visit(node_id: str) -> int:
        if node_id not in depth:
            origins = [str(v[0]) for v in api[node_id]["inputs"].values() if isinstance(v, list) and str(v[0]) in inside]
            depth[node_id] = 1 + max((visit(o) for o in origins), default=-1)
        return depth[node_id]

    for node_id in members:
        visit(node_id)
    return depth


def layout(api: dict, object_info: dict, note: str, measured: dict | None = None) -> Layout:
    """Sizes and positions of every node, the groups' rectangles, and the Note's place above them."""
    measured = load_measured() if measured is None else measured
    sizes = {
        node_id: node_size(spec["class_type"], spec["_meta"]["title"], object_info[spec["class_type"]], measured)
        for node_id, spec in api.items()
    }
    stage_of = stages(api)
    groups = [Group(stage, [n for n in sorted(api, key=int) if stage_of[n] == stage.title]) for stage in STAGES]
    groups = [g for g in groups if g.nodes]
    positions: dict[str, tuple[int, int]] = {}
    for group in groups:
        depth = _local_depths(api, group.nodes)
        group.columns = [[n for n in group.nodes if depth[n] == d] for d in range(max(depth.values()) + 1)]
        widths = [max(sizes[n][0] for n in column) for column in group.columns]
        heights = [sum(TITLE_HEIGHT + sizes[n][1] for n in column) + GAP_Y * (len(column) - 1) for column in group.columns]
        group.size = (sum(widths) + GAP_X * (len(widths) - 1) + 2 * GROUP_PADDING, GROUP_TITLE_HEIGHT + max(heights) + 2 * GROUP_PADDING)

    columns = sorted({g.stage.column for g in groups})
    column_width = {c: max(g.size[0] for g in groups if g.stage.column == c) for c in columns}
    layout_width = sum(column_width.values()) + GROUP_GAP * (len(columns) - 1)
    note_box = note_size(note, min(900, layout_width))
    top = note_box[1] + GROUP_GAP
    x = 0
    for column in columns:
        y = top
        for group in (g for g in groups if g.stage.column == column):
            group.pos = (x, y)
            y += group.size[1] + GROUP_GAP
        x += column_width[column] + GROUP_GAP

    for group in groups:
        cx = group.pos[0] + GROUP_PADDING
        for members in group.columns:
            cy = group.pos[1] + GROUP_TITLE_HEIGHT + GROUP_PADDING
            for node_id in members:
                positions[node_id] = (cx, cy + TITLE_HEIGHT)
                cy += TITLE_HEIGHT + sizes[node_id][1] + GAP_Y
            cx += max(sizes[n][0] for n in members) + GAP_X
    frontend_groups = [
        {
            "id": index + 1,
            "title": group.stage.title,
            "bounding": [group.pos[0], group.pos[1], group.size[0], group.size[1]],
            "color": group.stage.color,
            "font_size": 24,
            "flags": {},
        }
        for index, group in enumerate(groups)
    ]
    return Layout(positions, sizes, frontend_groups, ((0, TITLE_HEIGHT), (note_box[0], note_box[1] - TITLE_HEIGHT)))


# ----------------------------------------------------------------------------------------- check
Rect = tuple[float, float, float, float]
"""``(x, y, width, height)``, as the frontend's ``getBounding()`` and a group's ``bounding``."""


def node_rect(node: dict) -> Rect:
    """A saved node's rectangle on the canvas, title bar included."""
    (x, y), (w, h) = node["pos"], node["size"]
    return (x, y - TITLE_HEIGHT, w, h + TITLE_HEIGHT)


def _overlap(a: Rect, b: Rect, margin: float) -> bool:
    return a[0] < b[0] + b[2] + margin and b[0] < a[0] + a[2] + margin and a[1] < b[1] + b[3] + margin and b[1] < a[1] + a[3] + margin


def _inside(inner: Rect, outer: Rect, top: float = 0.0) -> bool:
    return (
        inner[0] >= outer[0] and inner[1] >= outer[1] + top
        and inner[0] + inner[2] <= outer[0] + outer[2] and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def layout_problems(
    nodes: list[tuple[str, Rect]], groups: list[tuple[str, Rect]], free: set[str] = frozenset(), margin: float = MARGIN
) -> list[str]:
    """What hides what: node rectangles closer than ``margin``, groups that overlap, and nodes (except the
    names in ``free``, e.g. the Note) that are not inside exactly one group, below its title bar."""
    problems = []
    for i, (name_a, a) in enumerate(nodes):
        for name_b, b in nodes[i + 1 :]:
            if _overlap(a, b, margin):
                problems.append(f"nodes {name_a!r} and {name_b!r} overlap (or are closer than {margin:g} px): {a} / {b}")
    for i, (name_a, a) in enumerate(groups):
        for name_b, b in groups[i + 1 :]:
            if _overlap(a, b, 0):
                problems.append(f"groups {name_a!r} and {name_b!r} overlap: {a} / {b}")
    for name, rect in nodes:
        holders = [g for g, box in groups if _inside(rect, box, GROUP_TITLE_HEIGHT)]
        if name in free:
            if any(_overlap(rect, box, 0) for _, box in groups):
                problems.append(f"{name!r} overlaps a group")
        elif len(holders) != 1:
            problems.append(f"node {name!r} {rect} is inside {len(holders)} groups, not one")
    return problems
