"""``python -m pasl.eval compose-pairs ...`` and ``python -m pasl.eval run ...``: the paper's benchmarks.

* ``compose-pairs --images DIR --out pairs.txt`` measures every photo's head pose with our DECA codes
  and draws a large-pose pair list (``--yaws yaws.json`` takes poses measured elsewhere instead);
* ``run --pairs pairs.txt --out DIR`` reenacts every pair into the release's folders (resumable),
  scores them and prints the table.

Failures a user can cause print one line ``error: ...`` and exit with status 2 (as ``python -m pasl``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..errors import PASLError

log = logging.getLogger(__name__)


def _relative(path: Path, base: Path) -> str:
    """``path`` as the list writes it: relative to the list's folder where possible, with ``/``."""
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


def _image_files(folder: Path) -> list[Path]:
    from ..files import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise PASLError(f"--images {folder}: not a folder of images.")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PASLError(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it or its sub-folders.")
    return files


def _read_identities(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PASLError(f"--identities {path} not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PASLError(f"--identities {path} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise PASLError(f"--identities {path} must map image paths (relative to --images) to identity labels.")
    return {str(k): str(v) for k, v in data.items()}


def _measure_folder(args: argparse.Namespace, out: Path) -> tuple[dict, list[str]]:
    """``yaws.json``'s mapping for every photo under ``--images`` (keys relative to the list's folder),
    and the photos without a face."""
    from ..align import make_detector
    from ..files import read_rgb
    from ..models import auto_device
    from .measure import find_shape_encoder, measure_photos
    from .pairs import identity_of

    root = Path(args.images)
    files = _image_files(root)
    identities = _read_identities(args.identities)
    labels = {f: identity_of(f.relative_to(root), identities) for f in files}  # every label checked before loading
    encoder = find_shape_encoder(args.weights_dir, device=auto_device(args.device))
    detector = make_detector(args.backend, args.weights_dir)
    mapping, faceless = {}, []
    for start in range(0, len(files), args.batch_size):
        batch = files[start : start + args.batch_size]
        measures, has_face = measure_photos(encoder, detector, [read_rgb(f) for f in batch])
        for row, f in enumerate(batch):
            key = _relative(f, out.parent)
            if not bool(has_face[row]):
                faceless.append(key)
                continue
            mapping[key] = {"yaw": round(float(measures.yaw[row]), 3), "pitch": round(float(measures.pitch[row]), 3),
                            "identity": labels[f]}
        print(f"measured {min(start + args.batch_size, len(files))}/{len(files)} photos", file=sys.stderr, flush=True)
    if not mapping:
        raise PASLError(f"--images {root}: no face found in any of its {len(files)} images.")
    return mapping, faceless


def _compose(args: argparse.Namespace) -> dict:
    from .pairs import compose_pairs, faces_from_mapping, load_faces, summarise, write_pairs

    out = Path(args.out)
    if (args.yaws is None) == (args.images is None):
        raise PASLError("give either --images DIR (poses measured here) or --yaws FILE (poses measured elsewhere).")
    bin_pairs = [bp.strip().upper() for bp in args.bin_pairs.split(",") if bp.strip()]
    compose_pairs([], mode=args.mode, min_gap=args.min_gap, per_bin_pair=args.per_bin_pair, bin_pairs=bin_pairs)  # checks options
    result: dict = {}
    if args.images is not None:
        mapping, faceless = _measure_folder(args, out)
        faces = faces_from_mapping(mapping, where=str(args.images))
        yaws_out = Path(args.yaws_out) if args.yaws_out else out.with_suffix(".yaws.json")
        yaws_out.parent.mkdir(parents=True, exist_ok=True)
        yaws_out.write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        result.update(yaws=str(yaws_out), faceless=faceless)
    else:
        faces = load_faces(args.yaws)
    pairs = compose_pairs(faces, mode=args.mode, min_gap=args.min_gap, per_bin_pair=args.per_bin_pair, bin_pairs=bin_pairs,
                          max_pitch=args.max_pitch, seed=args.seed)
    write_pairs(pairs, out)
    result.update(out=str(out), pairs=len(pairs), per_bin_pair=summarise(pairs, faces), faces=len(faces))
    return result


def _metric_models(args: argparse.Namespace, models, detector):
    """The scoring networks (:func:`pasl.eval.weights.metric_models`); what is left out for want of weights is
    named in one line on stderr."""
    from .weights import metric_models

    metric, absent = metric_models(models, detector, args.protocol, args.weights_dir)
    if metric.pae is None:
        absent.insert(0, "pae_csim (the six PAE networks: python -m pasl download pae)")
    if absent:
        print(f"not scored, their weights were not found: {', '.join(absent)} (metric backbones: python -m pasl download eval)",
              file=sys.stderr)
    return metric


def _run(args: argparse.Namespace) -> dict:
    from ..align import make_detector
    from ..models import auto_device, check_weights, load_models
    from ..pipeline import ReenactOptions, Reenactor
    from .pairs import read_pairs
    from .report import score_run, write_results
    from .runner import RunLayout, checkpoint_tag, generate_pairs

    pairs = read_pairs(args.pairs, args.root)
    missing = [p for pair in pairs for p in (pair.source, pair.driver, pair.ground_truth) if p is not None and not Path(p).is_file()]
    if missing and not args.score_only:
        raise PASLError(f"{len(set(missing))} image(s) of {args.pairs} not found, e.g. {missing[0]}; "
                        "relative paths are read from --root (default: the list's folder).")
    if args.batch_size < 1:
        raise PASLError(f"--batch-size must be a whole number >= 1, got {args.batch_size}.")
    try:
        options = ReenactOptions.preset(args.preset, batch_size=args.batch_size)
    except ValueError as err:
        raise PASLError(str(err)) from None
    check_weights(args.weights_dir, args.aeg, "auto")
    device = auto_device(args.device)
    models = load_models(args.weights_dir, aeg=args.aeg, device=device, identity="auto")
    detector = make_detector(args.backend or ("fan" if args.preset.startswith("official") else "auto"), args.weights_dir)
    aeg_path = models.aeg.source or None  # the file load_models chose
    layout = RunLayout(Path(args.out), args.tag or checkpoint_tag(aeg_path))
    result: dict = {"out": str(layout.out), "tag": layout.tag, "pairs": len(pairs)}
    if not args.score_only:
        report = generate_pairs(Reenactor(models, detector, options), pairs, layout, args.batch_size, _progress("reenacting"))
        result.update(reenacted=len(report.done), already_done=len(report.already_done), failed=len(report.failed))
        if report.failed:
            first = min(report.failed)
            print(f"{len(report.failed)} pair(s) could not be reenacted (listed in {layout.out / 'failed.json'}); "
                  f"first: line {first + 1}: {report.failed[first]}", file=sys.stderr)
    if args.no_score:
        return result
    metric = _metric_models(args, models, detector)
    results = score_run(metric, layout, pairs, args.batch_size, _progress("scoring"))
    settings = {"pairs": str(args.pairs), "preset": args.preset, "protocol": args.protocol, "backend": detector.name,
                "aeg": None if aeg_path is None else str(aeg_path), "metrics": metric.available()}
    paths = write_results(layout, results, settings)
    print(results.table(f"PASL evaluation: {results.scored} pairs"))
    result.update(scored=results.scored, results={k: str(v) for k, v in paths.items()},
                  metrics={k: v["mean"] for k, v in results.summary.items()})
    return result


def _progress(what: str):
    def report(done: int, total: int) -> None:
        print(f"{what} {done}/{total} pairs", file=sys.stderr, flush=True)

    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pasl.eval", description="The paper's benchmarks: pair lists, runs, scores.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "compose-pairs", help="draw a large-pose test-pair list in the release's 'src ref [gt]' format",
        description="Source and driver from different yaw bins (F <= 30 < S < 60 <= P degrees), at least --min-gap degrees apart.",
    )
    p.add_argument("--images", default=None, help="folder of photos (DIR/<identity>/*.jpg, or flat): poses measured with DECA")
    p.add_argument("--yaws", default=None, help='instead of --images: JSON image path -> {"yaw": deg, "pitch": deg, "identity": label}')
    p.add_argument("--out", required=True, help="pair list to write")
    p.add_argument("--identities", default=None, help="with --images: JSON image path (relative to --images) -> identity label")
    p.add_argument("--yaws-out", default=None, help="with --images: where the measured poses go (default: <out>.yaws.json)")
    p.add_argument(
        "--mode", choices=("self", "cross"), default="cross", help="self: same identity, gt = driver; cross: different identities",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-gap", type=float, default=30.0, help="minimum |yaw_source - yaw_driver| in degrees (default 30)")
    p.add_argument("--per-bin-pair", type=int, default=100, help="pairs per ordered bin pair (default 100)")
    p.add_argument("--bin-pairs", default="FS,FP,SF,SP,PF,PS", help="ordered source-driver bin pairs (default all six)")
    p.add_argument("--max-pitch", type=float, default=None, help="drop faces with |pitch| above this many degrees")
    _model_arguments(p, backend="auto")
    p.add_argument("--batch-size", type=int, default=16, help="photos measured per batch")
    p.set_defaults(func=_compose)

    r = sub.add_parser("run", help="reenact a pair list into the release's folders (resumable), score it, print the table",
                       description="Writes <out>/<tag>{,real,lm,ground_truth,gt}/NNNN_00.png, scores.jsonl, results.json, results.md.")
    r.add_argument("--pairs", required=True, help="'src ref [gt]' list (e.g. from compose-pairs)")
    r.add_argument("--out", required=True, help="folder for the images and results")
    r.add_argument("--root", default=None, help="folder relative paths in the list start from (default: the list's folder)")
    r.add_argument("--preset", choices=("paper", "official-test", "official-demo"), default="paper",
                   help="reenactment options: paper (default; photos are aligned) or official-test "
                        "(the release's protocol, for lists of aligned 256 crops)")
    r.add_argument("--aeg", default=None, help="AEG checkpoint (default: the first *_nets_ema.ckpt found)")
    r.add_argument("--tag", default=None, help="folder tag (default: the checkpoint's step, e.g. 250000)")
    r.add_argument("--batch-size", type=int, default=16, help="pairs per batch (the release: 16)")
    r.add_argument("--protocol", choices=("fixed", "official"), default="fixed",
                   help="PAE-CSIM recipe: fixed (default) or official (mean_pae_csim.py's input recipe and PP->SS routing)")
    r.add_argument("--score-only", action="store_true", help="score the images already in --out, reenact nothing")
    r.add_argument("--no-score", action="store_true", help="reenact only")
    _model_arguments(r, backend=None)
    r.set_defaults(func=_run)
    return parser


def _model_arguments(p: argparse.ArgumentParser, backend: str | None) -> None:
    p.add_argument("--weights-dir", action="append", default=[], help="folder with the weight files (repeatable)")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1, ...")
    p.add_argument("--backend", default=backend, choices=("auto", "fan", "dlib", "dlib-hog"),
                   help="face detector" + (" (default: fan for the official presets, else auto)" if backend is None else ""))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except (PASLError, OSError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (finished pairs are kept: run the same command again to go on)", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    from ..allocator import retain_freed_memory

    retain_freed_memory()
    sys.exit(main())
