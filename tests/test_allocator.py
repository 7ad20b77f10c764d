"""pasl.allocator: freed memory is reused instead of faulted in again, only where asked.

Each case runs in its own interpreter: the settings are process-wide and would change this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, resource, sys
from pasl.allocator import retain_freed_memory
took = retain_freed_memory()
import torch

def faults(nbytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(nbytes // 4)  # written in full, so every page is touched
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

# The first calls may each get fresh pages: a small allocation can land in a freed block and split it,
# so the heap grows a few times before a block of this size is free again; after that it is reused.
print(json.dumps({"took": took, "faults": [faults(128 * 2**20) for _ in range(16)]}))
"""


def _probe(switch: str | None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PASL_RETAIN_MEMORY" and not k.startswith("MALLOC_")}
    if switch is not None:
        env["PASL_RETAIN_MEMORY"] = switch
    env.update(extra)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_block_is_reused_without_page_faults():
    pages = 128 * 2**20 // 4096
    kept, default = _probe(None), _probe("0")
    assert kept["took"] is True and default["took"] is False
    assert min(default["faults"]) > pages // 2  # glibc unmapped the block: all of it faults in every time
    assert max(kept["faults"][-4:]) < pages // 100, kept["faults"]  # the heap kept it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's environment variables: Linux only")
def test_the_environment_variables_for_a_host_process_do_the_same():
    from pasl.allocator import HOST_ENVIRONMENT

    pages = 128 * 2**20 // 4096
    host = _probe("0", **HOST_ENVIRONMENT)  # our switch off: only glibc's own variables act
    assert host["took"] is False
    assert max(host["faults"][-4:]) < pages // 100, host["faults"]
    readme = (ROOT / "README.md").read_text()
    assert " ".join(f"{k}={v}" for k, v in HOST_ENVIRONMENT.items()) in readme  # what the README tells ComfyUI users


def test_every_command_line_asks_for_it_and_the_library_does_not():
    for entry in ("pasl/__main__.py", "pasl/bench/__main__.py", "pasl/eval/__main__.py", "pasl/train/__main__.py"):
        assert "retain_freed_memory()" in (ROOT / entry).read_text(), entry
    for path in list((ROOT / "pasl").rglob("*.py")) + list((ROOT / "nodes").rglob("*.py")):
        if path.name != "__main__.py" and path.name != "allocator.py":
            assert "retain_freed_memory" not in path.read_text(), path  # the nodes run inside ComfyUI's process
    assert 'pasl = "pasl.__main__:cli"' in (ROOT / "pyproject.toml").read_text()  # the console script too
