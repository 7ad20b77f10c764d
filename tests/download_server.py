"""A local HTTP server that answers like the services ``pasl.download`` talks to (no network in tests).

* Google Drive, under ``/drive``: ``uc?export=download&id=`` sends a small file at once, or for a
  "large" one the virus-scan page whose ``download-form`` leads to ``/drive/download?id=&export=
  download&confirm=t&uuid=`` (as ``drive.usercontent.google.com`` does), or the quota page;
  ``embeddedfolderview?id=`` lists a folder with Drive's ``flip-entry`` markup.
* Plain files under ``/files/<name>`` (FAN's site, DECA's GitHub data folder, the metric backbones' hosts).
* The FLAME server, ``POST /flame/download.php?domain=flame&sfile=FLAME2020.zip&resume=1`` with a
  form-encoded username and password: the archive, or a login page for a wrong login.

Every file answer honours ``Range: bytes=N-`` (206 + ``Content-Range``); :attr:`FakeServices.drops`
cuts the next answer of a file after some bytes (a dropped connection), once.
"""

from __future__ import annotations

import html
import http.server
import re
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

QUOTA_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>
<div class="uc-main"><div id="uc-text"><p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this time.</p>
<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try accessing the file again
later. If the file you are trying to access is particularly large or is shared with many people, it may take up to 24 hours to
be able to view or download the file. If you still can't access a file after 24 hours, contact your domain administrator.</p>
</div></div></body></html>"""

CONFIRM_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>
<p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id={id}">{name}</a> ({size})</span> is too large for
Google to scan for viruses. Would you still like to download this file?</p>
<form id="download-form" action="{action}" method="get"><input type="submit" id="uc-download-link"
class="goog-inline-block jfk-button jfk-button-action" value="Download anyway"/><input type="hidden" name="id" value="{id}">
<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="{uuid}"></form></div></div></body></html>"""

FOLDER_PAGE = """<!DOCTYPE html><html><head><title>{title}</title></head><body><div class="flip-entries">{entries}</div></body></html>"""
FOLDER_ENTRY = """<div class="flip-entry" id="entry-{id}" tabindex="0" role="link"><div class="flip-entry-info">
<a href="{href}" target="_blank"><div class="flip-entry-visual"><div class="flip-entry-visual-card"><div
class="flip-entry-thumb"><img src="https://drive-thirdparty.googleusercontent.com/64/type/{mime}" alt=""></div></div></div>
<div class="flip-entry-title">{name}</div></a></div><div class="flip-entry-last-modified"><div>Mar 5, 2024</div></div></div>"""

LOGIN_PAGE = """<!DOCTYPE html><html><head><title>FLAME - Login</title></head><body><form method="post" action="/login.php">
<input name="username"><input name="password" type="password"><p>Please log in.</p></form></body></html>"""


@dataclass
class FakeServices:
    drive_files: dict[str, tuple[str, Path]] = field(default_factory=dict)
    """Drive id -> (name, content)."""
    large: set[str] = field(default_factory=set)
    """Drive ids answered with the virus-scan confirmation page first."""
    quota: set[str] = field(default_factory=set)
    """Drive ids answered with the quota page."""
    folders: dict[str, list[tuple[str, str, bool]]] = field(default_factory=dict)
    """Drive folder id -> [(id, name, is_folder)]."""
    files: dict[str, Path] = field(default_factory=dict)
    """``/files/<name>`` -> content."""
    flame: tuple[str, str, Path] | None = None
    """(username, password, FLAME2020.zip)."""
    drops: dict[str, int] = field(default_factory=dict)
    """File name -> bytes sent before the connection is cut (once)."""
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    """(method, path with query, Range header) of every request."""
    uuids: dict[str, str] = field(default_factory=dict)


