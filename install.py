"""Set-up step that ComfyUI-Manager runs after `pip install -r requirements.txt`.

Idempotent and offline-safe: it creates the model folder and reports which weight files
are present. It never downloads anything and never fails the installation: a missing
file is reported with where to get it (the same advice as `python -m pasl doctor`).
"""

from __future__ import annotations

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
sys.path.insert(0, str(PACK))

from pasl.catalog import CATALOG, find  # noqa: E402  (stdlib only: safe before torch exists)


def model_folder() -> Path:
    """``ComfyUI/models/pasl`` when installed under ``ComfyUI/custom_nodes``, else the pack's ``weights/``."""
    comfy_root = PACK.parent.parent
    if PACK.parent.name == "custom_nodes" and (comfy_root / "models").is_dir():
        return comfy_root / "models" / "pasl"
    return PACK / "weights"


def main() -> int:
    folder = model_folder()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[PASL] model folder: {folder}")
    for item in CATALOG:
        found = find(item.key, [folder, PACK / "weights"])
        if found:
            print(f"[PASL] found {item.purpose}: {', '.join(p.name for p in found)}")
        elif item.required:
            print(f"[PASL] missing {item.purpose} ({' or '.join(item.patterns)}): get it from {item.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
