"""``python -m pasl doctor``: which weights were found, which are missing, which backends work.

Only looks: it opens no weight file and downloads nothing, so it is safe to run anywhere; where a
file is missing it names the ``python -m pasl download`` command that fetches it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from .catalog import (
    CATALOG,
    EVAL_FOLDER,
    METRIC_KEYS,
    METRICS_ONLY,
    WeightFile,
    download_command,
    entry,
    find,
    model_folder,
    search_folders,
)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def backends(folders: list[Path] | None = None) -> dict[str, bool | str]:
    """Optional components and devices, as the user's environment has them."""
    from .align.detect import fan_files_present

    return {
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else False,
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "opencv": _has_module("cv2"),
        "dlib (alignment backend 'dlib')": _has_module("dlib") and _has_module("face_recognition_models"),
        "FAN weights (alignment backend 'fan')": fan_files_present(folders),
        "pytorch3d (optional rasteriser)": _has_module("pytorch3d"),
    }


def diagnose(folders: list[str | Path] | None = None) -> dict:
    """Found files per catalogue entry, missing required ones, and backends."""
    searched = search_folders(folders)
    files = {item.key: [str(p) for p in find(item.key, searched)] for item in CATALOG}
    missing = [
        {"file": " or ".join(item.patterns), "purpose": item.purpose, "get_it_from": item.source, "licence": item.licence,
         "download": download_command(item.key)}
        for item in CATALOG
        if item.required and not files[item.key]
    ]
    from .pae import PAIR_KINDS, find_pae_files

    pae = sorted(find_pae_files(searched), key=PAIR_KINDS.index)
    return {"searched": [str(p) for p in searched], "found": files, "missing": missing, "pae_pairs": pae,
            "download_folder": str(model_folder()), "backends": backends(searched)}


def _file_line(what: str, item: WeightFile, found: list[str]) -> str:
    mark = "ok " if found else ("-- " if not item.required else "MISSING")
    return f"  [{mark:>7}] {what}: {', '.join(found) if found else ' or '.join(item.patterns)}"


def format_report(report: dict) -> str:
    lines = ["PASL doctor", "searched, in this order (--weights-dir, $PASL_WEIGHTS, then the default folders):"]
    lines += [f"  {folder}" + ("" if Path(folder).is_dir() else "  (does not exist)") for folder in report["searched"]]
    for item in CATALOG:
        if item.key not in METRIC_KEYS:
            lines.append(_file_line(item.purpose, item, report["found"][item.key]))
    pairs = report.get("pae_pairs", [])
    if pairs and len(pairs) < 6:
        from .pae import PAIR_KINDS

        absent = ", ".join(k for k in PAIR_KINDS if k not in pairs)
        lines.append(f"  PAE: {len(pairs)} of 6 pair networks found (missing {absent}); identity scores need all six, "
                     f"each in its POE/<pair> folder (`{download_command('pae')}`), or an ArcFace IR-50")
    for gap in report["missing"]:
        command = f", or run `{gap['download']}`" if gap.get("download") else ""
        lines.append(f"  get {gap['file']} from {gap['get_it_from']} ({gap['licence']}){command}")
    if report["missing"]:
        lines.append(f"  every file at once: `python -m pasl download all` (into {report.get('download_folder', 'the model folder')}, "
                     "or --to DIR; FLAME asks for your own flame.is.tue.mpg.de login)")
    lines.append(f"metrics (optional; {METRICS_ONLY}):")
    lines += [_file_line(entry(key).purpose.split(" (")[0], entry(key), report["found"][key]) for key in METRIC_KEYS]
    if not all(report["found"][key] for key in METRIC_KEYS):
        lines.append(f"  get them with `{download_command(METRIC_KEYS[0])}` (into "
                     f"{Path(report.get('download_folder', 'the model folder')) / EVAL_FOLDER}, or --to DIR)")
    lines.append("backends:")
    lines += [f"  {name}: {value if value is not False else 'not available'}" for name, value in report["backends"].items()]
    return "\n".join(lines)
