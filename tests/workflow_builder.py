"""Build the UI-format example workflows (and their thumbnails) from the API-format twins.

The API twins in ``tests/workflows/*_api.json`` are the source of truth (they are what the
host tests run); this turns each into what ComfyUI's frontend saves, laid out by
``workflow_layout`` (nodes in titled groups by stage, sized as the frontend draws them), with a
Note explaining it, into ``workflows/<template name>.json`` + a ``.jpg`` thumbnail drawn from the
graph. ComfyUI lists the files of a pack's ``workflows/`` folder as templates and shows the file
name as the card's title (frontend 1.32: no title or description field for a pack's templates), so
the files have readable names (:data:`TEMPLATE_NAMES`). Run it against the real host (it reads
``/object_info`` for socket types and widget order)::

    python tests/workflow_builder.py        # needs the host: .ci/build_host python

The tests check the other direction: every UI workflow converts back to its twin
(``test_host_comfyui.py``), and nothing overlaps (``test_workflow_layout.py``; in the real frontend:
``tests/frontend_check.py``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path

from PIL import Image, ImageColor, ImageDraw

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

TEMPLATE_NAMES = {
    "photo_to_photo": "PASL photo to photo",
    "photo_to_video": "PASL photo to video",
    "upscale_faces": "PASL with an upscaler",
    "face_restore": "PASL with CodeFormer",
    "generate_from_maps": "PASL generate from maps",
    "head_editor": "PASL head editor",
    "animate_portrait": "PASL animate a portrait",
}
"""File name (without .json/.jpg) of each twin's UI workflow: the title of its template card in ComfyUI."""


def ui_path(name: str, suffix: str = ".json") -> Path:
    """``workflows/<template name><suffix>`` of the API twin ``tests/workflows/<name>_api.json``."""
    return REPO / "workflows" / f"{TEMPLATE_NAMES[name]}{suffix}"


NOTES = {
    "photo_to_photo": (
        "PASL, stage by stage: photo source + photo driver.\n\nPut the weights in ComfyUI/models/pasl/ "
        "(see the pack's weights/README.md). Face Align finds and aligns both faces; Pose-Adapted Encode reads the "
        "source's style; Shape Recompose puts the source's 3D face shape in the driver's pose and expression; "
        "Shape Render draws it as depth + landmark maps (saved too, to inspect); Generate paints the face; "
        "Paste Back blends it into the driving photo. With the PAE weights in models/pasl/POE/ (optional), "
        "Identity Score rates how much the result still looks like the source (1 = same embedding). PASL Metrics "
        "scores the generated face like the paper's benchmarks: head-pose error against the driver (ARD), expression "
        "and landmark error, identity similarity to the source."
    ),
    "photo_to_video": (
        "PASL on a video: one source photo, a driving video (core Load Video). PASL Reenact does every stage "
        "per chunk of frames; frames without a face pass through unchanged. The driver's audio and fps are kept "
        "(core Create Video / Save Video). Weights go in ComfyUI/models/pasl/."
    ),
    "upscale_faces": (
        "PASL + an upscaler: the 256x256 generated faces go through a core upscale model (any, e.g. "
        "realesr-general-x4v3.pth from github.com/xinntao/Real-ESRGAN/releases in models/upscale_models) "
        "before PASL Paste Back, which accepts faces of any square size."
    ),
    "face_restore": (
        "PASL + a face restorer: needs the facerestore_cf pack (github.com/mav-rik/facerestore_cf) and "
        "codeformer-v0.1.0.pth (github.com/sczhou/CodeFormer/releases) in models/facerestore_models. "
        "CodeFormer sharpens the generated 256x256 faces; PASL Paste Back puts them into the driving photo."
    ),
    "generate_from_maps": (
        "PASL Generate on its own: a source face crop plus your own depth map and landmark drawing "
        "(e.g. edited outputs of PASL Shape Render). Weights go in ComfyUI/models/pasl/."
    ),
    "head_editor": (
        "Turn a portrait's head (to full profile), open the jaw, change the expression: no driver needed.\n\n"
        "PASL Shape Edit reads the photo's 3D face and edits it (angles = set: these are the head's angles; add: turn "
        "by them); its preview shows the edited shape. Generate paints the source's face on it; Paste Back blends it "
        "into the photo with Shape Edit's mask (mask_space = crop), which also covers where the old face was."
    ),
    "animate_portrait": (
        "Animate one portrait along keyframes, no driving video: one keyframe per line, 'FRAME: yaw=.., pitch=.., "
        "roll=.., jaw=.., expression=.., smile=..' (degrees; fields left out keep the photo's). The head moves along "
        "the shortest arc between keyframes; Create Video sets the frame rate."
    ),
}

