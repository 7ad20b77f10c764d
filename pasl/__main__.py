"""Command line: ``python -m pasl <command> ...`` (also installed as ``pasl``).

Every failure a user can cause (missing or wrong file) is printed as one line and exits
with status 2; a traceback means a bug in PASL.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import PASLError


def _convert_weights(args: argparse.Namespace) -> dict:
    """AEG checkpoints and DECA's deca_model.tar, told apart by their contents."""
    from pathlib import Path

    from .weights import checkpoint_kind, convert_aeg_to_safetensors, load_pickle_weights, require_file

    src = require_file(args.src, "weight file", "see weights/README.md")
    if src.suffix != ".safetensors" and checkpoint_kind(load_pickle_weights(src, expected="an AEG or DECA checkpoint")) == "deca":
        from .csg.encoder import convert_deca_to_safetensors

        return convert_deca_to_safetensors(src, Path(args.dst))
    return convert_aeg_to_safetensors(src, args.dst)


def _convert_flame(args: argparse.Namespace) -> dict:
    from .flame import convert_flame

    return convert_flame(args.model, args.landmarks, args.dst)


def _doctor(args: argparse.Namespace) -> dict | None:
    from .doctor import diagnose, format_report

    report = diagnose(args.weights_dir)
    if args.json:
        return report
    print(format_report(report))
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pasl", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is loaded")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser(
        "convert-weights",
        help="convert an official AEG checkpoint ({step}_nets_ema.ckpt) or deca_model.tar to .safetensors",
        description="Checks the file strictly, then writes DST with the source's name and sha256 as metadata.",
    )
    convert.add_argument("src", help="official {step}_nets_ema.ckpt, {step}_nets.ckpt or deca_model.tar")
    convert.add_argument("dst", help="output path ending in .safetensors (e.g. pasl_aeg_204000.safetensors, pasl_deca.safetensors)")
    convert.set_defaults(run=_convert_weights)

    flame = commands.add_parser(
        "convert-flame",
        help="convert FLAME's generic_model.pkl + landmark_embedding.npy to one plain file (no pickle, no chumpy)",
    )
    flame.add_argument("model", help="FLAME 2020 generic_model.pkl")
    flame.add_argument("landmarks", help="DECA's landmark_embedding.npy")
    flame.add_argument("dst", help="output ending in .npz or .safetensors (e.g. pasl_flame.safetensors)")
    flame.set_defaults(run=_convert_flame)

    doctor = commands.add_parser("doctor", help="list the weight files found and missing, and the available backends")
    doctor.add_argument("--weights-dir", action="append", default=[], help="also search this folder (repeatable)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.run(args)
    except (PASLError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
