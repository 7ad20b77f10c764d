"""Test-pair lists for large-pose benchmarks: source and driver from different yaw bins, far apart in yaw.

The paper evaluates on pairs whose lists were not released (docs/official-code.md, top: "not in either repository").
This module draws such lists reproducibly from per-image head poses computed elsewhere (today:
any tool that writes ``yaws.json``; computing them from images with our DECA codes is a later step):

* every image falls in a bin by ``|yaw|``, as the PAE encoders do (:func:`pasl.pae.pose_bin`):
  F (<= 30), S (30-60), P (>= 60);
* for each ordered pair of *different* bins (``FS, FP, SF, SP, PF, PS`` by default) up to
  ``per_bin_pair`` pairs are drawn with ``|yaw_source - yaw_driver| >= min_gap`` (signed yaws:
  the head turn the generator must make); optionally ``|pitch| <= max_pitch`` for both;
* ``mode="self"``: the same identity, different images, ground truth = the driver (VoxCeleb-style
  self-reenactment); ``mode="cross"``: different identities, no ground truth (MPIE-LP style);
* sources are visited in a seeded random order, one driver each per round, so a bin pair's pairs
  spread over as many sources as possible; no pair repeats; the same seed gives the same list
  whatever the order of ``yaws.json``.

Lines are the release's list format ``src ref [gt]``, space separated (so paths must not contain
whitespace).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import PASLError
from ..pae import pose_bin

BINS = ("F", "S", "P")
DEFAULT_BIN_PAIRS = tuple(a + b for a in BINS for b in BINS if a != b)
"""Ordered (source bin, driver bin) pairs: every pair of different bins, both directions."""


@dataclass(frozen=True)
class Face:
    path: str
    yaw: float
    pitch: float | None
    identity: str

    @property
    def bin(self) -> str:
        return pose_bin(self.yaw)


@dataclass(frozen=True)
class Pair:
    source: str
    driver: str
    ground_truth: str | None = None

    def line(self) -> str:
        """One line of the release's list format ``src ref [gt]``."""
        return " ".join(p for p in (self.source, self.driver, self.ground_truth) if p is not None)


