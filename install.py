"""Set-up step that ComfyUI-Manager runs after `pip install -r requirements.txt`.

Idempotent and offline-safe: it creates the model folder, converts official pickles found
there to .safetensors twins (once; `--no-convert` skips it) and reports which weight files
are present. It never downloads anything (the weights are licence-gated or on Google Drive)
and never fails the installation: a missing or broken file is reported with what to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
sys.path.insert(0, str(PACK))

from pasl.catalog import CATALOG, find, model_folder, search_folders  # noqa: E402  (stdlib only: safe before torch exists)


def convert_official_files(folder: Path) -> None:
    """Write a .safetensors twin of every official pickle found (once; skipped when it exists).

    Safetensors load faster and can never carry code; the pickles stay where they are. Model discovery
    uses a twin in place of its pickle once the twin's metadata matches the pickle's sha256
    (:func:`pasl.catalog.prefer_twins`), so the pickle may be deleted to save disk space.
    """
    try:
        from pasl.aeg_files import convert_aeg_to_safetensors
        from pasl.errors import PASLError
    except ImportError as err:  # torch not installed yet: nothing to convert with
        print(f"[PASL] conversion skipped ({err})")
        return
    jobs = []
    for ckpt in sorted(folder.rglob("*_nets_ema.ckpt")):
        jobs.append((ckpt, ckpt.with_name(f"pasl_aeg_{ckpt.name.split('_')[0]}.safetensors"), convert_aeg_to_safetensors))
    for tar in sorted(folder.rglob("deca_model.tar")):
        from pasl.csg.encoder import convert_deca_to_safetensors

        jobs.append((tar, tar.with_name("pasl_deca.safetensors"), convert_deca_to_safetensors))
    for pkl in sorted(folder.rglob("generic_model.pkl")):
        embedding = next(iter(sorted(folder.rglob("landmark_embedding.npy"))), None)
        if embedding is not None:
            from pasl.flame_files import convert_flame

            jobs.append((pkl, pkl.with_name("pasl_flame.safetensors"), lambda src, dst, e=embedding: convert_flame(src, e, dst)))
    for src, dst, convert in jobs:
        if dst.exists():
            continue
        try:
            convert(src, dst)
            print(f"[PASL] converted {src.name} -> {dst.name}")
        except (PASLError, OSError, ValueError) as err:
            print(f"[PASL] could not convert {src}: {err}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = model_folder()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[PASL] model folder: {folder}")
    if "--no-convert" not in argv:
        convert_official_files(folder)
    searched = search_folders()  # the folders `python -m pasl doctor` and the nodes search, in their order
    print(f"[PASL] searched: {', '.join(map(str, searched))}")
    for item in CATALOG:
        found = find(item.key, searched)
        if found:
            print(f"[PASL] found {item.purpose}: {', '.join(p.name for p in found)}")
        elif item.required:
            print(f"[PASL] missing {item.purpose} ({' or '.join(item.patterns)}): get it from {item.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
