"""Command line: ``python -m pasl <command> ...`` (also installed as ``pasl``).

Every failure a user can cause (missing or wrong file, no face, bad option) is printed as one
line ``error: ...`` in the command line's words and exits with status 2 (130 on Ctrl-C);
a traceback means a bug in PASL.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from .errors import PASLError

PRESET_NAMES = ("paper", "official-demo", "official-test")
"""``pasl.pipeline.PRESETS`` by name (the pipeline, and torch, load only when a command runs)."""


def _convert_weights(args: argparse.Namespace) -> dict:
    """AEG checkpoints and DECA's deca_model.tar, told apart by their contents."""
    from pathlib import Path

    from .aeg_files import convert_aeg_to_safetensors
    from .weights import checkpoint_kind, load_pickle_weights, require_file

    src = require_file(args.src, "weight file", "the links in weights/README.md")
    if src.suffix != ".safetensors" and checkpoint_kind(load_pickle_weights(src, expected="an AEG or DECA checkpoint")) == "deca":
        from .csg.encoder import convert_deca_to_safetensors

        return convert_deca_to_safetensors(src, Path(args.dst))
    return convert_aeg_to_safetensors(src, args.dst)


def _convert_flame(args: argparse.Namespace) -> dict:
    from .flame_files import convert_flame

    return convert_flame(args.model, args.landmarks, args.dst)


def _doctor(args: argparse.Namespace) -> dict | None:
    from .doctor import diagnose, format_report

    report = diagnose(args.weights_dir)
    if args.json:
        return report
    print(format_report(report))
    return None


def _auto_device(name: str):
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


OPTION_FLAGS = {
    "mode": "--mode", "paste_back": "--paste-back", "smoothing": "--smoothing", "flatten": "--flatten", "select": "--select",
    "source_alignment": "--source-is-crop", "driver_alignment": "--driver-is-crop", "crop_landmarks": "--crop-landmarks",
    "warp": "--warp", "output_rounding": "--rounding", "lock_scale": "--lock-scale", "color_match": "--color-match",
    "cycle_check": "--cycle-check", "refine_steps": "--refine-steps", "identity_score": "--identity-score",
    "batch_size": "--batch-size", "tracking": "--tracking", "detect_every": "--detect-every",
}
"""The ``reenact`` flag that sets each :class:`pasl.pipeline.ReenactOptions` field (for messages)."""


def _options(args: argparse.Namespace):
    """The run's :class:`pasl.pipeline.ReenactOptions`: the preset, with what the user set explicitly on top."""
    from .pipeline import ReenactOptions

    chosen = {  # what the user set explicitly wins over the preset
        "mode": args.mode, "paste_back": args.paste_back, "smoothing": args.smoothing, "flatten": args.flatten,
        "select": None if args.select is None else (int(args.select) if args.select.lstrip("-").isdigit() else args.select),
        "source_alignment": "resize" if args.source_is_crop else None,
        "driver_alignment": "resize" if args.driver_is_crop else None,
        "crop_landmarks": args.crop_landmarks, "warp": args.warp, "output_rounding": args.rounding,
        "tracking": args.tracking, "detect_every": args.detect_every,
    }
    try:
        return ReenactOptions.preset(
            args.preset,
            **{k: v for k, v in chosen.items() if v is not None},
            lock_scale=args.lock_scale,
            color_match=args.color_match,
            cycle_check=args.cycle_check,
            refine_steps=args.refine_steps,
            identity_score=args.identity_score,
            batch_size=args.batch_size,
        )
    except ValueError as err:  # the library names its fields; the command line names its flags
        text = str(err)
        for field, flag in OPTION_FLAGS.items():
            text = text.replace(f"ReenactOptions.{field}", flag)
        raise ValueError(text) from None


PRECISION_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


