"""What ``python -m pasl download`` fetches: each weight file, where its bytes come from, where it goes.

Paths are relative to the weights folder and are those model discovery expects
(:mod:`pasl.catalog`): ``POE/<pair>/`` for the PAE networks, ``face_alignment/`` for FAN.
Sources, with the environment variable that replaces each host (for tests or a mirror):

* the authors' Google Drive (``PASL_DRIVE_BASE_URL``): the demo AEG folder, the PASL "DECA model"
  archive (its ``deca_model.tar``) and the PAE archive (``POE/<pair>/Backbone_IR_50_Epoch_*.pth``);
* DECA's GitHub data folder (``PASL_DECA_DATA_BASE_URL``): ``landmark_embedding.npy`` and
  ``head_template.obj``, checked against their sha256;
* the FAN authors' site (``PASL_DOWNLOAD_BASE_URL``): the two files named by their sha256 prefix;
* the FLAME server with the user's own login (``PASL_FLAME_DOWNLOAD_URL``): ``generic_model.pkl``
  out of ``FLAME2020.zip``;
* for ``eval`` only (never part of ``all``), the metric backbones' own addresses (``PASL_EVAL_BASE_URL``,
  one folder holding the four files by name): torchvision's and pytorch-fid's Inception-v3, torchvision's
  AlexNet and StarGAN v2's ``lpips_weights.ckpt``, into ``eval/``, checked against their sha256 (prefix);
* for ``train`` only, torchvision's VGG19 (the training's perceptual loss) the same way, into ``train/``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..catalog import METRIC_KEYS, PAE_FILES, entry
from . import drive, flame

KINDS = ("aeg", "deca", "flame", "pae", "fan")
"""What ``all`` fetches, in this order (the required files first): everything reenactment can use."""
EXTRA_KINDS = ("eval", "train")
"""What can be asked for by name only, never needed to reenact: the metric backbones of ``python -m pasl.eval``, the
loss network of ``python -m pasl.train``."""

AEG_DEMO_FOLDER = "1yHrOIKB0cttrDxHeAN5Yh8KOjGy3CNHy"
"""The authors' "Demo Pretrained Model" folder (``204000_nets_ema.ckpt``)."""
AEG_PATTERNS = (r".+_nets_ema\.ckpt", r".+_nets\.ckpt")
"""Folder files taken as AEG checkpoints, the first pattern that matches any file wins (no optimiser states)."""
DECA_ARCHIVE = "1oMwg5xzkgPkYiZT_ZUCwk7CdttEbubkD"
"""The PASL README's "DECA model" (an archive holding ``data/deca_model.tar``)."""
PAE_ARCHIVE = "1zU1YTRstgrdJ7hwjl9CVjgFnNAyNFLZS"
"""The PASL README's "POE" backbone archive (the six PAE networks)."""
DECA_DATA_URL = "https://raw.githubusercontent.com/yfeng95/DECA/master/data/"
DECA_DATA_URL_ENV = "PASL_DECA_DATA_BASE_URL"
FAN_BASE_URL = "https://www.adrianbulat.com/downloads/python-fan/"
BASE_URL_ENV = "PASL_DOWNLOAD_BASE_URL"
"""Replaces :data:`FAN_BASE_URL` (a mirror with the same file names, or a local server in tests)."""
FAN_FILES = ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")
EVAL_URL_ENV = "PASL_EVAL_BASE_URL"
"""Replaces the hosts of the metric backbones and of VGG19: a folder holding the files under their names."""
EVAL_FILES = tuple(entry(key) for key in METRIC_KEYS)
"""The catalogue entries ``eval`` fetches (each from its own ``url``)."""
TRAIN_FILES = (entry("vgg19"),)
"""The catalogue entries ``train`` fetches (the same way, through the same mirror variable)."""

EXPECTED_SHA256 = {
    "landmark_embedding.npy": "8095348eeafce5a02f6bd8765146307f9567a3f03b316d788a2e47336d667954",
    "head_template.obj": "dd5bfbce75adb99b1963f43bca7ec3557bd4a7321f8fc515f4100599e80d99f2",
    **{f"face_alignment/{name}": re.search(r"-([0-9a-f]{8,})\.", name).group(1) for name in FAN_FILES},
    **{f"{item.folder}/{item.patterns[0]}": item.sha256 for item in EVAL_FILES + TRAIN_FILES},
}
"""The sha256 (or, for FAN and torch hub names, the prefix in the name) a file must have, by path; files not listed
are checked by loading."""


