"""Opt-in downloads of the weight files that are publicly downloadable (only the FAN detector's).

Nothing here runs unless a user asks (``python -m pasl download fan``). PASL, DECA and FLAME
weights are on Google Drive or behind a registration, so they are never fetched: the
catalogue tells the user where to get them. Files are verified against the sha256 prefix
in their names (torch hub's convention) before they are moved into place.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DownloadError

log = logging.getLogger(__name__)

FAN_BASE_URL = "https://www.adrianbulat.com/downloads/python-fan/"
DOWNLOADS = {
    "fan": ("face_alignment", ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")),
}
"""What ``download`` can fetch: name -> (sub-folder, file names under :data:`FAN_BASE_URL`)."""
TIMEOUT_S = 30


def _expected_prefix(name: str) -> str | None:
    match = re.search(r"-([0-9a-f]{8,})\.", name)
    return match.group(1) if match else None


def fetch(url: str, destination: Path) -> Path:
    """Download ``url`` to ``destination`` (atomically), checking the sha256 prefix in the file name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, suffix=".part") as part:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                while block := response.read(1 << 20):
                    digest.update(block)
                    part.write(block)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            Path(part.name).unlink(missing_ok=True)
            raise DownloadError(f"could not download {url} ({err}); no network? Put the file in {destination.parent} by hand.") from None
    prefix = _expected_prefix(destination.name)
    if prefix and not digest.hexdigest().startswith(prefix):
        Path(part.name).unlink(missing_ok=True)
        raise DownloadError(f"{url} did not match its checksum (sha256 {digest.hexdigest()[:12]}…, expected {prefix}…); not saved.")
    shutil.move(part.name, destination)
    return destination


def download(what: str, folder: str | Path, base_url: str = FAN_BASE_URL) -> list[Path]:
    """Fetch the files of ``what`` into ``folder/<sub-folder>``; files already there are kept."""
    if what not in DOWNLOADS:
        raise ValueError(f"can only download {sorted(DOWNLOADS)}; PASL, DECA and FLAME weights must be fetched by hand (see weights/README.md)")
    sub, names = DOWNLOADS[what]
    paths = []
    for name in names:
        target = Path(folder) / sub / name
        if not target.exists():
            log.info("downloading %s -> %s", base_url + name, target)
            fetch(base_url + name, target)
        paths.append(target)
    return paths