class _Progress:
    """The run's feedback on stderr: stage lines, then a per-frame tqdm bar (elapsed, ETA, frames/s).

    Off when stderr is not a terminal, unless ``--progress`` asks for it (``--no-progress`` silences it).
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def stage(self, name: str) -> None:
        if self.enabled and self.bar is None:
            print(f"{name} ...", file=sys.stderr, flush=True)

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total or None, unit="frame", desc="reenacting", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _reenact(args: argparse.Namespace) -> None:
    import torch

    from .align import make_detector
    from .files import check_paths, reenact_files
    from .models import check_weights, load_models
    from .pipeline import Reenactor

    options = _options(args)  # a bad option or path is reported before anything is loaded
    check_paths(args.source, args.driving, args.out)
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be a whole number >= 1, got {args.chunk_size}")
    check_weights(args.weights_dir, args.aeg, "auto" if args.identity_score else None)  # every missing file, in a second
    progress = _Progress(args.progress if args.progress is not None else sys.stderr.isatty())
    device = _auto_device(args.device)
    precisions = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    dtype = precisions[args.precision] if args.precision != "auto" else (torch.float16 if device.type == "cuda" else torch.float32)
    precision = PRECISION_NAMES[str(dtype).replace("torch.", "")]
    progress.stage(f"loading models ({device}, {precision})")
    models = load_models(args.weights_dir, aeg=args.aeg, device=device, dtype=dtype, identity="auto" if args.identity_score else None)
    if args.identity_score:
        models.require_identity()
    official = args.preset.startswith("official")
    detector = make_detector(args.backend or ("fan" if official else "auto"), args.weights_dir)

    # faceless frames are listed in the summary; the aligner's warning per chunk would break the bar and the one-line error
    align_log = logging.getLogger("pasl.align")
    level = align_log.level
    if not args.verbose:
        align_log.setLevel(logging.ERROR)
    start = time.perf_counter()
    try:
        summary = reenact_files(Reenactor(models, detector, options), args.source, args.driving, args.out, args.chunk_size,
                                progress, progress.stage)
    finally:
        progress.close()
        align_log.setLevel(level)
    seconds = time.perf_counter() - start
    for note in summary.notes():
        print(note)
    rate = summary.frames / max(seconds, 1e-9)
    speed = f"{rate:.{2 if rate < 1 else 1}f} frames/s; backend {detector.name}, {device} {precision}"
    print(f"{summary.headline()} in {seconds:.1f} s ({speed}) -> {args.out}")


LIBRARY_WORDS = {"load the models in float32 (--precision fp32 on the command line)": "try --precision fp32"}
"""Library phrases and what the command line says instead."""


def _message(err: BaseException) -> str:
    """One line, in the command line's words."""
    text = " ".join(str(err).split())
    for library, command_line in LIBRARY_WORDS.items():
        text = text.replace(library, command_line)
    return text


def _download(args: argparse.Namespace) -> dict:
    from .download import download

    return {"downloaded": [str(p) for p in download(args.what, args.to)]}


