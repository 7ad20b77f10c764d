"""A person's photos as the 256 aligned crops training reads, made once.

Fine-tuning on "a folder of one person's photos" should not ask for a separate alignment step: photos that
are not yet 256x256 crops are aligned here, the way the pipeline aligns a source (largest face, the 5-point
similarity of :func:`pasl.align.align_faces`), into a crops folder next to the run's outputs. A folder that
already holds only 256x256 crops is used as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from ..atomic import atomic_output
from ..errors import PASLError
from ..geometry import ALIGNED_SIZE
from ..imageops import read_image, write_png
from .data import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

FACELESS_LIST = "faceless.txt"


def image_files(folder: Path) -> list[Path]:
    """The folder's images (no sub-folders), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def prepare_crops(folder: str | Path, out: str | Path, detector) -> Path:
    """``folder`` itself when every image is a 256x256 crop; else ``out`` filled with one aligned crop per photo
    that has a face (``<stem>.png``; kept from an earlier run), faceless photos left out, logged and listed in
    ``out/faceless.txt`` (so a later run, or another process, does not look again).

    Args:
        detector: a :class:`pasl.align.Detector`, or a callable returning one (called only when needed).
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise PASLError(f"image folder {folder} does not exist; give the folder of the person's photos or face crops.")
    files = image_files(folder)
    sizes = {p: Image.open(p).size for p in files}
    if files and all(size == (ALIGNED_SIZE, ALIGNED_SIZE) for size in sizes.values()):
        return folder
    from ..align import align_faces

    listed = out / FACELESS_LIST
    known_faceless = set(listed.read_text(encoding="utf-8").splitlines()) if listed.is_file() else set()
    todo = [p for p in files if not (out / f"{p.stem}.png").is_file() and p.name not in known_faceless]
    found = None
    faceless = []
    for path in todo:
        if found is None:  # only when a photo needs it: a later run loads no detector
            found = detector() if callable(detector) and not hasattr(detector, "detect") else detector
        alignment = align_faces(read_image(path), select="largest", detector=found, require_face=False)
        if not bool(alignment.has_face[0]):
            faceless.append(path.name)
            continue
        write_png(alignment.crops[0].cpu(), out / f"{path.stem}.png")
    if faceless:
        log.warning("no face found in %d photo(s) of %s, left out: %s", len(faceless), folder, ", ".join(faceless[:10]))
        with atomic_output(listed) as temporary:
            temporary.write_text("".join(f"{name}\n" for name in sorted(known_faceless | set(faceless))), encoding="utf-8")
    log.info("training on the aligned crops in %s", out)
    return out
