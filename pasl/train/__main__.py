"""``python -m pasl.train --config FILE [--preset NAME] [--set key=value ...] [--resume DIR] [--dry-run]``.

Under ``torchrun --nproc_per_node N -m pasl.train ...`` every process runs this; only rank 0 logs and
writes checkpoints. Errors a user can fix print one line ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import PASLError
from .config import PRESETS, load_config, parse_override


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pasl.train", description="Train or fine-tune the PASL AEG (one process or torchrun).")
    parser.add_argument("--config", help="a JSON config (or YAML with PyYAML installed); relative paths start at its folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset (the config file and --set go on top)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (value read as JSON, else text); repeatable")
    parser.add_argument("--resume", metavar="DIR", help="continue from the latest checkpoint in DIR")
    parser.add_argument("--dry-run", action="store_true", help="check the config, data and weights, read one pair, train nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from .run import run

    try:
        if args.config is None and args.preset is None:
            raise PASLError("give --config FILE or --preset NAME.")
        config = load_config(args.config, preset=args.preset, overrides=dict(map(parse_override, args.overrides)))
        result = run(config, resume=args.resume, dry_run=args.dry_run)
    except (PASLError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if rank == 0:
        print(f"step {result.step}; checkpoints in {result.output_dir}")
    return 0


if __name__ == "__main__":
    from ..allocator import retain_freed_memory

    retain_freed_memory()
    sys.exit(main())
