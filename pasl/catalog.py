"""Every file PASL can use: what it is for, how to recognise it, where to get it.

One table, read by error messages, ``python -m pasl doctor`` and ``install.py``, so the
advice a user gets is the same everywhere.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = Path(os.path.abspath(__file__)).parent
"""This package's folder, symlinks kept: a pack symlinked into ``ComfyUI/custom_nodes`` is still found there."""
PACK_WEIGHTS = PACKAGE.parent / "weights"
"""The ``weights/`` folder of a source checkout (searched only when the package is not installed)."""
WEIGHT_FOLDERS = "ComfyUI/models/pasl/ (inside ComfyUI) or the pack's weights/ folder"
ENV_WEIGHTS = "PASL_WEIGHTS"
"""Extra weight folders, ``os.pathsep``-separated."""
MODEL_FOLDER = "pasl"
"""The folder name under ``ComfyUI/models`` and the key in ComfyUI's ``extra_model_paths.yaml``."""
INSTALLED_MARKERS = ("site-packages", "dist-packages")
"""A package under one of these folders was installed by pip: its parent is no pack, so no ``weights/`` is searched there."""


@dataclass(frozen=True)
class WeightFile:
    key: str
    patterns: tuple[str, ...]
    purpose: str
    source: str
    licence: str
    required: bool = True
    url: str = ""
    """The file's own download address, fetched as is by ``python -m pasl download``; empty when it has none."""
    sha256: str = ""
    """Its sha256, or the start of it that a torch hub name carries; empty when not known."""
    folder: str = ""
    """The sub-folder of a weights folder it goes in by convention (discovery finds it in any folder)."""


EVAL_FOLDER = "eval"
"""Where the metric backbones go in a weights folder."""
METRICS_ONLY = "used only by `python -m pasl.eval` and the PASL Metrics node"
"""Said of every metric backbone: reenactment never needs one."""


def torch_hub_prefix(name: str) -> str:
    """The sha256 prefix in a torch hub file name (``alexnet-owt-7be5be79.pth`` -> ``7be5be79``), what ``torch.hub`` checks."""
    return re.search(r"-([0-9a-f]{8,})\.", name).group(1)


TRAIN_FOLDER = "train"
"""Where the training-only networks go in a weights folder."""
TRAINING_ONLY = "used only by `python -m pasl.train`"


def _metric_file(key: str, url: str, what: str, purpose: str, licence: str, sha256: str = "", *, folder: str = EVAL_FOLDER,
                 used_by: str = METRICS_ONLY) -> WeightFile:
    """A backbone with a direct download (metrics, or training with ``folder=TRAIN_FOLDER``): its name is the last
    part of ``url``."""
    name = url.rsplit("/", 1)[-1]
    return WeightFile(key, (name,), f"{purpose} ({used_by})", f"{what}: {url}", licence, required=False, url=url,
                      sha256=sha256 or torch_hub_prefix(name), folder=folder)