def faces_from_mapping(mapping: dict, where: str = "yaws.json") -> list[Face]:
    """``{path: {"yaw": deg, "pitch": deg (optional), "identity": label}}`` -> faces sorted by path."""
    if not isinstance(mapping, dict) or not mapping:
        raise PASLError(f"{where} must map image paths to {{\"yaw\": ..., \"identity\": ...}}; it is empty or not an object.")
    faces = []
    for path, info in mapping.items():
        if any(ch.isspace() for ch in path):
            raise PASLError(f"{where}: the path {path!r} contains whitespace, which the 'src ref [gt]' list format cannot hold.")
        try:
            yaw = float(info["yaw"])
            identity = str(info["identity"])
            pitch = None if info.get("pitch") is None else float(info["pitch"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise PASLError(
                f"{where}: the entry for {path!r} needs a numeric \"yaw\" and an \"identity\" (and optionally a numeric \"pitch\")."
            ) from None
        if not np.isfinite(yaw) or (pitch is not None and not np.isfinite(pitch)):
            raise PASLError(f"{where}: the entry for {path!r} has a non-finite yaw or pitch.")
        faces.append(Face(path, yaw, pitch, identity))
    return sorted(faces, key=lambda f: f.path)


def load_faces(path: str | Path) -> list[Face]:
    """Read ``yaws.json`` (see :func:`faces_from_mapping`)."""
    path = Path(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PASLError(f"{path} not found: give the JSON file that maps image paths to yaw, pitch and identity.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PASLError(f"{path} is not valid JSON ({err}).") from None
    return faces_from_mapping(mapping, where=str(path))


def compose_pairs(
    faces: list[Face],
    mode: Literal["self", "cross"] = "cross",
    min_gap: float = 30.0,
    per_bin_pair: int = 100,
    bin_pairs: tuple[str, ...] | list[str] = DEFAULT_BIN_PAIRS,
    max_pitch: float | None = None,
    seed: int = 0,
) -> list[Pair]:
    """Draw the pair list described in the module docstring; bin pairs in the order given, each with
    at most ``per_bin_pair`` pairs (fewer when fewer eligible pairs exist: see :func:`summarise`)."""
    if mode not in ("self", "cross"):
        raise PASLError(f"mode must be 'self' or 'cross', got {mode!r}.")
    for bp in bin_pairs:
        if len(bp) != 2 or bp[0] not in BINS or bp[1] not in BINS:
            raise PASLError(f"bin pair {bp!r} is not two of the letters F, S, P (e.g. 'FP').")
    if per_bin_pair < 0 or min_gap < 0:
        raise PASLError("per_bin_pair and min_gap must not be negative.")
    faces = sorted(faces, key=lambda f: f.path)
    if max_pitch is not None:
        faces = [f for f in faces if f.pitch is None or abs(f.pitch) <= max_pitch]
    yaw = np.array([f.yaw for f in faces], dtype=np.float64)
    identity = np.array([f.identity for f in faces], dtype=object)
    bins = np.array([f.bin for f in faces])
    rng = np.random.default_rng(seed)
    pairs: list[Pair] = []
    for bp in bin_pairs:
        sources = np.flatnonzero(bins == bp[0])
        drivers = np.flatnonzero(bins == bp[1])
        if len(sources) == 0 or len(drivers) == 0 or per_bin_pair == 0:
            continue
        order = rng.permutation(sources)
        used = {int(s): set() for s in order}
        picked: list[tuple[int, int]] = []
        progress = True
        while len(picked) < per_bin_pair and progress:
            progress = False
            for s in order:
                same = identity[drivers] == identity[s]
                ok = (np.abs(yaw[drivers] - yaw[s]) >= min_gap) & (same if mode == "self" else ~same) & (drivers != s)
                candidates = [int(d) for d in drivers[ok] if int(d) not in used[int(s)]]
                if not candidates:
                    continue
                d = candidates[int(rng.integers(len(candidates)))]
                used[int(s)].add(d)
                picked.append((int(s), d))
                progress = True
                if len(picked) == per_bin_pair:
                    break
        for s, d in picked:
            gt = faces[d].path if mode == "self" else None
            pairs.append(Pair(faces[s].path, faces[d].path, gt))
    return pairs


def summarise(pairs: list[Pair], faces: list[Face]) -> dict[str, int]:
    """How many pairs each bin pair got, e.g. ``{"FP": 100, "PF": 37}``."""
    bin_of = {f.path: f.bin for f in faces}
    counts: dict[str, int] = {}
    for p in pairs:
        key = bin_of[p.source] + bin_of[p.driver]
        counts[key] = counts.get(key, 0) + 1
    return counts


def write_pairs(pairs: list[Pair], path: str | Path) -> Path:
    """Write one ``src ref [gt]`` line per pair (newline-terminated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(p.line() + "\n" for p in pairs), encoding="utf-8")
    return path


def read_pairs(path: str | Path, root: str | Path | None = None) -> list[Pair]:
    """Read a ``src ref [gt]`` list; relative paths are taken from ``root`` (default: the list's folder).

    Blank lines and lines starting with ``#`` are skipped; any other line must hold two or three paths.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PASLError(f"{path} not found: give a pair list with one 'src ref [gt]' line per pair.") from None
    except UnicodeDecodeError:
        raise PASLError(f"{path} is not a text file: give a pair list with one 'src ref [gt]' line per pair.") from None
    base = Path(root) if root is not None else path.parent
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) not in (2, 3):
            raise PASLError(f"{path}, line {number}: expected 'src ref [gt]' (2 or 3 paths), got {len(fields)} fields.")
        resolved = [str(p if Path(p).is_absolute() else base / p) for p in fields]
        pairs.append(Pair(resolved[0], resolved[1], resolved[2] if len(resolved) == 3 else None))
    if not pairs:
        raise PASLError(f"{path} holds no pairs: give one 'src ref [gt]' line per pair.")
    return pairs


def identity_of(relative: Path, identities: dict[str, str] | None = None) -> str:
    """An image's identity label: from ``identities`` (relative path -> label) when given, else its first
    folder under the image root (``root/<identity>/...``), else the file's own stem (every image its own
    person: fine for cross-identity lists, useless for self-reenactment)."""
    key = relative.as_posix()
    if identities is not None:
        if key not in identities:
            raise PASLError(f"the identities file has no entry for {key!r}: give every image a label.")
        return str(identities[key])
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem
