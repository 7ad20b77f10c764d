"""Inputs of the example workflows when they run in the real host: faces, a video, an upscaler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

FACES = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces"
SOURCE_PHOTO = FACES / "photos" / "skimage_astronaut.png"
DRIVING_PHOTO = FACES / "photos" / "facerec_obama.jpg"
DRIVING_VIDEO = FACES / "video" / "pyfeat_single_face.mp4"
VIDEO_FRAMES = 6
UPSCALER = "realesr-general-x4v3.pth"
"""The name the upscale workflow selects (a real Real-ESRGAN compact model's); tests put a tiny
random model of that architecture there."""


def faces_available() -> bool:
    return SOURCE_PHOTO.exists() and DRIVING_PHOTO.exists() and DRIVING_VIDEO.exists()


def write_face_inputs(folder: Path) -> None:
    """``face_source.png``, ``driving.png`` and a short ``driving.mp4`` (with audio) from ../shared."""
    if not faces_available():
        return
    from pasl.video import VideoWriter, iter_frame_chunks

    Image.open(SOURCE_PHOTO).convert("RGB").save(folder / "face_source.png")
    driving = Image.open(DRIVING_PHOTO).convert("RGB")
    driving.resize((driving.width // 2, driving.height // 2)).save(folder / "driving.png")
    frames = next(iter_frame_chunks(DRIVING_VIDEO, VIDEO_FRAMES))[:, ::2, ::2]
    with VideoWriter(folder / "driving.mp4", 30, audio_from=DRIVING_VIDEO) as writer:
        writer.write(np.ascontiguousarray(frames))


def write_upscaler(path: Path, scale: int = 4, features: int = 8, seed: int = 0) -> Path:
    """A tiny SRVGGNetCompact (Real-ESRGAN compact) state dict that spandrel recognises."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "body.0.weight": torch.randn(features, 3, 3, 3, generator=g) * 0.1, "body.0.bias": torch.zeros(features),
        "body.1.weight": torch.full((features,), 0.25),
        "body.2.weight": torch.randn(features, features, 3, 3, generator=g) * 0.1, "body.2.bias": torch.zeros(features),
        "body.3.weight": torch.full((features,), 0.25),
        "body.4.weight": torch.randn(3 * scale * scale, features, 3, 3, generator=g) * 0.1,
        "body.4.bias": torch.zeros(3 * scale * scale),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
