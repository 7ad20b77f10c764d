"""FLAME 2020 with the user's own registration at https://flame.is.tue.mpg.de.

The licence forbids redistribution, so each user logs in with their own account, as DECA's
``fetch_data.sh`` does: the username and password are POSTed (form-encoded) to the download
URL of ``FLAME2020.zip``, which answers with the archive (and honours ``Range``), or with a web
page when the login is refused. The credentials come from ``PASL_FLAME_USERNAME`` /
``PASL_FLAME_PASSWORD`` or from a prompt (the password is not echoed); they live only in memory
for the request and are never written anywhere, logged, or put in a URL or a message.
``PASL_FLAME_DOWNLOAD_URL`` replaces :data:`FLAME_URL` (a local server in the tests).
"""

from __future__ import annotations

import getpass
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import DownloadError
from .transfer import Response, is_html, open_url, read_page

FLAME_URL = "https://download.is.tue.mpg.de/download.php"
FLAME_URL_ENV = "PASL_FLAME_DOWNLOAD_URL"
"""Replaces :data:`FLAME_URL` (for tests)."""
FLAME_QUERY = {"domain": "flame", "sfile": "FLAME2020.zip", "resume": "1"}
FLAME_PAGE = "https://flame.is.tue.mpg.de/download.php"
"""Where a registered user downloads FLAME2020.zip by hand."""
USERNAME_ENV = "PASL_FLAME_USERNAME"
PASSWORD_ENV = "PASL_FLAME_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def login_available(env: Mapping[str, str] | None = None) -> bool:
    """A login can be had without failing: both variables are set, or there is a terminal to ask on."""
    env = os.environ if env is None else env
    return bool(env.get(USERNAME_ENV, "").strip() and env.get(PASSWORD_ENV, "")) or sys.stdin.isatty()


def credentials(env: Mapping[str, str] | None = None, interactive: bool | None = None) -> Credentials:
    """The user's FLAME login: from the environment, else asked for on the terminal (password hidden)."""
    env = os.environ if env is None else env
    username, password = env.get(USERNAME_ENV, "").strip(), env.get(PASSWORD_ENV, "")
    if username and password:
        return Credentials(username, password)
    interactive = sys.stdin.isatty() if interactive is None else interactive
    if not interactive:
        raise DownloadError(
            f"FLAME needs your own login at https://flame.is.tue.mpg.de (free registration): set {USERNAME_ENV} and "
            f"{PASSWORD_ENV}, or run the command in a terminal to be asked"
        )
    print("FLAME 2020 is downloaded with your own account at https://flame.is.tue.mpg.de (free registration, "
          "non-commercial licence); the password is not stored.", file=sys.stderr)
    username = username or input("FLAME username (e-mail): ").strip()
    password = password or getpass.getpass("FLAME password: ")
    if not username or not password:
        raise DownloadError("no FLAME username or password given")
    return Credentials(username, password)


def download_url() -> str:
    base = os.environ.get(FLAME_URL_ENV, "").strip() or FLAME_URL
    return f"{base}?{urllib.parse.urlencode(FLAME_QUERY)}"


def open_archive(session: urllib.request.OpenerDirector, login: Credentials, offset: int = 0) -> Response:
    """The server's answer carrying ``FLAME2020.zip`` from ``offset`` on; a refused login raises :class:`DownloadError`."""
    body = urllib.parse.urlencode({"username": login.username, "password": login.password}).encode()
    refused = DownloadError(
        "the FLAME server did not accept the username and password (check them at https://flame.is.tue.mpg.de, "
        "where the account must have accepted the FLAME licence)"
    )
    try:
        response = open_url(session, download_url(), offset=offset, data=body)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise refused from None
        raise
    if is_html(response):
        read_page(response)
        raise refused
    return response
