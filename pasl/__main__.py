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


OPTION_FLAGS = {
    "mode": "--mode", "paste_back": "--paste-back", "smoothing": "--smoothing", "flatten": "--flatten", "select": "--select",
    "source_alignment": "--source-is-crop", "driver_alignment": "--driver-is-crop", "crop_landmarks": "--crop-landmarks",
    "warp": "--warp", "output_rounding": "--rounding", "lock_scale": "--lock-scale", "color_match": "--color-match",
    "cycle_check": "--cycle-check", "refine_steps": "--refine-steps", "identity_score": "--identity-score",
    "batch_size": "--batch-size", "tracking": "--tracking", "detect_every": "--detect-every", "motion": "--relative",
    "strengths": "--strength",
}
"""The ``reenact`` flag that sets each :class:`pasl.pipeline.ReenactOptions` field (for messages)."""


def _options(args: argparse.Namespace):
    """The run's :class:`pasl.pipeline.ReenactOptions`: the preset, with what the user set explicitly on top."""
    from .edit import MotionStrengths
    from .pipeline import ReenactOptions

    try:
        strengths = MotionStrengths.parse(args.strength) if args.strength else MotionStrengths()
    except ValueError as err:
        raise ValueError(f"--strength: {err}") from None

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
            motion="relative" if args.relative else "absolute",
            strengths=strengths,
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


def _device_and_dtype(args: argparse.Namespace):
    """``--device`` and ``--precision`` resolved: (device, dtype, short precision name)."""
    import torch

    from .models import auto_device

    device = auto_device(args.device)
    precisions = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    dtype = precisions[args.precision] if args.precision != "auto" else (torch.float16 if device.type == "cuda" else torch.float32)
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("--precision fp16 needs a GPU: the CPU has no fp16 kernels (minutes per frame); use bf16 or fp32 there")
    return device, dtype, PRECISION_NAMES[str(dtype).replace("torch.", "")]


def _reenact(args: argparse.Namespace) -> None:
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
    device, dtype, precision = _device_and_dtype(args)
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


def _head_edit(args: argparse.Namespace):
    """The edit the flags ask for: ``--preset``'s, with every flag given on top (``--save-preset`` writes the result)."""
    import dataclasses

    from .edit import CONTROL_NAMES, HeadEdit, load_preset, save_preset

    try:
        base = load_preset(args.preset) if args.preset else HeadEdit()
    except ValueError as err:
        raise ValueError(f"--preset {err}") from None
    given = {name: getattr(args, name) for name in ("yaw", "pitch", "roll", "jaw", "expression") if getattr(args, name) is not None}
    controls = {**base.controls, **{name: getattr(args, name) for name in CONTROL_NAMES if getattr(args, name) is not None}}
    try:
        edit = dataclasses.replace(base, **given, add=args.add or base.add, controls=controls)
    except ValueError as err:  # "yaw must be ..." -> "--yaw must be ..."
        text = str(err)
        for name in ("yaw", "pitch", "roll", "jaw", "expression"):
            text = text.replace(f"{name} must", f"--{name} must", 1) if text.startswith(name) else text
        for name in CONTROL_NAMES:
            text = text.replace(f"control {name!r}", f"--{name.replace('_', '-')}")
        raise ValueError(text) from None
    if args.save_preset:
        save_preset(edit, args.save_preset)
    return edit


def _portrait(args: argparse.Namespace, out_kind: str):
    """Checks, then models, detector and a :class:`pasl.pipeline.Reenactor` for ``edit`` and ``animate``."""
    from pathlib import Path

    from .align import make_detector
    from .files import IMAGE_SUFFIXES
    from .models import check_weights, load_models
    from .pipeline import ReenactOptions, Reenactor
    from .video import is_video

    source, out = Path(args.source), Path(args.out)
    if not source.is_file():
        raise FileNotFoundError(f"--source {source}: no such file")
    if out_kind == "video" and not is_video(out):
        raise ValueError(f"--out must be a video file (.mp4), got {out}")
    if out_kind == "image" and (out.is_dir() or out.suffix.lower() not in IMAGE_SUFFIXES):
        raise ValueError(f"--out must be an image file ({', '.join(IMAGE_SUFFIXES)}), got {out}")
    select = int(args.select) if args.select.lstrip("-").isdigit() else args.select
    try:
        options = ReenactOptions(select=select, source_alignment="resize" if args.source_is_crop else "align",
                                 paste_back=args.paste_back, color_match=args.color_match, batch_size=args.batch_size)
    except ValueError as err:
        raise ValueError(str(err).replace("ReenactOptions.select", "--select").replace("ReenactOptions.color_match", "--color-match")
                         .replace("ReenactOptions.batch_size", "--batch-size")) from None
    check_weights(args.weights_dir, args.aeg, None)
    progress = _Progress(args.progress if args.progress is not None else sys.stderr.isatty())
    device, dtype, precision = _device_and_dtype(args)
    progress.stage(f"loading models ({device}, {precision})")
    models = load_models(args.weights_dir, aeg=args.aeg, device=device, dtype=dtype)
    detector = make_detector(args.backend, args.weights_dir)
    return Reenactor(models, detector, options), progress, f"{device} {precision}"


