"""Set-up step that ComfyUI-Manager runs after `pip install -r requirements.txt`.

Idempotent and offline-safe: it creates the model folder and reports which weight files
are present. It never downloads anything and never fails the installation: a missing
file is reported with where to get it.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
EXPECTED = {
    "*_nets_ema.ckpt or *.safetensors (AEG)": ("*_nets_ema.ckpt", "*.safetensors"),
}


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
    for label, patterns in EXPECTED.items():
        found = sorted({p.name for pattern in patterns for p in folder.rglob(pattern)})
        state = ", ".join(found) if found else "missing - see weights/README.md for where to get it"
        print(f"[PASL] {label}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
