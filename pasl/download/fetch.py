"""One download run: skip the files already checked, fetch the rest, take them out of their archives,
check each with its strict loader, move it into place atomically and record it in ``downloads.json``.

Every failure becomes one :class:`~pasl.errors.DownloadError` sentence: what went wrong, what to do
by hand (the page to open, the folder to put the file in) and whether a ``.part`` file was kept to
resume from. A file is only ever at its final path once it has loaded.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import urllib.error
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_output
from ..catalog import entry, model_folder
from ..errors import DownloadError, PASLError
from . import checks, drive, flame, manifest, transfer
from .sources import EXPECTED_SHA256, KINDS, Job, Source, Target, folder_targets, plan

log = logging.getLogger(__name__)

FOLDER_DEPTH = 2
"""Sub-folder levels of a Drive folder searched for checkpoints."""
LOAD_ERRORS = (PASLError, ValueError, OSError, RuntimeError, KeyError, EOFError, zipfile.BadZipFile)
"""What a strict load or an unzip of a bad file raises."""
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError)


@dataclass
class Outcome:
    """What a run did: the weights folder, the files it downloaded and those already there (checked)."""

    folder: Path
    downloaded: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)


def download(what: str = "all", folder: str | Path | None = None, report: Callable[[str], None] | None = None) -> Outcome:
    """Fetch the weights of ``what`` (``all``, ``aeg``, ``deca``, ``flame``, ``pae``, ``fan`` or ``eval``) into ``folder``.

    ``all`` is every kind a reenactment can use; ``eval`` (the metric backbones of ``python -m pasl.eval``,
    into ``eval/``) is fetched only when asked for by name.

    ``folder`` defaults to :func:`pasl.catalog.model_folder` (``ComfyUI/models/pasl`` inside ComfyUI,
    the per-user folder for a pip install, else the checkout's ``weights/``). Files already there and
    valid are kept, so running it again only fetches what is missing. ``report`` receives one line per
    step (default: the log). FLAME asks for the user's login first (see :mod:`pasl.download.flame`).

    Raises:
        DownloadError: no network, a refusal (quota, login), or a file that does not load; the
            message says what to do by hand.
        ValueError: ``what`` is not one of the names above.
    """
    kinds = KINDS if what == "all" else (what,)
    jobs = [job for kind in kinds for job in plan(kind)]  # raises ValueError for an unknown name
    run = _Run(Path(folder) if folder is not None else model_folder(), report or log.info)
    if "flame" in kinds and not all((run.folder / t.path).is_file() for s, ts in jobs if s.kind == "flame" for t in ts):
        if flame.login_available():
            run.login = flame.credentials()  # asked first, not after an hour of other downloads
        else:  # no login to be had: fetch the rest first, then say what FLAME needs
            jobs = [j for j in jobs if j[0].kind != "flame"] + [j for j in jobs if j[0].kind == "flame"]
    for source, targets in jobs:
        run.job(source, targets)
    return run.outcome


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _member(infos: list[zipfile.ZipInfo], wanted: str) -> zipfile.ZipInfo | None:
    """The archive member whose path ends with ``wanted`` (case-insensitive; macOS resource forks skipped)."""
    wanted = wanted.lower()
    for info in infos:
        name = info.filename.replace("\\", "/").lower()
        if not info.is_dir() and "__macosx/" not in name and (name == wanted or name.endswith("/" + wanted)):
            return info
    return None


class _Run:
    def __init__(self, folder: Path, report: Callable[[str], None]) -> None:
        self.folder, self.report = folder, report
        self.entries = manifest.read(folder)
        self.session = transfer.make_session()
        self.login: flame.Credentials | None = None
        self.outcome = Outcome(folder)

    # ------------------------------------------------------------------ already there?

    def is_done(self, target: Target) -> bool:
        """``target`` is in place and valid: recorded with the same size and sha256, or (not recorded) it loads."""
        dest = self.folder / target.path
        if not dest.is_file():
            return False
        recorded = self.entries.get(target.path, {})
        if recorded.get("bytes") == dest.stat().st_size and recorded.get("sha256") == transfer.sha256_of(dest):
            self.outcome.present.append(dest)
            return True
        try:
            digest = checks.check_digest(dest, EXPECTED_SHA256.get(target.path))
            checks.strict_load(target.key, dest, target.name)
        except LOAD_ERRORS as err:
            raise DownloadError(
                f"{dest} is already there but is not a valid {entry(target.key).purpose} file "
                f"({' '.join(str(err).split())}); move it away and run the command again"
            ) from None
        manifest.record(self.folder, target.path, source="found in place", size=dest.stat().st_size, sha256=digest)
        self.entries = manifest.read(self.folder)
        self.outcome.present.append(dest)
        return True

    # ------------------------------------------------------------------ one download

    def job(self, source: Source, targets: list[Target]) -> None:
        if source.kind == "drive-folder":
            for sub_source, sub_targets in self.expand(source):
                self.job(sub_source, sub_targets)
            return
        pending = [t for t in targets if not self.is_done(t)]
        if not pending:
            return
        part = self.part_path(source, pending)
        self.report(f"downloading {self.describe(pending)} from {_host(self.contact_url(source))}")
        try:
            transfer.fetch_into(part, lambda offset: self.open(source, offset), part.name.removesuffix(".part"))
        except DownloadError as err:
            raise self.failure(source, pending, str(err), part) from None
        except urllib.error.HTTPError as err:
            raise self.failure(source, pending, f"{_host(self.contact_url(source))} answered HTTP {err.code} {err.reason}", part) from None
        except urllib.error.URLError as err:
            raise self.failure(source, pending, f"no connection to {_host(self.contact_url(source))} ({err.reason}); "
                                                f"are you offline?", part) from None
        except NETWORK_ERRORS as err:
            raise self.failure(source, pending, f"the transfer failed ({err})", part) from None
        try:
            if source.archive:
                self.unpack(source, part, pending)
            else:
                self.place(source, part, pending[0])
        except DownloadError as err:
            part.unlink(missing_ok=True)  # complete but wrong: resuming it cannot help
            raise self.failure(source, pending, str(err), part) from None
        except LOAD_ERRORS as err:
            part.unlink(missing_ok=True)
            reason = f"the downloaded file is not a valid {entry(pending[0].key).purpose} file ({' '.join(str(err).split())})"
            raise self.failure(source, pending, reason, part) from None
        part.unlink(missing_ok=True)

    def part_path(self, source: Source, targets: list[Target]) -> Path:
        """Where the bytes collect until complete: next to the file, or ``<archive>.part`` in the weights folder."""
        if source.archive:
            return self.folder / f"{source.archive}.part"
        dest = self.folder / targets[0].path
        return dest.with_name(dest.name + ".part")

    def contact_url(self, source: Source) -> str:
        if source.kind == "url":
            return source.ref
        return flame.download_url() if source.kind == "flame" else drive.base_url()

    def open(self, source: Source, offset: int) -> transfer.Response:
        if source.kind == "url":
            return transfer.open_url(self.session, source.ref, offset=offset)
        if source.kind == "drive":
            return drive.open_file(self.session, source.ref, offset)
        if source.kind == "flame":
            if self.login is None:
                self.login = flame.credentials()
            return flame.open_archive(self.session, self.login, offset)
        raise ValueError(f"unknown source kind {source.kind!r}")

    def expand(self, source: Source) -> list[Job]:
        """The AEG checkpoints of a Drive folder; none to fetch (and no listing) when a run already recorded them."""
        recorded = [path for path, e in self.entries.items() if e.get("drive_folder") == source.ref]
        if recorded and all((self.folder / path).is_file() for path in recorded):
            if all(self.is_done(Target("aeg", path)) for path in recorded):
                return []
        try:
            files = self.list_files(source.ref, FOLDER_DEPTH)
        except DownloadError as err:
            raise self.failure(source, [], str(err)) from None
        except urllib.error.HTTPError as err:
            raise self.failure(source, [], f"{_host(drive.base_url())} answered HTTP {err.code} {err.reason}") from None
        except NETWORK_ERRORS as err:
            reason = getattr(err, "reason", err)
            raise self.failure(source, [], f"no connection to {_host(drive.base_url())} ({reason}); are you offline?") from None
        names = folder_targets([f.name for f in files])
        if not names:
            listed = ", ".join(f.name for f in files[:6]) or "nothing"
            raise self.failure(source, [], f"the folder lists no AEG checkpoint (*_nets_ema.ckpt), only {listed}")
        return [(Source("drive", f.id, folder=source.ref), [Target("aeg", f.name)]) for f in files if f.name in names]

    def list_files(self, folder_id: str, depth: int) -> list[drive.Entry]:
        entries = drive.list_folder(self.session, folder_id)
        files = [e for e in entries if not e.is_folder and "/" not in e.name and "\\" not in e.name and not e.name.startswith(".")]
        if not folder_targets([f.name for f in files]) and depth > 1:
            for sub in (e for e in entries if e.is_folder):
                files += self.list_files(sub.id, depth - 1)
        return files

    # ------------------------------------------------------------------ into place

    def place(self, source: Source, download: Path, target: Target) -> None:
        """Check the complete download ``download`` as ``target``, then move it to its path (atomically).

        Checked where it lies, so a run stopped during the check keeps the complete ``.part`` for the next one.
        """
        digest = self.check(target, download)
        with atomic_output(self.folder / target.path) as temporary:
            os.replace(download, temporary)
        self.record(source, target, digest)

    def unpack(self, source: Source, archive_path: Path, targets: list[Target]) -> None:
        """Take each target out of the downloaded archive, check it and move it into place."""
        infos = []
        if zipfile.is_zipfile(archive_path):
            with zipfile.ZipFile(archive_path) as archive:
                infos = archive.infolist()
        found = {t.path: _member(infos, t.member or t.name) for t in targets}
        if source.maybe_bare and found[targets[0].path] is None:
            self.place(source, archive_path, targets[0])  # not an archive after all: the download is the file
            return
        absent = [str(t.member) for t in targets if found[t.path] is None]
        if not infos:
            raise DownloadError(f"the download ({archive_path.stat().st_size} bytes) is not the zip archive {source.archive}")
        if absent:
            raise DownloadError(f"the archive holds no {', '.join(absent)}")
        with zipfile.ZipFile(archive_path) as archive:
            for target in targets:
                with atomic_output(self.folder / target.path) as temporary:
                    with archive.open(found[target.path]) as member, open(temporary, "wb") as out:
                        shutil.copyfileobj(member, out, transfer.CHUNK)
                    digest = self.check(target, temporary)
                self.record(source, target, digest)

    def check(self, target: Target, path: Path) -> str:
        """``path`` is a valid ``target`` (checksum, then strict load); its sha256."""
        digest = checks.check_digest(path, EXPECTED_SHA256.get(target.path))
        checks.strict_load(target.key, path, target.name)
        return digest

    def record(self, source: Source, target: Target, digest: str) -> None:
        dest = self.folder / target.path
        extra = {"drive_folder": source.folder} if source.folder else {}
        manifest.record(self.folder, target.path, source=source.url(), size=dest.stat().st_size, sha256=digest, **extra)
        self.entries = manifest.read(self.folder)
        self.outcome.downloaded.append(dest)
        self.report(f"checked and saved {dest}")

    # ------------------------------------------------------------------ messages

    def describe(self, targets: list[Target]) -> str:
        if not targets:
            return "the AEG checkpoint (*_nets_ema.ckpt)"
        if len(targets) > 2:
            return f"the {len(targets)} {entry(targets[0].key).purpose.split(' (')[0]} files ({', '.join(t.path for t in targets)})"
        return " and ".join(t.path for t in targets)

    def failure(self, source: Source, targets: list[Target], reason: str, part: Path | None = None) -> DownloadError:
        """The one sentence a user reads: what failed, why, what to do by hand, what was kept."""
        what = self.describe(targets)
        if source.kind == "flame":
            by_hand = (f"log in at {source.page()}, download FLAME2020.zip and put its generic_model.pkl in {self.folder}")
        elif source.archive:
            by_hand = f"download {source.page()} in a browser, unzip it and put {what} in {self.folder}"
        else:
            where = (self.folder / targets[0].path).parent if targets else self.folder
            by_hand = f"download {what} from {source.page()} in a browser and put it in {where}"
        kept = (f"; the partial download {part} is kept: run the same command again to resume"
                if part is not None and part.is_file() else "; nothing was kept")
        return DownloadError(f"could not download {what}: {reason}. By hand: {by_hand}{kept}.")
