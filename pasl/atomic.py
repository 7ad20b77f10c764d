"""Writing a file all at once: it appears complete at its path, or not at all.

Used for every output of a run (:mod:`pasl.files`) and every converted weight file
(:func:`pasl.weights.save_converted`), so an interrupted write never leaves a truncated file
that a later run would mistake for a good one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same folder, same suffix, so writers pick the same
    format) and move it onto ``path`` only when the block ends normally.

    On any exception, Ctrl-C included, the temporary file and the folders this call created are
    removed: a failed run leaves nothing behind, and an earlier ``path`` is never half overwritten.
    """
    path = Path(path)
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name, created by the writer itself, so the file gets the usual permissions (mkstemp's are 0600)
    temporary = path.parent / f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}"
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        remove_empty(created)
        raise


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created (deepest first), where they are still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()