FOREIGN_OBJECT_INFO = {
    # facerestore_cf (mav-rik/facerestore_cf) is not installed where this runs; its two nodes' schema:
    "FaceRestoreModelLoader": {
        "input": {"required": {"model_name": [["codeformer-v0.1.0.pth"]]}},
        "input_order": {"required": ["model_name"]},
        "output": ["FACERESTORE_MODEL"],
        "output_name": ["FACERESTORE_MODEL"],
    },
    "FaceRestoreCFWithModel": {
        "input": {"required": {
            "facerestore_model": ["FACERESTORE_MODEL"], "image": ["IMAGE"],
            "facedetection": [["retinaface_resnet50", "retinaface_mobile0.25", "YOLOv5l", "YOLOv5n"]],
            "codeformer_fidelity": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1, "step": 0.05}],
        }},
        "input_order": {"required": ["facerestore_model", "image", "facedetection", "codeformer_fidelity"]},
        "output": ["IMAGE"],
        "output_name": ["IMAGE"],
    },
}


def _depths(api: dict) -> dict[str, int]:
    """Column of each node: 1 + the deepest of its inputs."""
    depth: dict[str, int] = {}

    def visit(node_id: str) -> int:
        if node_id not in depth:
            links = [v for v in api[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((visit(str(v[0])) for v in links), default=-1)
        return depth[node_id]

    for node_id in api:
        visit(node_id)
    return depth


def _widget_default(info: dict, name: str):
    """What a widget holds while a link drives it: the frontend keeps every widget in ``widgets_values``, the linked
    ones too (with their default), so the values after a linked widget stay in their places."""
    section = "required" if name in info["input"].get("required", {}) else "optional"
    spec = info["input"][section][name]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return options.get("default", spec[0][0] if isinstance(spec[0], list) else None)


def api_to_ui(api: dict, object_info: dict, note: str) -> dict:
    """The frontend "Save" form of an API prompt (version 0.4)."""
    from host_harness import widget_inputs
    from workflow_layout import layout

    depth = _depths(api)
    placed = layout(api, object_info, note)
    nodes, links = [], []
    outputs: dict[tuple[str, int], list[int]] = {}
    for node_id in sorted(api, key=lambda k: (depth[k], int(k))):
        spec = api[node_id]
        info = object_info[spec["class_type"]]
        widgets = widget_inputs(info)
        order = [n for section in ("required", "optional") for n in (info.get("input_order") or {}).get(section, [])]
        inputs = []
        for name in order:
            value = spec["inputs"].get(name)
            section = "required" if name in info["input"].get("required", {}) else "optional"
            kind = info["input"][section][name][0]
            kind = "COMBO" if isinstance(kind, list) else kind
            if name in widgets:
                entry = {"name": name, "type": kind, "widget": {"name": name}, "link": None}
            elif name in spec["inputs"]:
                entry = {"name": name, "type": kind, "link": None}
            else:
                continue  # an unconnected optional socket
            if isinstance(value, list):
                link_id = len(links) + 1
                origin, slot = str(value[0]), value[1]
                links.append(
                    [link_id, int(origin), slot, int(node_id), len(inputs), object_info[api[origin]["class_type"]]["output"][slot]]
                )
                outputs.setdefault((origin, slot), []).append(link_id)
                entry["link"] = link_id
            inputs.append(entry)
        values = [_widget_default(info, n) if isinstance(spec["inputs"].get(n), list) else spec["inputs"][n] for n in widgets]
        if spec["class_type"] == "LoadImage":
            values.append("image")  # the upload button's stored value
        nodes.append(
            {
                "id": int(node_id),
                "type": spec["class_type"],
                "pos": list(placed.positions[node_id]),
                "size": list(placed.sizes[node_id]),
                "flags": {},
                "order": len(nodes),
                "mode": 0,
                "inputs": inputs,
                "outputs": [{"name": name, "type": kind, "links": None} for name, kind in zip(info["output_name"], info["output"])],
                "title": spec["_meta"]["title"],
                "properties": {"Node name for S&R": spec["class_type"]},
                "widgets_values": values,
            }
        )
    for node in nodes:
        for slot, output in enumerate(node["outputs"]):
            output["links"] = outputs.get((str(node["id"]), slot))
    note_id = max(int(k) for k in api) + 1
    nodes.append(
        {
            "id": note_id,
            "type": "Note",
            "pos": list(placed.note[0]),
            "size": list(placed.note[1]),
            "flags": {},
            "order": len(nodes),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "title": "About this workflow",
            "properties": {},
            "widgets_values": [note],
        }
    )
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, note)),
        "revision": 0,
        "last_node_id": note_id,
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": placed.groups,
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}},
        "version": 0.4,
    }