CATALOG: tuple[WeightFile, ...] = (
    WeightFile(
        "aeg",
        ("*_nets_ema.ckpt", "*_nets.ckpt", "pasl_aeg*.safetensors"),
        "AEG generator + style encoder (204000 = demo model)",
        "https://drive.google.com/drive/folders/1yHrOIKB0cttrDxHeAN5Yh8KOjGy3CNHy (demo); "
        "test models via https://github.com/AvLab-CV/PASL#validation-pretrained-models",
        "authors' terms, non-commercial",
    ),
    WeightFile(
        "deca",
        ("deca_model.tar", "pasl_deca*.safetensors"),
        "CSG shape encoder (DECA E_flame)",
        "https://drive.google.com/file/d/1oMwg5xzkgPkYiZT_ZUCwk7CdttEbubkD/view (PASL 'DECA model'), or https://github.com/yfeng95/DECA",
        "DECA licence, non-commercial",
    ),
    WeightFile(
        "flame",
        ("generic_model.pkl", "pasl_flame*.npz", "pasl_flame*.safetensors"),
        "FLAME 2020 head model",
        "https://flame.is.tue.mpg.de (free registration; not redistributable)",
        "FLAME licence, non-commercial",
    ),
    WeightFile(
        "landmark_embedding",
        ("landmark_embedding.npy",),
        "FLAME 68-landmark embedding",
        "https://github.com/yfeng95/DECA/tree/master/data",
        "DECA licence",
    ),
    WeightFile(
        "head_template",
        ("head_template.obj",),
        "FLAME mesh topology for rendering",
        "https://github.com/yfeng95/DECA/tree/master/data",
        "DECA licence",
    ),
    WeightFile(
        "fan",
        ("2DFAN4-11f355bf06.pth.tar", "s3fd-619a316812.pth"),
        "FAN landmarks + S3FD detector (optional 'fan' alignment backend)",
        "https://www.adrianbulat.com/downloads/python-fan/ (put both files in a face_alignment/ sub-folder)",
        "BSD-3 (face-alignment)",
        required=False,
    ),
    WeightFile(
        "pae",
        ("Backbone_IR_50_Epoch_*.pth",),
        "PAE identity encoders (identity score; keep the POE/FF ... POE/PP folders)",
        "https://drive.google.com/file/d/1zU1YTRstgrdJ7hwjl9CVjgFnNAyNFLZS/view",
        "authors' terms",
        required=False,
    ),
    WeightFile(
        "arcface",
        ("backbone_ir50_ms1m_epoch*.pth", "Backbone_IR_50_MS1M*.pth"),
        "ArcFace IR-50 (one identity network for every pose; ArcFace-CSIM)",
        "face.evoLVe model zoo, IR-50 MS1M: https://github.com/ZhaoJ9014/face.evoLVe#model-zoo",
        "MIT code; weights trained on MS-Celeb-1M, research use",
        required=False,
    ),
    _metric_file(
        "fid_paper",
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        "torchvision's ImageNet Inception-v3 (IMAGENET1K_V1)",
        "FID backbone, paper flavour (torchvision Inception-v3, as StarGAN v2's metrics/fid.py)",
        "BSD-3 (torchvision weights)",
    ),
    _metric_file(
        "fid_standard",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "pytorch-fid's FID Inception weights",
        "FID backbone, standard flavour (pytorch-fid's port of the TensorFlow FID Inception)",
        "Apache-2.0 (pytorch-fid; weights converted from TensorFlow's Inception, Apache-2.0)",
    ),
    _metric_file(
        "lpips_alexnet",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "torchvision's ImageNet AlexNet",
        "LPIPS AlexNet features (torchvision AlexNet)",
        "BSD-3 (torchvision weights)",
    ),
    _metric_file(
        "lpips",
        "https://github.com/clovaai/stargan-v2/raw/master/metrics/lpips_weights.ckpt",
        "StarGAN v2's metrics/lpips_weights.ckpt (the PASL release ships the same file)",
        "LPIPS layer weights (StarGAN v2's metrics/lpips_weights.ckpt)",
        "CC BY-NC 4.0 (StarGAN v2 repository licence)",
        sha256="8b641b3c88a60383027f5e3d9b14d0e8687a1b09aeeb4950ec5951813954a36a",
    ),
    _metric_file(
        "vgg19",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        "torchvision's ImageNet VGG19",
        "VGG19 features for the training's perceptual loss",
        "BSD-3 (torchvision weights)",
        folder=TRAIN_FOLDER,
        used_by=TRAINING_ONLY,
    ),
)


def entry(key: str) -> WeightFile:
    for item in CATALOG:
        if item.key == key:
            return item
    raise KeyError(f"unknown weight kind {key!r}; known: {[c.key for c in CATALOG]}")


DOWNLOAD_KINDS = {"aeg": "aeg", "deca": "deca", "landmark_embedding": "deca", "head_template": "deca", "flame": "flame",
                  "pae": "pae", "fan": "fan", **{item.key: "eval" for item in CATALOG if item.folder == EVAL_FOLDER},
                  **{item.key: "train" for item in CATALOG if item.folder == TRAIN_FOLDER}}
