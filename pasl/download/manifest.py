"""``downloads.json``: what ``python -m pasl download`` put in a weights folder, and from where.

One entry per file (path relative to the folder): the public source URL, the size, the sha256
and the date. A later run trusts a file only when its size and sha256 still match the entry,
so a file replaced or damaged since is checked again. Written atomically (:mod:`pasl.atomic`).
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

from ..atomic import atomic_output

log = logging.getLogger(__name__)

MANIFEST = "downloads.json"


def read(folder: Path) -> dict[str, dict]:
    """The entries of ``folder/downloads.json`` (none when it is missing or unreadable)."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("%s could not be read (%s); its files are checked again", path, err)
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def record(folder: Path, path: str, *, source: str, size: int, sha256: str, **extra: str) -> None:
    """Add or replace the entry of ``path`` (relative to ``folder``)."""
    files = read(folder)
    files[path] = {"source": source, "bytes": size, "sha256": sha256,
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **extra}
    text = json.dumps({"comment": "written by `python -m pasl download`", "files": dict(sorted(files.items()))}, indent=2)
    with atomic_output(folder / MANIFEST) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