def program_name(argv0: str | None = None) -> str:
    """``pasl`` when run as the installed console script, else ``python -m pasl``: help shows what the user typed."""
    from pathlib import Path

    name = Path(sys.argv[0] if argv0 is None else argv0).name.lower()
    return "pasl" if name in ("pasl", "pasl.exe", "pasl-script.py") else "python -m pasl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name(), description=__doc__.splitlines()[0])
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

    run = commands.add_parser(
        "reenact",
        help="render the source face with the driving face's pose and expression",
        description="Source image + driving image, folder of images or video -> image, folder or video (with audio).",
    )
    run.add_argument("--source", required=True, help="image of the source person (identity)")
    run.add_argument("--driving", required=True, help="driving image, folder of images, or video (pose + expression)")
    run.add_argument("--out", required=True, help="output image, folder, or video file (.mp4) for a video driver")
    run.add_argument("--weights-dir", action="append", default=[], help="folder with the weight files (repeatable)")
    run.add_argument("--aeg", help="a specific AEG checkpoint (default: 204000_nets_ema.ckpt if found)")
    run.add_argument("--preset", choices=PRESET_NAMES, default="paper",
                     help="paper (default); official-demo / official-test: the authors' two inference paths, for "
                     "their numbers (FAN backend; explicit options below still win)")
    run.add_argument("--mode", choices=["recompose", "reference", "shape_only"], default=None,
                     help="recompose = the paper (source shape, driver motion; default); reference = the official demo")
    run.add_argument("--paste-back", action=argparse.BooleanOptionalAction, default=None,
                     help="blend the face into the driving frame (default) or write 256x256 crops")
    run.add_argument("--source-is-crop", action="store_true", help="the source is already an aligned 256 face crop")
    run.add_argument("--driver-is-crop", action="store_true", help="the driving images are already aligned 256 face crops")
    run.add_argument("--backend", choices=["auto", "fan", "dlib", "dlib-hog"], default=None,
                     help="face detector (default auto: FAN when its files are found, else dlib; fan for the official presets)")
    run.add_argument("--select", default=None,
                     help="face to use when several: largest (default), central, score or an index; all = reenact every face "
                     "of the driver (the source's largest face)")
    run.add_argument("--smoothing", type=float, default=None, help="temporal smoothing of a video driver (default 1; 0 = off)")
    run.add_argument("--crop-landmarks", choices=["redetect", "mapped"], default=None,
                     help="DECA's crop from its own landmark pass on the aligned crop (redetect, official; default) "
                     "or from the aligner's landmarks (mapped, faster)")
    run.add_argument("--warp", choices=["cv2", "torch"], default=None, help="aligned crop by cv2 (official, default) or torch")
    run.add_argument("--rounding", choices=["round", "truncate"], default=None,
                     help="8-bit output: round (default) or truncate (the official demo)")
    run.add_argument("--tracking", action=argparse.BooleanOptionalAction, default=None,
                     help="follow the faces of a video driver and run the face detector only when needed (default; off for "
                     "the official presets); --no-tracking detects every frame")
    run.add_argument("--detect-every", type=int, default=None, metavar="N",
                     help="with tracking, run the face detector at least every N frames (default 25; 0 = only on the first "
                     "frame, scene cuts and lost faces)")
    run.add_argument("--lock-scale", action="store_true", help="keep the video crop's scale fixed (no head-size wobble)")
    run.add_argument("--color-match", type=float, default=0.0, help="match the face's colours to the frame (0..1)")
    run.add_argument("--cycle-check", action="store_true", help="log the cycle-consistency error of the shapes")
    run.add_argument("--refine-steps", type=int, default=0, help="cycle-consistency refinement steps (0 = off)")
    run.add_argument("--identity-score", action="store_true",
                     help="report PAE-CSIM of every result to the source (needs the six POE/ files or an ArcFace IR-50)")
    run.add_argument("--flatten", action="store_true", default=None, help="the official test protocol's flattened maps")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    run.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                     help="AEG precision (auto: fp16 on CUDA like the official demo, else fp32)")
    run.add_argument("--batch-size", type=int, default=8, help="frames per generator call")
    run.add_argument("--chunk-size", type=int, default=16, help="video frames held in memory at once")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar and stage lines on stderr (default: only when stderr is a terminal)")
    run.set_defaults(run=_reenact)

    fetch = commands.add_parser(
        "download", help="download the publicly available weight files (the optional FAN detector); nothing else is fetched",
        epilog="Files come from the FAN authors' site, or from $PASL_DOWNLOAD_BASE_URL when set (a mirror with the same file names).",
    )
    fetch.add_argument("what", choices=["fan"])
    fetch.add_argument("--to", default="weights", help="weights folder (e.g. ComfyUI/models/pasl); default: weights")
    fetch.set_defaults(run=_download)

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
    except (PASLError, OSError, ValueError) as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (no output was kept)" if args.command == "reenact" else "error: interrupted", file=sys.stderr)
        return 130
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