def _handler(services: FakeServices):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def _send_page(self, text: str, status: int = 200) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_file(self, name: str, path: Path) -> None:
            size = path.stat().st_size
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            start = int(match.group(1)) if match else 0
            if start >= size and match:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206 if match else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f"attachment; filename=\"{name}\"; filename*=UTF-8''{urllib.parse.quote(name)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(size - start))
            if match:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            cut = services.drops.pop(name, None)
            with open(path, "rb") as handle:
                handle.seek(start)
                sent = 0
                while block := handle.read(1 << 20):
                    if cut is not None and sent + len(block) >= cut:
                        self.wfile.write(block[: max(cut - sent, 0)])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(block)
                    sent += len(block)

        def _route(self, method: str) -> None:
            services.requests.append((method, self.path, self.headers.get("Range", "")))
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            base = f"http://{self.headers['Host']}"
            if method == "GET" and url.path == "/drive/uc":
                file_id = query.get("id", "")
                if file_id in services.quota:
                    return self._send_page(QUOTA_PAGE)
                if file_id not in services.drive_files:
                    return self._send_page("<html><body><p>Not Found</p></body></html>", 404)
                name, path = services.drive_files[file_id]
                if file_id in services.large:
                    token = services.uuids.setdefault(file_id, str(uuid.uuid4()))
                    page = CONFIRM_PAGE.format(id=file_id, name=html.escape(name), size="360M", uuid=token, action=f"{base}/drive/download")
                    return self._send_page(page)
                return self._send_file(name, path)
            if method == "GET" and url.path == "/drive/download":
                file_id = query.get("id", "")
                if file_id not in services.drive_files or query.get("confirm") != "t" or query.get("uuid") != services.uuids.get(file_id):
                    return self._send_page("<html><body><p>Bad request</p></body></html>", 400)
                return self._send_file(*services.drive_files[file_id])
            if method == "GET" and url.path == "/drive/embeddedfolderview":
                folder = services.folders.get(query.get("id", ""))
                if folder is None:
                    return self._send_page("<html><body><p>Not Found</p></body></html>", 404)
                entries = "".join(
                    FOLDER_ENTRY.format(
                        id=i, name=html.escape(n),
                        href=f"https://drive.google.com/drive/folders/{i}" if is_folder else f"https://drive.google.com/file/d/{i}/view?usp=drive_web",
                        mime="application/vnd.google-apps.folder" if is_folder else "application/octet-stream",
                    )
                    for i, n, is_folder in folder
                )
                return self._send_page(FOLDER_PAGE.format(title="Demo", entries=entries))
            if method == "GET" and url.path.startswith("/files/"):
                name = url.path[len("/files/"):]
                if name not in services.files:
                    return self._send_page("<html><body>404</body></html>", 404)
                return self._send_file(name, services.files[name])
            if method == "POST" and url.path == "/flame/download.php" and services.flame is not None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
                username, password, archive = services.flame
                if query != {"domain": "flame", "sfile": "FLAME2020.zip", "resume": "1"}:
                    return self._send_page("<html><body>unknown file</body></html>", 404)
                if form.get("username") != username or form.get("password") != password:
                    return self._send_page(LOGIN_PAGE)
                return self._send_file("FLAME2020.zip", archive)
            self._send_page("<html><body>404</body></html>", 404)

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

    return Handler


class Server:
    """:class:`FakeServices` served on ``127.0.0.1`` in a thread; ``env`` points ``pasl.download`` at it."""

    def __init__(self, services: FakeServices) -> None:
        self.services = services
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(services))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def env(self) -> dict[str, str]:
        return {
            "PASL_DRIVE_BASE_URL": f"{self.url}/drive",
            "PASL_FLAME_DOWNLOAD_URL": f"{self.url}/flame/download.php",
            "PASL_DECA_DATA_BASE_URL": f"{self.url}/files/",
            "PASL_DOWNLOAD_BASE_URL": f"{self.url}/files/",
            "PASL_EVAL_BASE_URL": f"{self.url}/files/",
        }