def _edit(args: argparse.Namespace) -> None:
    from .files import edit_file

    edit = _head_edit(args)  # a bad value is reported before anything loads
    reenactor, progress, where = _portrait(args, "image")
    start = time.perf_counter()
    face = edit_file(reenactor, args.source, args.out, edit, progress.stage)
    from .edit import head_angles

    before = ", ".join(f"{name} {value:+.1f}" for name, value in zip(("yaw", "pitch", "roll"), head_angles(face.shape.codes)[0].tolist()))
    print(f"edited (source head: {before} degrees) in {time.perf_counter() - start:.1f} s ({where}) -> {args.out}")


def _animate(args: argparse.Namespace) -> None:
    from .files import animate_file
    from .keyframes import EASINGS, parse_keyframes

    try:
        keyframes = parse_keyframes(args.keyframes)
    except ValueError as err:
        raise ValueError(f"--keyframes: {err}") from None
    frames = args.frames if args.frames is not None else keyframes[-1].frame + 1
    if frames < 1:
        raise ValueError(f"--frames must be a whole number >= 1, got {frames}")
    if not (args.fps > 0):
        raise ValueError(f"--fps must be positive, got {args.fps}")
    if args.easing not in EASINGS:
        raise ValueError(f"--easing must be one of {', '.join(EASINGS)}")
    reenactor, progress, where = _portrait(args, "video")
    start = time.perf_counter()
    try:
        written = animate_file(reenactor, args.source, args.out, keyframes, frames, args.fps, args.easing, progress=progress,
                               stage=progress.stage)
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    print(f"{written} frames animated in {seconds:.1f} s ({written / max(seconds, 1e-9):.2f} frames/s; {where}) -> {args.out}")


LIBRARY_WORDS = {"load the models in float32 (--precision fp32 on the command line)": "try --precision fp32"}
"""Library phrases and what the command line says instead."""


def _message(err: BaseException) -> str:
    """One line, in the command line's words."""
    text = " ".join(str(err).split())
    for library, command_line in LIBRARY_WORDS.items():
        text = text.replace(library, command_line)
    return text


def _download(args: argparse.Namespace) -> dict:
    from .download import MANIFEST, download

    outcome = download(args.what, args.to, report=lambda line: print(line, file=sys.stderr))
    return {"folder": str(outcome.folder), "downloaded": [str(p) for p in outcome.downloaded],
            "already_there": sorted(set(map(str, outcome.present))), "manifest": str(outcome.folder / MANIFEST)}


def program_name(argv0: str | None = None) -> str:
    """``pasl`` when run as the installed console script, else ``python -m pasl``: help shows what the user typed."""
    from pathlib import Path

    name = Path(sys.argv[0] if argv0 is None else argv0).name.lower()
    return "pasl" if name in ("pasl", "pasl.exe", "pasl-script.py") else "python -m pasl"


def _portrait_arguments(command: argparse.ArgumentParser) -> None:
    """What ``edit`` and ``animate`` share: the source, weights, device and paste-back."""
    command.add_argument("--source", required=True, help="image of the person (one face; --select picks among several)")
    command.add_argument("--weights-dir", action="append", default=[], help="folder with the weight files (repeatable)")
    command.add_argument("--aeg", help="a specific AEG checkpoint (default: 204000_nets_ema.ckpt if found)")
    command.add_argument("--backend", choices=["auto", "fan", "dlib", "dlib-hog"], default="auto", help="face detector")
    command.add_argument("--select", default="largest", help="face to use when several: largest (default), central, score or an index")
    command.add_argument("--source-is-crop", action="store_true", help="the source is already an aligned 256 face crop")
    command.add_argument("--paste-back", action=argparse.BooleanOptionalAction, default=True,
                         help="blend the face into the source photo (default) or write 256x256 crops")
    command.add_argument("--color-match", type=float, default=0.0, help="match the face's colours to the photo (0..1)")
    command.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    command.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                         help="AEG precision (auto: fp16 on CUDA, else fp32)")
    command.add_argument("--batch-size", type=int, default=8, help="frames per generator call")
    command.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress on stderr (default: only when stderr is a terminal)")


