"""Opt-in downloads: served from a local HTTP server, checksum-checked, atomic, offline-safe."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from pasl.__main__ import main as cli
from pasl.download import download, fetch
from pasl.errors import DownloadError


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
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


def test_unreachable_server_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(DownloadError, match="no network"):
        download("fan", tmp_path, base_url="http://127.0.0.1:9/")
    assert cli(["download", "fan", "--to", str(tmp_path)]) in (0, 2)  # 0 only where the real host is reachable


def test_only_public_files_can_be_downloaded(tmp_path):
    with pytest.raises(ValueError, match="must be fetched by hand"):
        download("aeg", tmp_path)
