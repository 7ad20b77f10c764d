"""Shared plumbing for the scripts that make ``tests/golden/*.npz``.

Every script runs the *official* code from a checkout given on the command line
(``--official PATH``; nothing official is copied into this repository), on the same
synthetic weights and inputs the tests build (``tests/*_synthetic.py``), and writes
an ``.npz`` whose ``provenance`` entry is a JSON string: official repository and
commit, the official files used (with their git blob hashes, so a checkout without
``.git`` can still be checked), this script, the command line, the inputs and seeds,
library versions, and any import stubs.

Modes (all scripts):

* default: write a fresh file to ``--out`` (default: ``$TMPDIR/<name>.npz``, never
  the stored golden file unless ``--out`` names it);
* ``--verify``: compare the fresh arrays with the stored golden file, bit for bit;
  exit 1 on any difference;
* ``--stamp``: ``--verify``, then, only if every array is identical, add (or
  replace) the ``provenance`` entry in the stored golden file; the other zip members
  are copied as they are (same bytes, same compression). A free-text ``provenance``
  written by an earlier session is kept inside the new record as ``earlier_note``; a
  ``source`` note is left as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MAKE_DIR = Path(__file__).resolve().parent
GOLDEN_DIR = MAKE_DIR.parent
TESTS_DIR = GOLDEN_DIR.parent
REPO_ROOT = TESTS_DIR.parent


def repo_paths() -> None:
    """Make ``pasl`` and the test helpers (``synthetic``, ``fan_synthetic``...) importable."""
    for p in (str(TESTS_DIR), str(REPO_ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)


def parser(name: str, description: str, official_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"tests/golden/make/{name}.py",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--official", required=True, type=Path, help=official_help)
    p.add_argument(
        "--official-commit",
        default=None,
        help="commit of the checkout when it has no .git (e.g. made with git archive); "
        "read with 'git rev-parse HEAD' otherwise",
    )
    p.add_argument("--out", type=Path, default=None, help=f"where to write (default: $TMPDIR/{name}.npz; never the stored golden file)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true", help=f"compare with tests/golden/{name}.npz bit for bit")
    mode.add_argument(
        "--stamp",
        action="store_true",
        help=f"verify, then add the provenance entry to tests/golden/{name}.npz (only when identical)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave torch's choice)")
    return p


def git_blob_sha1(path: Path) -> str:
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def checkout_commit(path: Path, given: str | None) -> str:
    if given:
        return given
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except Exception:
        return "unknown (pass --official-commit)"


def versions(*modules: str) -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "torch", *modules):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = __import__(name)
            except Exception:
                continue
        out[name] = str(getattr(mod, "__version__", "?"))
    try:
        import torch

        out["torch_threads"] = str(torch.get_num_threads())
    except Exception:
        pass
    return out


def official_entry(repo: str, checkout: Path, commit: str | None, files: list[str]) -> dict:
    checkout = Path(checkout)
    return {
        "repo": repo,
        "commit": checkout_commit(checkout, commit),
        "files": {f: git_blob_sha1(checkout / f) for f in files if (checkout / f).is_file()},
    }


def provenance(name: str, official: list[dict], inputs: dict, stubs: list[str] | None = None,
               notes: str = "", modules: tuple[str, ...] = ()) -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        script_rel = str(script.relative_to(REPO_ROOT))
    except ValueError:
        script_rel = str(script)
    argv = [script_rel, *sys.argv[1:]]
    record = {
        "golden": f"tests/golden/{name}.npz",
        "script": script_rel,
        "command": "python " + shlex.join(argv),
        "official": official,
        "inputs": inputs,
        "stubs": stubs or [],
        "versions": versions(*modules),
    }
    if notes:
        record["notes"] = notes
    return json.dumps(record, sort_keys=True)


NOTES = ("provenance", "source")
"""Text entries, not compared: ``source`` (a free-text note some earlier files carry, kept
as it is) and ``provenance``."""


def _npy_bytes(array) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def compare(arrays: dict, golden: Path) -> list[str]:
    """Names of the arrays that differ (dtype, shape or any bit) from the stored file."""
    import numpy as np

    stored = np.load(golden, allow_pickle=False)
    problems = []
    keys = set(stored.files) - set(NOTES)
    for key in sorted(keys | set(arrays)):
        if key in NOTES:
            continue
        if key not in arrays:
            problems.append(f"{key}: stored but not made")
            continue
        if key not in keys:
            problems.append(f"{key}: made but not stored")
            continue
        a, b = np.asarray(arrays[key]), stored[key]
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{key}: {a.dtype}{a.shape} != stored {b.dtype}{b.shape}")
        elif a.tobytes() != b.tobytes():
            if a.dtype.kind in "fc":
                diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
                problems.append(f"{key}: values differ (max abs diff {np.nanmax(diff):.3g}, {int((diff > 0).sum())} elements)")
            else:
                problems.append(f"{key}: values differ ({int((a != b).sum())} elements)")
    return problems


def stamp(golden: Path, record: str) -> None:
    """Add/replace ``provenance.npy`` in ``golden``; other members copied byte for byte."""
    import numpy as np

    stored = np.load(golden, allow_pickle=False)
    if "provenance" in stored.files:  # keep an earlier free-text note inside the new record
        old = str(stored["provenance"])
        try:
            json.loads(old)
        except ValueError:
            record = json.dumps({**json.loads(record), "earlier_note": old}, sort_keys=True)
    payload = _npy_bytes(np.array(record))
    tmp = golden.with_suffix(".stamping")
    with zipfile.ZipFile(golden) as src, zipfile.ZipFile(tmp, "w") as dst:
        compress = zipfile.ZIP_STORED
        for info in src.infolist():
            compress = info.compress_type
            if info.filename == "provenance.npy":
                continue
            dst.writestr(info, src.read(info.filename), compress_type=info.compress_type)
        new = zipfile.ZipInfo("provenance.npy", date_time=(1980, 1, 1, 0, 0, 0))
        dst.writestr(new, payload, compress_type=compress)
    os.replace(tmp, golden)


def finish(name: str, args: argparse.Namespace, arrays: dict, record: str) -> int:
    """Write / verify / stamp according to the mode; return the exit status."""
    import numpy as np

    golden = GOLDEN_DIR / f"{name}.npz"
    if args.verify or args.stamp:
        problems = compare(arrays, golden)
        if problems:
            print(f"{golden.name}: NOT identical to the stored file:")
            for line in problems:
                print("  " + line)
            return 1
        print(f"{golden.name}: all {len(arrays)} arrays identical to the stored file, bit for bit")
        if args.stamp:
            stamp(golden, record)
            after = compare(arrays, golden)
            assert not after, after
            print(f"{golden.name}: provenance entry written")
        return 0
    out = args.out or Path(tempfile.gettempdir()) / f"{name}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays, provenance=np.array(record))
    print(f"wrote {out}")
    return 0