"""The ``python -m pasl download`` argument that fetches each kind (the ArcFace network has none)."""
METRIC_KEYS = tuple(key for key, kind in DOWNLOAD_KINDS.items() if kind == "eval")
"""The metric backbones (``python -m pasl download eval``), in catalogue order."""


def download_command(key: str) -> str | None:
    """The command that fetches files of kind ``key`` (``None`` when only a manual download exists)."""
    kind = DOWNLOAD_KINDS.get(key)
    return f"python -m pasl download {kind}" if kind else None


def _or_run(key: str) -> str:
    command = download_command(key)
    return f", or run `{command}`" if command else ""


def where_to_get(key: str) -> str:
    """The sentence every 'file missing' message ends with."""
    item = entry(key)
    where = f"the {item.folder}/ sub-folder of {WEIGHT_FOLDERS}" if item.folder else WEIGHT_FOLDERS
    return f"Put it in {where}; get it from {item.source} (licence: {item.licence}){_or_run(key)}."


def comfyui_root(package: Path | None = None) -> Path | None:
    """``ComfyUI/`` when ``package`` (default: this one) lives in ``ComfyUI/custom_nodes/<pack>/``, else ``None``.

    The CLI run from inside a ComfyUI install must find the files ComfyUI (and ``install.py``) use.
    """
    pack = (package or PACKAGE).parent
    return pack.parent.parent if pack.parent.name == "custom_nodes" else None


def is_installed(package: Path | None = None) -> bool:
    """``package`` (default: this one) was installed by pip (it lives in a ``site-packages`` folder)."""
    return any(part in INSTALLED_MARKERS for part in (package or PACKAGE).parts)


