"""Opt-in downloads of the weight files that are publicly downloadable (only the FAN detector's).

Nothing here runs unless a user asks (``python -m pasl download fan``). PASL, DECA and FLAME
weights are on Google Drive or behind a registration, so they are never fetched: the
catalogue tells the user where to get them. Files are verified against the sha256 prefix
in their names (torch hub's convention) before they are moved into place.

The files are fetched from :data:`FAN_BASE_URL`, or from the URL in the environment variable
``PASL_DOWNLOAD_BASE_URL`` when it is set (a mirror, or a local server in tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
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
BASE_URL_ENV = "PASL_DOWNLOAD_BASE_URL"
"""Environment variable that replaces :data:`FAN_BASE_URL` (same file names under it)."""
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


def default_base_url() -> str:
    """``$PASL_DOWNLOAD_BASE_URL`` (with a trailing ``/``) when set and not empty, else :data:`FAN_BASE_URL`."""
    url = os.environ.get(BASE_URL_ENV, "").strip()
    if not url:
        return FAN_BASE_URL
    return url if url.endswith("/") else url + "/"


def download(what: str, folder: str | Path, base_url: str | None = None) -> list[Path]:
    """Fetch the files of ``what`` into ``folder/<sub-folder>``; files already there are kept.

    ``base_url`` defaults to :func:`default_base_url`.
    """
    if what not in DOWNLOADS:
        raise ValueError(
            f"can only download {sorted(DOWNLOADS)}; PASL, DECA and FLAME weights must be fetched by hand (see weights/README.md)"
        )
    base_url = default_base_url() if base_url is None else base_url
    sub, names = DOWNLOADS[what]
    paths = []
    for name in names:
        target = Path(folder) / sub / name
        if not target.exists():
            log.info("downloading %s -> %s", base_url + name, target)
            fetch(base_url + name, target)
        paths.append(target)
    return paths