def _add_portrait_commands(commands) -> None:
    from .edit import CONTROL_NAMES, MAX_JAW, MAX_PITCH, MAX_ROLL, MAX_YAW

    edit = commands.add_parser(
        "edit", help="turn the head of a portrait (to full profile), open the jaw, change the expression",
        description="Edits the FLAME codes of the source face and redraws it: angles in degrees (yaw + = towards the "
        "image's right, pitch + = down, roll + = counter-clockwise); flags not given keep the source's own values.",
    )
    _portrait_arguments(edit)
    edit.add_argument("--out", required=True, help="output image (the source photo with the edited face, or the crop)")
    edit.add_argument("--yaw", type=float, help=f"head yaw in degrees, -{MAX_YAW:g} .. {MAX_YAW:g} (full profile)")
    edit.add_argument("--pitch", type=float, help=f"head pitch in degrees, -{MAX_PITCH:g} .. {MAX_PITCH:g}")
    edit.add_argument("--roll", type=float, help=f"head roll in degrees, -{MAX_ROLL:g} .. {MAX_ROLL:g}")
    edit.add_argument("--add", action="store_true", help="add the angles to the source's own instead of setting them")
    edit.add_argument("--jaw", type=float, help=f"jaw opening in degrees, 0 .. {MAX_JAW:g}")
    edit.add_argument("--expression", type=float, default=None, help="factor on the source's expression (0 = neutral, 1 = as is)")
    edit.add_argument("--preset", help="start from an edit preset file (JSON, from --save-preset); flags given win")
    edit.add_argument("--save-preset", help="also write the edit used as a preset file (JSON)")
    for name in CONTROL_NAMES:
        edit.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, help=f"expression control {name} (-2 .. 2)")
    edit.set_defaults(run=_edit)

    animate = commands.add_parser(
        "animate", help="animate a portrait along keyframes (e.g. turn to profile and back), no driver needed",
        description="Keyframes are 'FRAME: field=value, ...; FRAME: ...' with the fields of `edit` (yaw, pitch, roll, "
        f"jaw, expression, {', '.join(CONTROL_NAMES)}); the head moves along the shortest arc between them.",
    )
    _portrait_arguments(animate)
    animate.add_argument("--out", required=True, help="output video (.mp4)")
    animate.add_argument("--keyframes", required=True, help="e.g. '0: yaw=0; 24: yaw=75, jaw=10; 48: yaw=0'")
    animate.add_argument("--frames", type=int, default=None, help="number of frames (default: the last keyframe + 1)")
    animate.add_argument("--fps", type=float, default=25.0, help="frame rate of the video (default 25)")
    animate.add_argument("--easing", default="ease-in-out", help="linear, ease-in-out (default), ease-in or ease-out")
    animate.set_defaults(run=_animate)


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
    run.add_argument("--crop-landmarks", choices=["redetect", "mapped", "refit"], default=None,
                     help="DECA's crop from a second detection on the aligned crop (redetect, the official presets), "
                     "the aligner's landmarks (mapped, no second pass) or the landmark stage alone in their box "
                     "(refit, the default: one detection a frame)")
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
    run.add_argument("--relative", action="store_true",
                     help="relative motion: the driver's motion since its first face, on top of the source's own pose and "
                     "expression (default: the driver's pose and expression, the paper)")
    run.add_argument("--strength", default=None,
                     help="how much of each motion channel: e.g. head=1,expression=0.5 (channels head, jaw, expression, "
                     "camera; 0 = keep the source's, 1 = the driver's, up to 2; unnamed ones 1), or a preset: rotation, "
                     "expression, all")
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

    _add_portrait_commands(commands)

    fetch = commands.add_parser(
        "download", help="download the weight files (all, or one kind), check each by loading it, and keep only good files",
        description="aeg: the demo AEG checkpoint (authors' Google Drive folder); deca: deca_model.tar (PASL's 'DECA model' "
                    "archive) with DECA's landmark_embedding.npy and head_template.obj; flame: FLAME 2020's generic_model.pkl "
                    "with your own flame.is.tue.mpg.de login (asked for, or $PASL_FLAME_USERNAME / $PASL_FLAME_PASSWORD; "
                    "never stored); pae: the six PAE networks; fan: the optional FAN detector; all: every one of these. eval "
                    "(never part of all): the metric backbones of `python -m pasl.eval` and the PASL Metrics node (FID "
                    "Inception-v3 paper and standard, LPIPS AlexNet and weights) into eval/; train (never part of all): the VGG19 "
                    "of `python -m pasl.train`'s perceptual loss into train/. Interrupted downloads resume; "
                    "files already there and valid are kept; downloads.json records each file's source and sha256.",
        epilog="Each file is under its owner's licence, most for non-commercial research use only (see weights/README.md).",
    )
    fetch.add_argument("what", nargs="?", default="all", choices=["all", "aeg", "deca", "flame", "pae", "fan", "eval", "train"],
                       help="what to fetch (default: all; eval and train only when named)")
    fetch.add_argument("--to", default=None, metavar="DIR",
                       help="weights folder (default: the first folder model discovery searches, e.g. ComfyUI/models/pasl)")
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
        notes = {"reenact": " (no output was kept)",
                 "download": " (a partial download stays as a .part file: run the same command again to resume)"}
        print(f"error: interrupted{notes.get(args.command, '')}", file=sys.stderr)
        return 130
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def cli() -> int:
    """The ``pasl`` console script and ``python -m pasl``: :func:`main` in a process of its own, which
    keeps the memory it frees for the next frame (:mod:`pasl.allocator`)."""
    from .allocator import retain_freed_memory

    retain_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(cli())