def user_weights_folder(platform: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The per-user data folder an installed package keeps its weights in (never inside site-packages).

    ``%LOCALAPPDATA%\\pasl\\weights`` on Windows, ``~/Library/Application Support/pasl/weights`` on macOS,
    else ``$XDG_DATA_HOME/pasl/weights`` or ``~/.local/share/pasl/weights``.
    """
    platform = sys.platform if platform is None else platform
    env = os.environ if env is None else env
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "pasl" / "weights"
    if platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "pasl" / "weights"
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"  # the XDG spec ignores relative values
    return base / "pasl" / "weights"


def _yaml_sections(text: str) -> dict[str, dict[str, str]]:
    """The two-level ``section: {key: value}`` mapping of ``extra_model_paths.yaml``.

    PyYAML when installed; else a small parser for exactly what that file holds (top-level sections,
    ``key: value`` lines, ``key: |`` blocks), so finding weights never needs an extra dependency.
    """
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError("the top level is not a mapping")
        return {str(k): {str(a): str(b) for a, b in v.items() if b is not None} for k, v in data.items() if isinstance(v, dict)}
    sections: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    block: str | None = None
    block_indent = 0
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            if not line.endswith(":"):
                raise ValueError(f"unexpected line {raw.strip()!r}")
            section, block = sections.setdefault(line[:-1].strip().strip("'\""), {}), None
        elif section is None:
            raise ValueError(f"unexpected line {raw.strip()!r}")
        elif block is not None and indent > block_indent:
            section[block] += line.strip() + "\n"
        else:
            key, sep, value = line.strip().partition(":")
            if not sep:
                raise ValueError(f"unexpected line {raw.strip()!r}")
            value = value.strip().strip("'\"")
            block, block_indent = (key, indent) if value in ("|", ">", "|-", ">-") else (None, indent)
            section[key] = "" if block else value
    return sections


def extra_model_paths(comfy_root: Path) -> list[Path]:
    """The ``pasl:`` folders of ``comfy_root/extra_model_paths.yaml``, resolved as ComfyUI resolves them.

    A missing file gives none; a broken one is skipped with a log line (finding weights must never fail on it).
    """
    config = comfy_root / "extra_model_paths.yaml"
    if not config.is_file():
        return []
    try:
        sections = _yaml_sections(config.read_text(encoding="utf-8"))
    except Exception as err:  # any parse error: the file is ComfyUI's, not ours to reject
        log.warning("%s could not be read (%s); its pasl folders are not searched", config, err)
        return []
    folders = []
    for conf in sections.values():
        base = conf.get("base_path")
        if base:
            base = os.path.expandvars(os.path.expanduser(base))
            base = base if os.path.isabs(base) else os.path.join(comfy_root, base)
        for line in conf.get(MODEL_FOLDER, "").split("\n"):
            line = line.strip()
            if line:
                folders.append(Path(os.path.normpath(os.path.join(base or comfy_root, os.path.expandvars(os.path.expanduser(line))))))
    return folders


def default_folders(package: Path | None = None) -> list[Path]:
    """Where the weights of ``package`` (default: this one) are looked for without being told.

    ``ComfyUI/models/pasl`` and the ``pasl:`` entries of ``extra_model_paths.yaml`` when the package lives in
    ``ComfyUI/custom_nodes/<pack>/``; then the pack's ``weights/`` for a source checkout, or
    :func:`user_weights_folder` for an installed package (never site-packages).
    """
    folders = []
    root = comfyui_root(package)
    if root is not None:
        folders.append(root / "models" / MODEL_FOLDER)
        folders += extra_model_paths(root)
    if is_installed(package):
        folders.append(user_weights_folder())
    else:
        folders.append(PACK_WEIGHTS if package is None else package.parent / "weights")
    return folders


def model_folder(package: Path | None = None) -> Path:
    """The folder a user is told to put weights in, and that ``install.py`` creates: the first default folder."""
    return default_folders(package)[0]


def search_folders(extra: list[str | Path] | None = None, *, package: Path | None = None) -> list[Path]:
    """Every folder searched, in order: ``extra`` (``--weights-dir``), ``$PASL_WEIGHTS``, then :func:`default_folders`.

    A folder listed twice is searched once, at its first place.
    """
    folders = [Path(p) for p in (extra or [])]
    folders += [Path(p) for p in os.environ.get(ENV_WEIGHTS, "").split(os.pathsep) if p]
    folders += default_folders(package)
    unique, seen = [], set()
    for folder in folders:
        key = os.path.normcase(os.path.abspath(folder))
        if key not in seen:
            seen.add(key)
            unique.append(folder)
    return unique


def find(key: str, folders: list[Path]) -> list[Path]:
    """Files of kind ``key`` under ``folders`` (recursive), in folder order."""
    patterns = entry(key).patterns
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in patterns):
                found.append(path)
    return found


DEMO_STEP = "204000"
"""The demo AEG checkpoint, preferred when several are found."""
PAE_EPOCHS = {"FF": 80, "FS": 80, "FP": 120, "SS": 100, "SP": 150, "PP": 100}
"""``Backbone_IR_50_Epoch_{n}.pth`` of each released PAE network, by pair kind (``docs/official-code.md`` §3.1, §7)."""
PAE_FILES = {kind: f"POE/{kind}/Backbone_IR_50_Epoch_{epoch}.pth" for kind, epoch in PAE_EPOCHS.items()}
"""The six PAE networks as released."""
TWIN_KEYS = ("aeg", "deca")
"""Kinds whose official pickle ``install.py`` / ``convert-weights`` convert to a ``.safetensors`` twin."""
DOCTOR_HINT = "run `python -m pasl doctor` for details"


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a ``.safetensors`` file, from its header alone (8-byte length + JSON).

    Read without safetensors or torch, so discovery stays instant; an unreadable header gives ``{}``.
    """
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > 100 << 20:  # no real header is this big: not a safetensors file
                return {}
            header = json.loads(handle.read(size))
    except (OSError, ValueError, struct.error):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, cached by (path, size, mtime): a ComfyUI session resolves the same files again and again."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_twin_of(twin: Path, pickle: Path) -> bool:
    """``twin`` (a ``.safetensors``) was converted from exactly ``pickle``: its metadata records the pickle's
    name and sha256, so a stale twin (the pickle was replaced since) is never used."""
    metadata = safetensors_metadata(twin)
    if metadata.get("source_file") != pickle.name:  # the cheap test first: unrelated files are never hashed
        return False
    try:
        stat = pickle.stat()
        return metadata.get("source_sha256") == _sha256(str(pickle), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return False


def prefer_twins(found: list[Path]) -> list[Path]:
    """``found`` with each official pickle replaced by its verified ``.safetensors`` twin from the same folder.

    A twin loads faster and cannot carry code; it takes its pickle's place in the order and is not listed twice.
    """
    twin_of: dict[Path, Path] = {}
    for pickle in (p for p in found if p.suffix != ".safetensors"):
        twin = next((t for t in found if t.suffix == ".safetensors" and t.parent == pickle.parent
                     and t not in twin_of.values() and is_twin_of(t, pickle)), None)
        if twin is not None:
            twin_of[pickle] = twin
    used = set(twin_of.values())
    return [twin_of.get(p, p) for p in found if p not in used]


def find_one(key: str, folders: list[str | Path] | None = None, what: str | None = None, otherwise: str = "") -> Path:
    """The first file of kind ``key`` under ``folders`` then the default folders (:func:`search_folders`),
    its verified ``.safetensors`` twin preferred (:func:`prefer_twins`), for a caller that needs one file
    alone; else one :class:`~pasl.errors.MissingWeightError` sentence: ``what`` (default: the kind's purpose)
    not found, where it was searched, where to get it (:func:`where_to_get`), then ``otherwise``."""
    from .errors import MissingWeightError

    searched = search_folders(folders)
    found = prefer_twins(find(key, searched))
    if not found:
        raise MissingWeightError(f"{what or entry(key).purpose} not found (searched {', '.join(map(str, searched))}). "
                                 f"{where_to_get(key)}{otherwise}")
    return found[0]


def _aeg_order(path: Path) -> tuple[bool, str]:
    """The demo checkpoint (or its twin) first, then by path."""
    return (not (path.name.startswith(DEMO_STEP) or path.name.startswith(f"pasl_aeg_{DEMO_STEP}")), str(path))


@dataclass
class RunFiles:
    """The weight files one run loads, found by name only (nothing is opened but ``.safetensors`` headers).

    A path is ``None`` when nothing was found. ``shape_missing`` names the shape-stage kinds that cannot be
    loaded (:attr:`pasl.models.PASLModels.missing`); ``problems`` says, per missing file, what to do.
    """

    aeg: Path | None
    deca: Path | None
    flame: Path | None
    landmark_embedding: Path | None
    head_template: Path | None
    searched: list[Path]
    shape_missing: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)

    def require(self) -> None:
        """Raise one :class:`~pasl.errors.MissingWeightError` that lists every missing file, or return."""
        if not self.problems:
            return
        from .errors import MissingWeightError

        count = f"{len(self.problems)} weight file{'s are' if len(self.problems) > 1 else ' is'} missing"
        searched = ", ".join(map(str, self.searched))
        raise MissingWeightError("\n".join([f"{count} (searched {searched}):", *(f"  - {p}" for p in self.problems), DOCTOR_HINT]))


def advice(key: str, destination: Path) -> str:
    """What to do about a missing file of kind ``key``, ``destination`` being the weights folder to name."""
    item = entry(key)
    folder = destination / item.folder if item.folder else destination
    return f"put it in {folder}; get it from {item.source} (licence: {item.licence}){_or_run(key)}"


def _given(path: str | Path | None) -> Path | None:
    return None if path is None else Path(path)


def resolve_weights(
    folders: list[str | Path] | None = None,
    *,
    aeg: str | Path | None = None,
    deca: str | Path | None = None,
    flame: str | Path | None = None,
    landmark_embedding: str | Path | None = None,
    head_template: str | Path | None = None,
    require_shape_stage: bool = True,
    identity: str | Path | None = None,
    twins: bool = True,
) -> RunFiles:
    """Which file of each kind a run loads, and what is missing; the same rules as :func:`pasl.models.load_models`.

    A file given explicitly is used as given; otherwise it is found by name in :func:`search_folders`. The
    demo AEG (``204000``) is preferred; with ``twins``, an official pickle gives way to its verified
    ``.safetensors`` twin (:func:`prefer_twins`, which hashes the pickle), and a converted FLAME file is
    preferred to ``generic_model.pkl``.
    """
    searched = search_folders(folders)
    destination = searched[0]

    def pick(key: str, explicit: str | Path | None) -> Path | None:
        if explicit is not None:
            return Path(explicit)
        found = find(key, searched)
        if key == "aeg":
            found.sort(key=_aeg_order)
        if twins and key in TWIN_KEYS:
            found = prefer_twins(found)
        return found[0] if found else None

    aeg_path, deca_path, template_path = pick("aeg", aeg), pick("deca", deca), pick("head_template", head_template)
    if flame is not None:
        flame_path = Path(flame)
        embedding_path = pick("landmark_embedding", landmark_embedding) if flame_path.suffix == ".pkl" else None
    else:
        candidates = find("flame", searched)
        converted = [p for p in candidates if p.suffix in (".npz", ".safetensors")]
        flame_path = (converted or candidates or [None])[0]
        embedding_path = pick("landmark_embedding", landmark_embedding) if flame_path is not None and not converted else None
    needs_embedding = flame_path is None or flame_path.suffix == ".pkl"
    shape_missing = tuple(k for k, p in (("deca", deca_path), ("flame", flame_path), ("head_template", template_path)) if p is None)
    if flame_path is not None and flame_path.suffix == ".pkl" and embedding_path is None:
        shape_missing += ("landmark_embedding",)

    problems = []
    wanted = [("aeg", aeg, aeg_path)]
    if require_shape_stage:
        wanted += [("deca", deca, deca_path), ("flame", flame, flame_path), ("head_template", head_template, template_path)]
        if needs_embedding:
            wanted.insert(3, ("landmark_embedding", landmark_embedding, pick("landmark_embedding", landmark_embedding)))
    for key, explicit, path in wanted:
        if explicit is not None and not Path(explicit).is_file():
            problems.append(f"{entry(key).purpose}: {explicit} does not exist; {advice(key, destination)}")
        elif path is None:
            what = "AEG checkpoint" if key == "aeg" else entry(key).purpose
            problems.append(f"no {what} found ({' or '.join(entry(key).patterns)}); {advice(key, destination)}")
    if identity == "pae":
        pairs = {pae_pair_of(p) for p in find("pae", searched)}
        absent = [name for kind, name in PAE_FILES.items() if kind not in pairs]
        if absent:
            problems.append(f"{entry('pae').purpose}: {', '.join(absent)} not found; {advice('pae', destination)}")
    elif identity not in (None, "none", "auto") and not Path(identity).is_file():
        problems.append(f"{entry('arcface').purpose}: {identity} does not exist; {advice('arcface', destination)}")
    return RunFiles(aeg_path, deca_path, flame_path, embedding_path, template_path, searched, shape_missing, problems)


def pae_pair_of(path: Path) -> str | None:
    """The PAE pair of a file: its nearest parent folder named FF, FS, FP, SS, SP or PP (any case)."""
    return next((parent.name.upper() for parent in path.parents if parent.name.upper() in PAE_FILES), None)


def check_weights(
    folders: list[str | Path] | None = None,
    aeg: str | Path | None = None,
    identity: str | Path | None = None,
    **files: str | Path | bool | None,
) -> None:
    """Raise one :class:`~pasl.errors.MissingWeightError` listing every file the run needs and lacks.

    By name only (no file is opened, torch is not imported), so a run fails in well under a second and
    names all its missing files at once, instead of one per run after each slow load. ``files`` takes the
    other keywords of :func:`resolve_weights` (``deca``, ``flame``, ``require_shape_stage`` ...).
    """
    resolve_weights(folders, aeg=aeg, identity=identity, twins=False, **files).require()
