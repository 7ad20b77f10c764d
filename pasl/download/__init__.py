"""``python -m pasl download``: every weight file in one command, checked before it is kept.

Nothing here runs unless a user asks; importing the package loads no network code path and no
weights. What is fetched and from where is in :mod:`pasl.download.sources`; the Drive pages in
:mod:`pasl.download.drive`; FLAME's login in :mod:`pasl.download.flame`; resumable transfers in
:mod:`pasl.download.transfer`; the strict loads in :mod:`pasl.download.checks`; the run itself
(skip, fetch, unzip, check, move, record) in :mod:`pasl.download.fetch`.

Environment variables that replace a host, for tests (a local server) or a mirror:
``PASL_DRIVE_BASE_URL`` (Google Drive), ``PASL_FLAME_DOWNLOAD_URL`` (the FLAME server),
``PASL_DECA_DATA_BASE_URL`` (DECA's data folder), ``PASL_DOWNLOAD_BASE_URL`` (FAN),
``PASL_EVAL_BASE_URL`` (the metric backbones of ``eval``). The FLAME
login comes from ``PASL_FLAME_USERNAME`` / ``PASL_FLAME_PASSWORD`` or a prompt.
"""

from __future__ import annotations

from .drive import DRIVE_URL_ENV
from .fetch import Outcome, download
from .flame import FLAME_URL_ENV, PASSWORD_ENV, USERNAME_ENV
from .manifest import MANIFEST
from .sources import BASE_URL_ENV, DECA_DATA_URL_ENV, EVAL_URL_ENV, EXTRA_KINDS, FAN_BASE_URL, KINDS, default_base_url

CHOICES = ("all", *KINDS, *EXTRA_KINDS)
"""What the command line accepts (``all`` is :data:`KINDS`, without ``eval``'s metric backbones and ``train``'s VGG19)."""
URL_ENVS = (DRIVE_URL_ENV, FLAME_URL_ENV, DECA_DATA_URL_ENV, BASE_URL_ENV, EVAL_URL_ENV)
"""The host overrides (tests, mirrors)."""

__all__ = [
    "BASE_URL_ENV", "CHOICES", "DECA_DATA_URL_ENV", "DRIVE_URL_ENV", "EVAL_URL_ENV", "EXTRA_KINDS", "FAN_BASE_URL", "FLAME_URL_ENV",
    "KINDS", "MANIFEST",
    "Outcome", "PASSWORD_ENV", "URL_ENVS", "USERNAME_ENV", "default_base_url", "download",
]
