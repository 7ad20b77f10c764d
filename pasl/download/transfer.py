"""Resumable HTTP transfers into a ``.part`` file: the only place that reads bytes from the network.

A transfer that stops half-way (dropped connection, Ctrl-C, a closed laptop) leaves its
``.part`` file; the next attempt asks the server for the rest with an HTTP ``Range`` header,
so a large checkpoint is never fetched twice. Standard library only (``urllib``).
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import logging
import re
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..errors import DownloadError

log = logging.getLogger(__name__)

TIMEOUT_S = 60
"""Seconds without a byte before a connection counts as dropped."""
RETRIES = 3
"""Resumes tried within one run after a dropped connection, before giving up (the ``.part`` stays)."""
CHUNK = 1 << 20
USER_AGENT = f"pasl/{__version__} (python-urllib; https://github.com/AvLab-CV/PASL weights)"
PAGE_LIMIT = 4 << 20
"""Most bytes read from an HTML answer (a confirmation or error page, never a weight file)."""

Response = http.client.HTTPResponse
Opener = Callable[[int], Response]
"""Opens the source at a byte offset (0: from the start) and returns the server's answer."""


def make_session() -> urllib.request.OpenerDirector:
    """An opener that keeps cookies across the requests of one file (Drive's confirmation flow sets some)."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def open_url(session: urllib.request.OpenerDirector, url: str, *, offset: int = 0, data: bytes | None = None) -> Response:
    """GET (or POST ``data`` to) ``url``, asking for the bytes from ``offset`` on when it is not 0.

    HTTP errors raise :class:`urllib.error.HTTPError`; no connection raises :class:`urllib.error.URLError`.
    """
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return session.open(urllib.request.Request(url, data=data, headers=headers), timeout=TIMEOUT_S)


def is_html(response: Response) -> bool:
    """The server answered with a web page (a confirmation, login or error page), not with a file."""
    return response.headers.get_content_type() in ("text/html", "application/xhtml+xml")


def read_page(response: Response) -> str:
    """The text of an HTML answer (at most :data:`PAGE_LIMIT` bytes), connection closed."""
    with response:
        return response.read(PAGE_LIMIT).decode(response.headers.get_content_charset() or "utf-8", "replace")


def _total_size(response: Response, offset: int) -> int | None:
    """The complete file's size from ``Content-Range`` (a resumed answer) or ``Content-Length``."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _progress(total: int | None, initial: int, name: str):
    """A byte counter on stderr when it is a terminal (tqdm is a dependency of the package)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in requirements.txt
        return None
    if not sys.stderr.isatty():
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


def fetch_into(part: Path, open_at: Opener, name: str = "") -> int:
    """Fill ``part`` with the whole file, resuming from what ``part`` already holds; return its size.

    A connection that drops (or ends before the announced size) is resumed up to :data:`RETRIES`
    times; then :class:`~pasl.errors.DownloadError` is raised and ``part`` stays for a later run.
    A server that ignores ``Range`` (200 instead of 206) makes the transfer start again from 0. One
    that refuses the range (416) either says the file has exactly the ``.part``'s size (it was
    complete: a run stopped while checking it) or the ``.part`` is stale and is started again.
    """
    problem = "no answer"
    for attempt in range(RETRIES + 1):
        offset = part.stat().st_size if part.exists() else 0
        try:
            response = open_at(offset)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:
                err.close()
                if err.headers.get("Content-Range", "") == f"bytes */{offset}":
                    return offset  # already complete
                log.info("%s: the server refused to resume at byte %d; starting again", name, offset)
                part.unlink()
                continue
            raise
        with response:
            if offset and response.status != 206:
                offset = 0  # the server sends the whole file: start the .part again
            if attempt or offset:
                log.info("%s: resuming at byte %d", name, offset)
            total = _total_size(response, offset)
            dropped = False
            bar = _progress(total, offset, name)
            part.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to write
            try:
                with open(part, "ab" if offset else "wb") as out:
                    while True:
                        try:
                            block = response.read(CHUNK)
                        except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as err:
                            problem, dropped = f"the connection dropped ({err.__class__.__name__})", True
                            break
                        if not block:
                            break
                        out.write(block)
                        if bar is not None:
                            bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        size = part.stat().st_size
        if total is None and dropped:
            continue  # no announced size and a dropped connection: ask for the rest
        if total is None or size == total:
            return size
        if size > total:
            part.unlink()
            problem = f"the server sent {size} bytes for a file of {total}"
        else:
            problem = f"the connection dropped at byte {size} of {total}"
        log.info("%s: %s", name, problem)
    raise DownloadError(f"{problem}, {RETRIES + 1} times in a row")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file (checkpoints are hundreds of MB: read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
