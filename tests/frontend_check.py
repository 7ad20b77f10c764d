"""Load every bundled workflow in ComfyUI's real frontend and check that nothing hides anything.

Starts the real host (``host_harness.ComfyServer``, the frontend package it serves) and Debian's headless
``chromium``, driven through ``../shared/tools/cdp.py`` (the DevTools protocol). For each
``workflows/*.json`` it calls ``app.loadGraphData``, waits for the previews of the input images it puts in
``input/`` (and of a short video), and reads what the frontend drew: ``node.getBounding()`` (title bar included) and each group's
rectangle. :func:`workflow_layout.layout_problems` then says which nodes overlap or stand outside a
group, and a node the frontend had to enlarge (saved smaller than it draws it) is reported too.

    python tests/frontend_check.py                          # check; exit 1 on a problem
    python tests/frontend_check.py --screenshots docs/images # + one JPEG per workflow
    python tests/frontend_check.py --measure                 # rewrite tests/workflows/frontend_sizes.json

``--measure`` records each node class's minimum size (``node.computeSize()``, before any preview is shown: the
builder adds room for those) for ``workflow_builder``.
Test-time only, like ``cdp.py``: never shipped in the pack. ``tests/test_workflow_layout.py`` runs the check
under the ``host`` marker and skips without chromium or ``../shared/tools/cdp.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CDP_DIR = REPO.parent / "shared" / "tools"
sys.path.insert(0, str(HERE))

from host_harness import ComfyServer, free_port, load_json  # noqa: E402
from workflow_layout import SIZES_FILE, layout_problems, signature  # noqa: E402

SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no template browser at the first visit
    "Comfy.Workflow.ShowMissingNodesWarning": False,  # face_restore's facerestore_cf nodes are not installed here
    "Comfy.Workflow.ShowMissingModelsWarning": False,
    "Comfy.VueNodes.Enabled": False,  # the default canvas (LiteGraph) renderer
    "Comfy.Minimap.Visible": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # text even when zoomed out (for the screenshots)
}
WINDOW = (1920, 1080)
FIT_INSETS = (80, 120, 30, 30)
"""Left, top, right, bottom CSS px of the canvas that the side bar, the tabs and the Run bar cover."""
NOTE_TYPES = {"Note", "MarkdownNote"}

_READ_GRAPH = """
(() => ({
  nodes: app.graph._nodes.map(n => ({id: n.id, type: n.type, title: n.title, size: [...n.size],
    min: [...n.computeSize()], bounding: [...n.getBounding()], missing: !LiteGraph.registered_node_types[n.type]})),
  groups: app.graph._groups.map(g => ({title: g.title, bounding: [...g._bounding]})),
}))()
"""


def chromium() -> str | None:
    """The headless browser to drive, or None."""
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)


def unavailable_reason() -> str | None:
    """Why the frontend check cannot run here (no browser, no cdp.py), or None."""
    if chromium() is None:
        return "no chromium on PATH (Debian: apt-get install chromium)"
    if not (CDP_DIR / "cdp.py").is_file():
        return f"no {CDP_DIR / 'cdp.py'} (the DevTools client)"
    return None


def bundled_workflows() -> list[Path]:
    return sorted((REPO / "workflows").glob("*.json"))


def _write_inputs(base: Path, workflows: list[Path]) -> None:
    """A small picture (video) for every LoadImage (LoadVideo) value: the nodes show their previews as for a user."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from pasl.video import VideoWriter

    for path in workflows:
        for node in load_json(path)["nodes"]:
            if node["type"] in ("LoadImage", "LoadVideo"):
                target = base / "input" / node["widgets_values"][0]
                target.parent.mkdir(parents=True, exist_ok=True)
                if node["type"] == "LoadImage":
                    Image.new("RGB", (512, 512), (150, 120, 100)).save(target)
                else:
                    with VideoWriter(target, 10) as writer:
                        writer.write(np.full((10, 360, 640, 3), (100, 120, 150), np.uint8))


