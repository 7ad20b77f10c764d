"""Opt-in downloads: served from a local HTTP server, checksum-checked, atomic, offline-safe."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import urllib.error
from functools import partial

import pytest

import pasl.download
from pasl.__main__ import main as cli
from pasl.download import BASE_URL_ENV, FAN_BASE_URL, default_base_url, download, fetch
from pasl.errors import DownloadError


@pytest.fixture(autouse=True)
def _no_base_url_from_the_caller(monkeypatch):
    """Every test here chooses its own server; a ``PASL_DOWNLOAD_BASE_URL`` of the caller's is ignored."""
    monkeypatch.delenv(BASE_URL_ENV, raising=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_fetch_checks_the_sha256_prefix_in_the_name(server, tmp_path):
    root, url = server
    payload = b"weights" * 1000
    prefix = hashlib.sha256(payload).hexdigest()[:10]
    (root / f"model-{prefix}.pth").write_bytes(payload)
    (root / "model-0123456789.pth").write_bytes(payload)
    good = fetch(url + f"model-{prefix}.pth", tmp_path / "out" / f"model-{prefix}.pth")
    assert good.read_bytes() == payload
    with pytest.raises(DownloadError, match="did not match its checksum"):
        fetch(url + "model-0123456789.pth", tmp_path / "out" / "model-0123456789.pth")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"model-{prefix}.pth"]  # no partial file left


@pytest.fixture()
def refused_url():
    """A local URL that refuses connections: a port held bound (so no one else takes it) but not listening;
    also the error a connection to it raises."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        with pytest.raises(OSError) as refused:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        yield f"http://127.0.0.1:{port}/", refused.value
    finally:
        holder.close()


def test_base_url_comes_from_the_environment(monkeypatch):
    assert default_base_url() == FAN_BASE_URL
    monkeypatch.setenv(BASE_URL_ENV, "http://mirror.invalid/fan")
    assert default_base_url() == "http://mirror.invalid/fan/"
    monkeypatch.setenv(BASE_URL_ENV, "")
    assert default_base_url() == FAN_BASE_URL


def test_unreachable_server_is_one_clear_error(refused_url, tmp_path):
    url, _ = refused_url
    with pytest.raises(DownloadError, match="no network"):
        download("fan", tmp_path, base_url=url)
    assert list((tmp_path / "face_alignment").iterdir()) == []  # no partial file left


def test_cli_without_network_exits_2_with_one_line(refused_url, tmp_path, monkeypatch, capsys):
    url, error = refused_url
    monkeypatch.setenv(BASE_URL_ENV, url)
    assert cli(["download", "fan", "--to", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    folder = tmp_path / "face_alignment"
    assert out == ""
    assert err == (
        f"error: could not download {url}s3fd-619a316812.pth ({urllib.error.URLError(error)}); "
        f"no network? Put the file in {folder} by hand.\n"
    )
    assert list(folder.iterdir()) == []  # no partial file left


def test_cli_downloads_from_the_configured_server(server, tmp_path, monkeypatch, capsys):
    """The success path, offline: the catalogue's names are swapped for files whose sha256 prefix we can make."""
    root, url = server
    payloads = {"detector": b"s3fd" * 500, "landmarks": b"fan" * 700}
    names = tuple(f"{kind}-{hashlib.sha256(data).hexdigest()[:10]}.pth" for kind, data in payloads.items())
    for name, data in zip(names, payloads.values()):
        (root / name).write_bytes(data)
    monkeypatch.setitem(pasl.download.DOWNLOADS, "fan", ("face_alignment", names))
    monkeypatch.setenv(BASE_URL_ENV, url.rstrip("/"))  # the trailing slash is added
    assert cli(["download", "fan", "--to", str(tmp_path / "weights")]) == 0
    out, err = capsys.readouterr()
    targets = [tmp_path / "weights" / "face_alignment" / name for name in names]
    assert json.loads(out) == {"downloaded": [str(t) for t in targets]} and err == ""
    assert [t.read_bytes() for t in targets] == list(payloads.values())
    # files already there are kept: a second run needs no server
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9/")
    assert cli(["download", "fan", "--to", str(tmp_path / "weights")]) == 0


def test_only_public_files_can_be_downloaded(tmp_path):
    with pytest.raises(ValueError, match="must be fetched by hand"):
        download("aeg", tmp_path)
