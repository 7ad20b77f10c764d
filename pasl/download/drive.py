"""Google Drive's public pages: a shared file's bytes and a shared folder's listing, with ``urllib``.

What Drive answers (the pages a browser sees, as of 2025):

* ``https://drive.google.com/uc?export=download&id=ID`` redirects to
  ``https://drive.usercontent.google.com/download?id=ID&export=download``, which sends a small
  file at once (``Content-Disposition: attachment``);
* for a large file (more than about 100 MB, too big for its virus scan) it sends an HTML page,
  "Google Drive can't scan this file for viruses", whose ``<form id="download-form">`` (action
  ``.../download``, hidden ``id``, ``export``, ``confirm``, ``uuid``) leads to the file; older pages
  had an ``href="/uc?export=download&confirm=...&id=..."`` link instead;
* when a file was fetched too often it sends an error page, "Too many users have viewed or
  downloaded this file recently" (a daily quota), and for a file that is not shared (any more)
  a sign-in page;
* ``https://drive.google.com/embeddedfolderview?id=ID`` lists a shared folder as plain HTML:
  one link per entry, ``/file/d/ID/view`` for a file and ``/drive/folders/ID`` for a folder,
  the name in the link's ``flip-entry-title``.

The bytes themselves accept ``Range`` requests, so a large file resumes where it stopped.
``PASL_DRIVE_BASE_URL`` replaces ``https://drive.google.com`` (a local server in the tests).
"""

from __future__ import annotations

import html.parser
import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ..errors import DownloadError
from .transfer import Response, is_html, open_url, read_page

DRIVE_URL = "https://drive.google.com"
DRIVE_URL_ENV = "PASL_DRIVE_BASE_URL"
"""Replaces :data:`DRIVE_URL` (for tests: a local server that imitates Drive's pages)."""
QUOTA_PHRASES = ("Too many users have viewed or downloaded this file recently", "download quota")
HOPS = 4
"""Pages followed before the file (the confirmation page is one)."""


def base_url() -> str:
    """``$PASL_DRIVE_BASE_URL`` without a trailing ``/`` when set, else :data:`DRIVE_URL`."""
    return (os.environ.get(DRIVE_URL_ENV, "").strip() or DRIVE_URL).rstrip("/")


def view_url(file_id: str) -> str:
    """The page a person opens to download a file by hand."""
    return f"{DRIVE_URL}/file/d/{file_id}/view"


def folder_url(folder_id: str) -> str:
    """The page a person opens to see a folder."""
    return f"{DRIVE_URL}/drive/folders/{folder_id}"


def download_url(file_id: str) -> str:
    """Where the download of a file starts."""
    return f"{base_url()}/uc?export=download&id={urllib.parse.quote(file_id)}"


class _PageParser(html.parser.HTMLParser):
    """The parts of a Drive page that matter here: the download form, confirm links, error text, folder entries."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form_action: str | None = None
        self.form_fields: dict[str, str] = {}
        self.confirm_href: str | None = None
        self.error_text: list[str] = []
        self.entries: list[tuple[str, str, list[str], list[str]]] = []  # href, kind, title parts, all text
        self._in_form = self._in_error = False
        self._entry: tuple[str, str, list[str], list[str]] | None = None
        self._title_depth = 0
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "form" and a.get("id") == "download-form":
            self.form_action, self._in_form = a.get("action", ""), True
        elif tag == "input" and self._in_form and a.get("type") == "hidden" and a.get("name"):
            self.form_fields[a["name"]] = a.get("value", "")
        elif tag == "a":
            href = a.get("href", "")
            if "export=download" in href and "confirm=" in href and self.confirm_href is None:
                self.confirm_href = href
            kind = "file" if re.search(r"/file/d/[-\w]{10,}", href) else "folder" if re.search(r"/folders/[-\w]{10,}", href) else None
            if kind:
                self._entry = (href, kind, [], [])
        elif tag == "p" and "uc-error-subcaption" in classes:
            self._in_error = True
        if self._entry is not None and tag == "div":
            self._depth += 1
            if "flip-entry-title" in classes:
                self._title_depth = self._depth

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "p":
            self._in_error = False
        elif tag == "a" and self._entry is not None:
            self.entries.append(self._entry)
            self._entry, self._depth, self._title_depth = None, 0, 0
        elif tag == "div" and self._entry is not None:
            if self._depth == self._title_depth:
                self._title_depth = 0
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error_text.append(data)
        if self._entry is not None:
            self._entry[3].append(data)
            if self._title_depth:
                self._entry[2].append(data)


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def next_url(page: str, page_url: str) -> str:
    """Where a Drive page that is not the file leads to the file, or a :class:`DownloadError` saying why not."""
    if any(phrase.lower() in page.lower() for phrase in QUOTA_PHRASES):
        raise DownloadError(
            "Google Drive refuses it for now: too many users have downloaded this file recently (Drive's daily "
            "quota); try again in a few hours"
        )
    parsed = _parse(page)
    if parsed.form_action:
        action = urllib.parse.urljoin(page_url, parsed.form_action)
        joiner = "&" if "?" in action else "?"
        return action + joiner + urllib.parse.urlencode(parsed.form_fields) if parsed.form_fields else action
    if parsed.confirm_href:
        return urllib.parse.urljoin(page_url, parsed.confirm_href)
    found = re.search(r'"downloadUrl":"([^"]+)"', page)
    if found:
        return found.group(1).encode().decode("unicode_escape")
    error = " ".join(" ".join(parsed.error_text).split())
    if error:
        raise DownloadError(f"Google Drive refused it: {error}")
    raise DownloadError("Google Drive sent a web page instead of the file (it may no longer be shared publicly)")


def open_file(session: urllib.request.OpenerDirector, file_id: str, offset: int = 0) -> Response:
    """Drive's answer that carries the file's bytes from ``offset`` on, through the confirmation page if any."""
    url = download_url(file_id)
    for _ in range(HOPS):
        response = open_url(session, url, offset=offset)
        if not is_html(response):
            return response
        url = next_url(read_page(response), response.geturl())
    raise DownloadError("Google Drive kept answering with web pages instead of the file")


@dataclass(frozen=True)
class Entry:
    """One item of a shared folder."""

    id: str
    name: str
    is_folder: bool


def list_folder(session: urllib.request.OpenerDirector, folder_id: str) -> list[Entry]:
    """The files and sub-folders of a shared folder (its embedded view), in the page's order."""
    response = open_url(session, f"{base_url()}/embeddedfolderview?id={urllib.parse.quote(folder_id)}")
    page = read_page(response)
    if any(phrase.lower() in page.lower() for phrase in QUOTA_PHRASES):
        next_url(page, "")  # raises the quota message
    entries = []
    for href, kind, title, text in _parse(page).entries:
        found = re.search(r"/(?:file/d|folders)/([-\w]{10,})", href)
        name = " ".join(" ".join(title or text).split())
        if found and name:
            entries.append(Entry(found.group(1), name, kind == "folder"))
    if not entries and "flip-entry" not in page:
        raise DownloadError("Google Drive did not list the folder (it may no longer be shared publicly)")
    return entries
