"""``python -m pasl.eval compose-pairs --yaws yaws.json --out pairs.txt [--mode self|cross] [--seed N] ...``

Failures a user can cause print one line ``error: ...`` and exit with status 2 (as ``python -m pasl``).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import PASLError


def _compose(args: argparse.Namespace) -> dict:
    from .pairs import compose_pairs, load_faces, summarise, write_pairs

    faces = load_faces(args.yaws)
    pairs = compose_pairs(
        faces, mode=args.mode, min_gap=args.min_gap, per_bin_pair=args.per_bin_pair,
        bin_pairs=[bp.strip().upper() for bp in args.bin_pairs.split(",") if bp.strip()], max_pitch=args.max_pitch, seed=args.seed,
    )
    write_pairs(pairs, args.out)
    return {"out": str(args.out), "pairs": len(pairs), "per_bin_pair": summarise(pairs, faces), "faces": len(faces)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pasl.eval", description="Benchmark helpers (issue 17).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "compose-pairs", help="draw a large-pose test-pair list in the release's 'src ref [gt]' format",
        description="Source and driver from different yaw bins (F <= 30 < S < 60 <= P degrees), at least --min-gap degrees apart.",
    )
    p.add_argument("--yaws", required=True, help='JSON: image path -> {"yaw": deg, "pitch": deg, "identity": label}')
    p.add_argument("--out", required=True, help="pair list to write")
    p.add_argument(
        "--mode", choices=("self", "cross"), default="cross", help="self: same identity, gt = driver; cross: different identities",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-gap", type=float, default=30.0, help="minimum |yaw_source - yaw_driver| in degrees (default 30)")
    p.add_argument("--per-bin-pair", type=int, default=100, help="pairs per ordered bin pair (default 100)")
    p.add_argument("--bin-pairs", default="FS,FP,SF,SP,PF,PS", help="ordered source-driver bin pairs (default all six)")
    p.add_argument("--max-pitch", type=float, default=None, help="drop faces with |pitch| above this many degrees")
    p.set_defaults(func=_compose)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except PASLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