class Frontend:
    """ComfyUI's server and one headless Chromium page on it."""

    def __init__(self, base: Path):
        self.base = base
        self.server = ComfyServer(base)
        self.browser: subprocess.Popen | None = None
        self.page = None

    def start(self, workflows: list[Path], previews: bool = True) -> Frontend:
        sys.path.insert(0, str(CDP_DIR))
        from cdp import CDP

        if previews:
            _write_inputs(self.base, workflows)
        settings = self.base / "user" / "default" / "comfy.settings.json"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(SETTINGS))
        self.server.start()
        port = free_port()
        self.browser = subprocess.Popen(
            [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--remote-debugging-port={port}",
             f"--user-data-dir={self.base / 'chromium'}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.page = CDP.first_page(port)
        self.page.call("Runtime.enable")
        self.page.call("Page.enable")
        # the "Nodes 2.0" banner is dismissed in the browser's storage, not in the settings
        self.page.call("Page.addScriptToEvaluateOnNewDocument", source="localStorage.setItem('vueNodesBannerDismissed', 'true')")
        self.page.call("Page.navigate", url=self.server.url)
        deadline = time.monotonic() + 120
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the frontend did not start; page errors: {self.page.errors()}")
            time.sleep(0.5)
        self.page.pump(2.0)
        self.page.events.clear()  # the frontend's own start-up messages are not the workflows' problems
        return self

    def _ready(self) -> bool:
        try:
            return bool(self.page.js("!!(window.app && app.graph && app.canvas && window.LiteGraph)", timeout=10))
        except (RuntimeError, OSError):
            return False

    def load(self, workflow: dict, name: str) -> dict:
        """Load a saved workflow as a user opening it would, wait for its image previews, and read the graph."""
        self.page.js(f"app.loadGraphData({json.dumps(workflow)}, true, true, {json.dumps(name)})")
        self.page.js(
            "new Promise(done => { const t0 = Date.now(); const poll = () => {"
            " const waiting = app.graph._nodes.filter(n => n.type === 'LoadImage' && !(n.imgs && n.imgs.length && n.imgs[0].complete));"
            " if (!waiting.length || Date.now() - t0 > 10000) done(true); else setTimeout(poll, 100); }; poll(); })"
        )
        time.sleep(1.5)  # a video preview has no load flag to wait for
        return self.page.js(_READ_GRAPH)

    def screenshot(self, path: Path, quality: int = 70) -> Path:
        """The whole graph fitted into the window, as a JPEG."""
        import base64

        self.page.js(
            "(() => { const c = app.canvas; const b = app.graph._nodes.map(n => n.getBounding())"
            ".concat(app.graph._groups.map(g => [...g._bounding]));"
            " const x0 = Math.min(...b.map(r => r[0])), y0 = Math.min(...b.map(r => r[1]));"
            " const x1 = Math.max(...b.map(r => r[0] + r[2])), y1 = Math.max(...b.map(r => r[1] + r[3]));"
            f" const [l, t, r, d] = {list(FIT_INSETS)}; const w = c.canvas.clientWidth - l - r, h = c.canvas.clientHeight - t - d;"
            " const s = Math.min(w / (x1 - x0), h / (y1 - y0));"
            " c.ds.scale = s; c.ds.offset[0] = (l + (w - s * (x1 - x0)) / 2) / s - x0;"
            " c.ds.offset[1] = (t + (h - s * (y1 - y0)) / 2) / s - y0;"
            " c.setDirty(true, true); return s; })()"
        )
        time.sleep(0.5)
        rect = self.page.js("(() => { const r = app.canvas.canvas.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
        clip = {"x": rect[0], "y": rect[1], "width": rect[2], "height": rect[3], "scale": 1}
        data = self.page.call("Page.captureScreenshot", format="jpeg", quality=quality, clip=clip)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def stop(self) -> None:
        if self.browser is not None and self.browser.poll() is None:
            self.browser.terminate()
            try:
                self.browser.wait(20)
            except subprocess.TimeoutExpired:
                self.browser.kill()
                self.browser.wait(20)
        self.server.stop()


def graph_problems(graph: dict, saved: dict) -> list[str]:
    """Overlaps and group escapes in what the frontend drew, and nodes it drew larger than they were saved."""
    nodes = [(f"{n['id']} {n['title']}", tuple(n["bounding"])) for n in graph["nodes"]]
    free = {f"{n['id']} {n['title']}" for n in graph["nodes"] if n["type"] in NOTE_TYPES}
    problems = layout_problems(nodes, [(g["title"], tuple(g["bounding"])) for g in graph["groups"]], free=free)
    sizes = {n["id"]: n["size"] for n in saved["nodes"]}
    for node in graph["nodes"]:
        want = sizes[node["id"]]
        if node["size"][0] > want[0] + 0.5 or node["size"][1] > want[1] + 0.5:
            problems.append(f"node {node['id']} {node['title']!r} is drawn {node['size']}, saved {want}: the frontend enlarged it")
    if len(graph["groups"]) != len(saved["groups"]):
        problems.append(f"{len(graph['groups'])} groups drawn, {len(saved['groups'])} saved")
    return problems


def template_problems(frontend: Frontend, workflows: list[Path]) -> list[str]:
    """The template browser's view of the pack: its list (the card titles) and each card's .json and .jpg, fetched
    the way frontend 1.32 does (``/api/workflow_templates/<pack folder>/<name>.<ext>``; the names have spaces)."""
    from host_harness import PACK_NAME

    listed = frontend.page.js("fetch('/api/workflow_templates').then(r => r.json())").get(PACK_NAME, [])
    problems = [] if sorted(listed) == sorted(p.stem for p in workflows) else [f"templates listed: {sorted(listed)}"]
    for name in listed:
        for ext in ("json", "jpg"):
            url = f"/api/workflow_templates/{PACK_NAME}/{name}.{ext}"
            status = frontend.page.js(f"fetch({json.dumps(url)}).then(r => r.status)")
            if status != 200:
                problems.append(f"GET {url}: HTTP {status}")
    return problems


def run(screenshots: Path | None = None, measure: bool = False, workflows: list[Path] | None = None) -> dict[str, list[str]]:
    """``{workflow file name: problems}`` for every bundled workflow, and ``{"templates": problems}`` for the
    template browser's list (optionally screenshots and measurements)."""
    workflows = workflows or bundled_workflows()
    measured: dict = {}
    with tempfile.TemporaryDirectory() as base:
        frontend = Frontend(Path(base))
        try:
            frontend.start(workflows, previews=not measure)  # measured: the size before a picture is shown
            results = {"templates": template_problems(frontend, bundled_workflows())}
            for path in workflows:
                saved = load_json(path)
                graph = frontend.load(saved, path.stem)
                results[path.name] = graph_problems(graph, saved) + [f"page error: {e}" for e in frontend.page.errors()]
                frontend.page.events.clear()
                if screenshots is not None:
                    frontend.screenshot(screenshots / f"{path.stem.lower().replace(' ', '_')}.jpg")
                for node in graph["nodes"]:
                    info = frontend.server.object_info.get(node["type"])
                    if info is not None and not node["missing"] and node["type"] not in NOTE_TYPES:
                        width, height = measured.get(node["type"], {}).get("size", (0, 0))
                        measured[node["type"]] = {"size": [max(width, round(node["min"][0])), max(height, round(node["min"][1]))],
                                                  "signature": signature(info)}
        finally:
            frontend.stop()
    if measure:
        lines = [f"  {json.dumps(kind)}: {json.dumps(entry)}" for kind, entry in sorted(measured.items())]
        SIZES_FILE.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", type=Path, help="write <workflow>.jpg of each workflow here")
    parser.add_argument("--measure", action="store_true", help=f"rewrite {SIZES_FILE.relative_to(REPO)} from the frontend")
    parser.add_argument("workflows", nargs="*", type=Path, help="default: every workflows/*.json")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    results = run(args.screenshots, args.measure, [p.resolve() for p in args.workflows] or None)
    for name, problems in results.items():
        print(f"{'ok' if not problems else 'PROBLEMS'}: {name}")
        for problem in problems:
            print(f"    {problem}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