def _base(env: str, default: str) -> str:
    url = os.environ.get(env, "").strip() or default
    return url if url.endswith("/") else url + "/"


def default_base_url() -> str:
    """``$PASL_DOWNLOAD_BASE_URL`` (with a trailing ``/``) when set and not empty, else :data:`FAN_BASE_URL`."""
    return _base(BASE_URL_ENV, FAN_BASE_URL)


@dataclass(frozen=True)
class Source:
    """Where bytes come from. ``kind``: ``url``, ``drive`` (a file), ``drive-folder`` or ``flame``.

    ``archive`` names the download when it is an archive to take files out of (its ``.part`` in the
    weights folder); ``None`` when the download is the weight file itself.
    """

    kind: str
    ref: str = ""
    archive: str | None = None
    folder: str = ""
    """For a file listed in a Drive folder: the folder's id (recorded, so a later run needs no listing)."""
    maybe_bare: bool = False
    """The "archive" may be the one weight file itself (a torch file is a zip too, but without the member)."""

    def page(self) -> str:
        """The page a person opens to get the file by hand."""
        if self.kind == "drive":
            return drive.view_url(self.ref)
        if self.kind == "drive-folder":
            return drive.folder_url(self.ref)
        if self.kind == "flame":
            return flame.FLAME_PAGE
        return self.ref

    def url(self) -> str:
        """What is recorded in ``downloads.json``: the public address (never a test server's or a login)."""
        if self.kind == "drive":
            return f"{drive.DRIVE_URL}/uc?export=download&id={self.ref}"
        if self.kind == "flame":
            return f"{flame.FLAME_URL}?domain=flame&sfile=FLAME2020.zip"
        return self.page()


@dataclass(frozen=True)
class Target:
    """One weight file: its catalogue kind (how it is checked), its path in the weights folder, and
    for an archive the member path it is taken from (matched by its end, case-insensitively)."""

    key: str
    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


Job = tuple[Source, list[Target]]


def plan(kind: str) -> list[Job]:
    """The downloads of one kind (a ``drive-folder`` job has no targets until its folder is listed)."""
    if kind == "aeg":
        return [(Source("drive-folder", AEG_DEMO_FOLDER), [])]
    if kind == "deca":
        data = _base(DECA_DATA_URL_ENV, DECA_DATA_URL)
        return [
            (Source("drive", DECA_ARCHIVE, archive="pasl_deca_model.zip", maybe_bare=True),
             [Target("deca", "deca_model.tar", "deca_model.tar")]),
            (Source("url", data + "landmark_embedding.npy"), [Target("landmark_embedding", "landmark_embedding.npy")]),
            (Source("url", data + "head_template.obj"), [Target("head_template", "head_template.obj")]),
        ]
    if kind == "flame":
        return [(Source("flame", archive="FLAME2020.zip"), [Target("flame", "generic_model.pkl", "generic_model.pkl")])]
    if kind == "pae":
        return [(Source("drive", PAE_ARCHIVE, archive="pasl_pae_poe.zip"),
                 [Target("pae", path, path.split("/", 1)[1]) for path in PAE_FILES.values()])]
    if kind == "fan":
        base = default_base_url()
        return [(Source("url", base + name), [Target("fan", f"face_alignment/{name}")]) for name in FAN_FILES]
    if kind in ("eval", "train"):
        mirror = _base(EVAL_URL_ENV, "") if os.environ.get(EVAL_URL_ENV, "").strip() else None
        return [(Source("url", mirror + item.patterns[0] if mirror else item.url), [Target(item.key, f"{item.folder}/{item.patterns[0]}")])
                for item in (EVAL_FILES if kind == "eval" else TRAIN_FILES)]
    raise ValueError(f"unknown download {kind!r}; choose one of all, {', '.join(KINDS + EXTRA_KINDS)}")


def folder_targets(names: list[str]) -> list[str]:
    """The AEG checkpoints among a Drive folder's file names (``*_nets_ema.ckpt``, else ``*_nets.ckpt``)."""
    for pattern in AEG_PATTERNS:
        chosen = [n for n in names if re.fullmatch(pattern, n)]
        if chosen:
            return chosen
    return []