def thumbnail(ui: dict, path: Path, size: tuple[int, int] = (640, 360)) -> None:
    """A screenshot-style picture of the graph: dark canvas, the stage groups, node boxes, wires."""
    from workflow_layout import node_rect

    boxes = [node_rect(n) for n in ui["nodes"]] + [tuple(g["bounding"]) for g in ui["groups"]]
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    scale = min((size[0] - 20) / (right - left), (size[1] - 20) / (bottom - top))
    at = lambda x, y: (10 + (x - left) * scale, 10 + (y - top) * scale)  # noqa: E731
    image = Image.new("RGB", size, (32, 32, 36))
    draw = ImageDraw.Draw(image)
    for group in ui["groups"]:
        x, y, w, h = group["bounding"]
        color = ImageColor.getrgb(group["color"])
        draw.rectangle([at(x, y), at(x + w, y + h)], fill=tuple(c // 4 + 24 for c in color), outline=color)
        draw.text(at(x + 8, y + 6), group["title"], fill=(235, 235, 235))
    by_id = {n["id"]: n for n in ui["nodes"]}
    for _, origin, _, target, _, _ in ui["links"]:
        a, b = by_id[origin], by_id[target]
        draw.line([at(a["pos"][0] + a["size"][0], a["pos"][1] + 10), at(b["pos"][0], b["pos"][1] + 10)], fill=(120, 170, 220), width=1)
    for node in ui["nodes"]:
        x, y, w, h = node_rect(node)
        pasl = node["type"].startswith("PASL")
        draw.rounded_rectangle([at(x, y), at(x + w, y + h)], radius=3, fill=(58, 52, 84) if pasl else (53, 53, 58), outline=(90, 90, 100))
        x0, y0 = at(x, y)
        draw.text((x0 + 3, y0 + 1), (node.get("title") or node["type"])[: max(4, int(w * scale / 6))], fill=(235, 235, 235))
    image.save(path, quality=90)


def main() -> int:
    from host_harness import ComfyServer, require_host

    require_host()
    with tempfile.TemporaryDirectory() as base:
        server = ComfyServer(Path(base)).start()
        try:
            object_info = {**FOREIGN_OBJECT_INFO, **server.object_info}
        finally:
            server.stop()
    for twin in sorted((HERE / "workflows").glob("*_api.json")):
        name = twin.name[: -len("_api.json")]
        ui = api_to_ui(json.loads(twin.read_text()), object_info, NOTES[name])
        ui_path(name).write_text(json.dumps(ui, indent=1) + "\n")
        thumbnail(ui, ui_path(name, ".jpg"))
        print("wrote", ui_path(name).relative_to(REPO))
    expected = {ui_path(name, suffix) for name in TEMPLATE_NAMES for suffix in (".json", ".jpg")}
    for stale in sorted({*(REPO / "workflows").glob("*.json"), *(REPO / "workflows").glob("*.jpg")} - expected):
        stale.unlink()  # a template that was renamed or removed: ComfyUI would still list it
        print("removed", stale.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
