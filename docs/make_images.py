"""Draw the README's pictures from the public-domain scikit-image photos in ../shared/assets.

    python docs/make_images.py      # writes docs/images/

Alignment (detected landmarks, the aligned 256 crop), the shape stage's conditioning maps at
large yaw, a head turned by the editor, and paste-back (the mask and a recoloured face blended back). Real PASL faces
need the authors' weights, which this repository cannot ship, so no generated face is shown.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTO = ROOT.parent / "shared" / "assets" / "faces" / "photos" / "skimage_astronaut.png"
FLAME_ASSETS = ROOT.parent / "shared" / "assets" / "flame"
OUT = ROOT / "docs" / "images"


def _pil(bchw: torch.Tensor) -> Image.Image:
    return Image.fromarray((bchw[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))


def alignment_picture() -> None:
    from pasl.align import align_faces

    image = np.array(Image.open(PHOTO).convert("RGB"))
    result = align_faces(image, backend="dlib")
    frame = Image.fromarray(image)
    draw = ImageDraw.Draw(frame)
    for x, y in result.landmarks[0].tolist():
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(0, 255, 120))
    crop = _pil(result.crops)
    canvas = Image.new("RGB", (512 + 256 + 8, 512), (24, 24, 24))
    canvas.paste(frame, (0, 0))
    canvas.paste(crop, (520, 128))
    canvas.save(OUT / "alignment.jpg", quality=88)


def maps_picture() -> None:
    from pasl.bench import _flame_for_bench
    from pasl.csg.codes import FlameCodes
    from pasl.render import conditioning_maps, crop_to_image, orthographic_project

    flame, faces, _ = _flame_for_bench([str(FLAME_ASSETS)])
    yaws = torch.tensor([0.0, 35.0, 70.0]).deg2rad()
    vector = torch.zeros(3, 236)
    vector[:, 201], vector[:, 206], vector[:, 208] = yaws, 7.0, 0.03
    codes = FlameCodes.from_vector(vector)
    tform = torch.diag(torch.tensor([224 / 256, 224 / 256, 1.0])).expand(3, 3, 3)
    out = flame(codes.shape, codes.exp, codes.pose)
    depth, landmarks = conditioning_maps(
        crop_to_image(orthographic_project(out.vertices, codes.cam), tform),
        crop_to_image(orthographic_project(out.landmarks2d, codes.cam)[..., :2], tform),
        faces,
    )
    canvas = Image.new("RGB", (3 * 256 + 16, 2 * 256 + 8), (24, 24, 24))
    for i in range(3):
        canvas.paste(_pil(depth[i : i + 1]), (i * 264, 0))
        canvas.paste(_pil(landmarks[i : i + 1]), (i * 264, 264))
    canvas.save(OUT / "shape_maps.png")


def head_edit_picture() -> None:
    """One head (the FLAME template, neutral) turned by :class:`pasl.edit.HeadEdit` to 0/30/60/90 degrees of yaw,
    kept centred: the edited shape as PASL Shape Edit previews it (depth in grey, the landmark drawing in orange)."""
    from pasl.bench import _flame_for_bench
    from pasl.csg.codes import FlameCodes
    from pasl.edit import HeadEdit, edit_codes, head_angles
    from pasl.shape import ShapeCodes, render_conditioning

    flame, faces, _ = _flame_for_bench([str(FLAME_ASSETS)])
    vector = torch.zeros(1, 236)
    vector[:, 206], vector[:, 208] = 7.0, 0.03
    neutral = FlameCodes.from_vector(vector)
    edits = [HeadEdit(yaw=yaw) for yaw in (0.0, 30.0, 60.0, 90.0)]
    codes = FlameCodes.cat([edit_codes(neutral, e, flame=flame) for e in edits])
    tform = torch.diag(torch.tensor([224 / 256, 224 / 256, 1.0])).expand(len(edits), 3, 3)
    depth, landmarks = render_conditioning(flame, faces, ShapeCodes(codes, tform))
    lines = landmarks[:, :1]
    overlay = depth * (1 - lines) + torch.tensor([1.0, 0.55, 0.1]).view(1, 3, 1, 1) * lines
    canvas = Image.new("RGB", (len(edits) * 264 - 8, 256 + 28), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for i, yaw in enumerate(head_angles(codes)[:, 0].tolist()):
        canvas.paste(_pil(overlay[i : i + 1]), (i * 264, 0))
        draw.text((i * 264 + 8, 262), f"yaw {round(yaw)} degrees", fill=(230, 230, 230))
    canvas.save(OUT / "head_edit.png")


def paste_back_picture() -> None:
    from pasl.align import align_faces
    from pasl.composite import paste_back

    image = np.array(Image.open(PHOTO).convert("RGB"))
    result = align_faces(image, backend="dlib")
    frame = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    recoloured = result.crops[:, [2, 0, 1]]  # a visibly different "generated" face: channels rotated
    composite, mask = paste_back(frame, recoloured, result.frame_from_crop, result.landmarks_crop, result.has_face)
    canvas = Image.new("RGB", (3 * 256 + 16, 256), (24, 24, 24))
    canvas.paste(_pil(recoloured).resize((256, 256)), (0, 0))
    canvas.paste(_pil(mask.expand(-1, 3, -1, -1)).resize((256, 256)), (264, 0))
    canvas.paste(_pil(composite).resize((256, 256)), (528, 0))
    canvas.save(OUT / "paste_back.jpg", quality=88)


def main() -> int:
    if not PHOTO.exists():
        print(f"needs {PHOTO}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    alignment_picture()
    maps_picture()
    head_edit_picture()
    paste_back_picture()
    print("wrote", ", ".join(sorted(p.name for p in OUT.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
