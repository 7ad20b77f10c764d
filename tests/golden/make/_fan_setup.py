"""Import face_alignment 1.1.1 from a given folder with the synthetic S3FD / 2D-FAN-4 weights.

face_alignment 1.1.1 fetches its weights with ``torch.utils.model_zoo.load_url``, which
looks in ``$TORCH_HOME/hub/checkpoints/<file name>`` first. The synthetic files of
``tests/fan_synthetic.py`` (``write_fan_files``: S3FD seed 11, FAN seed 12) carry the
official file names, so they are written there, in a temporary ``TORCH_HOME``, and the
official code loads them as it would load the real ones (no download, no code change).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def prepare(torch_home: Path) -> None:
    """Write the synthetic weights under ``torch_home`` and point torch.hub at it."""
    import torch

    from fan_synthetic import write_fan_files  # this repo's test helper

    folder = write_fan_files(torch_home / "weights")
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        shutil.copyfile(path, checkpoints / path.name)
    os.environ["TORCH_HOME"] = str(torch_home)
    torch.hub.set_dir(str(torch_home / "hub"))


def import_face_alignment(package_parent: Path):
    """``import face_alignment`` from ``package_parent`` (a PASL checkout or an unpacked sdist/wheel)."""
    sys.path.insert(0, str(Path(package_parent).resolve()))
    import face_alignment

    where = Path(face_alignment.__file__).resolve().parent
    if where.parent != Path(package_parent).resolve():
        raise SystemExit(f"face_alignment was imported from {where}, not from {package_parent}")
    return face_alignment
