"""S3FD face detector + 2D-FAN-4 landmarks: what the official PASL demos run (face_alignment 1.1.1).

The official demos call ``face_alignment.FaceAlignment(LandmarksType._2D, flip_input=True)``
from a vendored copy of face_alignment 1.1.1 (``docs/official-code.md`` §1.3). This module
re-implements that path in plain torch, without the package (which downloads its weights at
run time and pulls numba and a second OpenCV), and reads the same two weight files:

* ``s3fd-619a316812.pth``: S3FD (VGG-16 single-shot detector) state dict;
* ``2DFAN4-11f355bf06.pth.tar``: FAN with 4 stacked hourglasses, 68 heatmaps of 64x64.

Both are plain tensor dicts, opened with ``torch.load(weights_only=True)``. Sub-module
names equal the official ones, so the files load with ``strict=True``.

Official procedure, reproduced step by step (names are face_alignment's):

1. S3FD on the whole image in BGR order minus the per-channel means ``(104, 117, 123)``;
   softmax per level; every anchor with face probability > 0.05 is decoded (SSD
   ``decode``, variances 0.1/0.2; anchors of stride ``2**(i+2)`` and side ``4 * stride``);
   greedy NMS at IoU 0.3 (areas with ``+1``, VOC style); boxes with probability > 0.5
   remain, highest first.
2. Per box: ``center = box centre`` moved up by ``0.12 * height``;
   ``scale = (width + height) / 195``; the ``crop`` of a ``200 * scale`` square (integer
   corners, zero padding) resized to 256x256 (``cv2.resize``, INTER_LINEAR), /255.
3. FAN -> last hourglass's heatmaps; with ``flip_input`` the heatmaps of the mirrored crop,
   mirrored back with the 68-point left/right permutation, are **added**.
4. Per heatmap: argmax (1-based), nudged by ``0.25 * sign`` of the neighbour difference
   towards the larger neighbour, ``- 0.5``, then mapped back to the image by the inverse
   crop transform and **truncated to int** (``.int()``): official landmarks are integers.

``integer_landmarks=False`` keeps sub-pixel values and maps them through the crop that was
actually cut (integer corners, OpenCV pixel-centre convention) instead of the nominal one;
the two differ by about half a pixel plus the truncation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import NUM_LANDMARKS

log = logging.getLogger(__name__)

S3FD_FILE = "s3fd-619a316812.pth"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/"
"""Where face_alignment downloads both files from (``models_urls`` in its api.py / sfd_detector.py)."""

S3FD_MEAN_BGR = (104.0, 117.0, 123.0)
"""Per-channel mean subtracted from the BGR image (face_alignment ``sfd/detect.py``)."""
S3FD_CANDIDATE_THRESHOLD = 0.05
S3FD_NMS_IOU = 0.3
S3FD_SCORE_THRESHOLD = 0.5
S3FD_VARIANCES = (0.1, 0.2)
S3FD_MIN_SIDE = 32
"""Smaller images cannot pass S3FD's five 2x poolings (and hold no face its 16 px anchors find)."""
S3FD_LEVELS = 6
"""Detection heads at strides 4, 8, ..., 128 (``stride = 2 ** (i + 2)``), anchor side ``4 * stride``."""

FAN_INPUT = 256
FAN_HEATMAP = 64
FAN_REFERENCE_SCALE = 195.0
"""S3FD's ``reference_scale``: ``scale = (w + h) / 195``."""
FAN_SCALE_TO_PIXELS = 200.0
"""``transform``'s ``h = 200 * scale``: the crop side in image pixels."""
FAN_CENTER_SHIFT = 0.12
"""The crop centre is moved up by this fraction of the box height."""
FAN_STACKS = 4
FAN_HOURGLASS_DEPTH = 4
FAN_FEATURES = 256

FLIP_PERMUTATION = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)
"""Index of each 68-point landmark's mirror image (face_alignment ``shuffle_lr``)."""


# ---------------------------------------------------------------- S3FD network


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (``weight``)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = 1e-10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


class S3FD(nn.Module):
    """S3FD: VGG-16 trunk + 6 detection heads; module names equal face_alignment's ``s3fd``.

    Input ``(B, 3, H, W)`` BGR minus :data:`S3FD_MEAN_BGR` (0-255 scale); output a list of 6
    ``(cls, reg)`` pairs, ``cls (B, 2, h_i, w_i)`` logits (background max-out applied on the
    first level), ``reg (B, 4, h_i, w_i)``.
    """

    VGG = (
        ("conv1_1", 3, 64), ("conv1_2", 64, 64), None,
        ("conv2_1", 64, 128), ("conv2_2", 128, 128), None,
        ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), None,
        ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), None,
        ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), None,
    )
    # (source feature, channels, L2Norm scale or None, classes)
    HEADS = (
        ("conv3_3", 256, 10.0, 4),
        ("conv4_3", 512, 8.0, 2),
        ("conv5_3", 512, 5.0, 2),
        ("fc7", 1024, None, 2),
        ("conv6_2", 512, None, 2),
        ("conv7_2", 256, None, 2),
    )

    def __init__(self) -> None:
        super().__init__()
        for layer in self.VGG:
            if layer is not None:
                name, cin, cout = layer
                self.add_module(name, nn.Conv2d(cin, cout, 3, 1, 1))
        self.fc6 = nn.Conv2d(512, 1024, 3, 1, padding=3)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.conv6_1 = nn.Conv2d(1024, 256, 1)
        self.conv6_2 = nn.Conv2d(256, 512, 3, 2, 1)
        self.conv7_1 = nn.Conv2d(512, 128, 1)
        self.conv7_2 = nn.Conv2d(128, 256, 3, 2, 1)
        for source, channels, norm_scale, classes in self.HEADS:
            prefix = f"{source}_norm" if norm_scale is not None else source
            if norm_scale is not None:
                self.add_module(prefix, L2Norm(channels, norm_scale))
            self.add_module(f"{prefix}_mbox_conf", nn.Conv2d(channels, classes, 3, 1, 1))
            self.add_module(f"{prefix}_mbox_loc", nn.Conv2d(channels, 4, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        features: dict[str, torch.Tensor] = {}
        name = ""
        for layer in self.VGG:
            if layer is None:
                features[name] = x
                x = F.max_pool2d(x, 2, 2)
            else:
                name = layer[0]
                x = F.relu(self._modules[name](x))
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        features["fc7"] = x
        x = F.relu(self.conv6_2(F.relu(self.conv6_1(x))))
        features["conv6_2"] = x
        x = F.relu(self.conv7_2(F.relu(self.conv7_1(x))))
        features["conv7_2"] = x
        outputs = []
        for source, _, norm_scale, classes in self.HEADS:
            prefix = f"{source}_norm" if norm_scale is not None else source
            feature = self._modules[prefix](features[source]) if norm_scale is not None else features[source]
            cls = self._modules[f"{prefix}_mbox_conf"](feature)
            if classes == 4:  # "max-out background label": 3 background logits -> their max
                cls = torch.cat([cls[:, :3].amax(dim=1, keepdim=True), cls[:, 3:]], dim=1)
            outputs.append((cls, self._modules[f"{prefix}_mbox_loc"](feature)))
        return outputs


# ---------------------------------------------------------------- FAN network


class ConvBlock(nn.Module):
    """FAN's residual block: three 3x3 convs of C/2, C/4, C/4 channels, concatenated (pre-activation)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout // 4, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout // 4)
        self.conv3 = nn.Conv2d(cout // 4, cout // 4, 3, 1, 1, bias=False)
        self.downsample = (
            nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False)) if cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat([out1, out2, out3], dim=1) + residual


class HourGlass(nn.Module):
    """Recursive hourglass of ``depth`` levels; modules ``b1_<level>``, ``b2_<level>``, ``b2_plus_1``, ``b3_<level>``."""

    def __init__(self, depth: int, features: int) -> None:
        super().__init__()
        self.depth = depth
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(features, features))
            self.add_module(f"b2_{level}", ConvBlock(features, features))
            if level == 1:
                self.add_module("b2_plus_1", ConvBlock(features, features))
            self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = self._modules[f"b1_{level}"](x)
        lower = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        lower = self._level(level - 1, lower) if level > 1 else self._modules["b2_plus_1"](lower)
        lower = self._modules[f"b3_{level}"](lower)
        return upper + F.interpolate(lower, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class FAN(nn.Module):
    """2D-FAN with ``stacks`` hourglasses; ``(B, 3, 256, 256)`` RGB in [0, 1] -> ``(B, 68, 64, 64)`` heatmaps.

    Only the last stack's heatmaps are returned (the official code keeps ``[-1]``).
    """

    def __init__(self, stacks: int = FAN_STACKS) -> None:
        super().__init__()
        self.stacks = stacks
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, FAN_FEATURES)
        for i in range(stacks):
            self.add_module(f"m{i}", HourGlass(FAN_HOURGLASS_DEPTH, FAN_FEATURES))
            self.add_module(f"top_m_{i}", ConvBlock(FAN_FEATURES, FAN_FEATURES))
            self.add_module(f"conv_last{i}", nn.Conv2d(FAN_FEATURES, FAN_FEATURES, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(FAN_FEATURES))
            self.add_module(f"l{i}", nn.Conv2d(FAN_FEATURES, NUM_LANDMARKS, 1))
            if i < stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(FAN_FEATURES, FAN_FEATURES, 1))
                self.add_module(f"al{i}", nn.Conv2d(NUM_LANDMARKS, FAN_FEATURES, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        previous = self.conv4(self.conv3(x))
        heatmaps = previous
        for i in range(self.stacks):
            ll = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            ll = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](ll)))
            heatmaps = self._modules[f"l{i}"](ll)
            if i < self.stacks - 1:
                previous = previous + self._modules[f"bl{i}"](ll) + self._modules[f"al{i}"](heatmaps)
        return heatmaps


# ---------------------------------------------------------------- detection


def s3fd_boxes(outputs: list[tuple[torch.Tensor, torch.Tensor]], index: int = 0) -> np.ndarray:
    """Decode one image's S3FD outputs to candidate boxes ``(N, 5)`` ``[x1, y1, x2, y2, p]`` (p > 0.05).

    Vectorised form of face_alignment's ``batch_detect`` loop (same float32 operations).
    Candidates are listed level by level, row-major within a level, as the official loop does.
    """
    found = []
    for level, (cls, reg) in enumerate(outputs):
        prob = F.softmax(cls[index : index + 1].float(), dim=1)[0, 1].cpu()  # (h, w)
        loc = reg[index].float().cpu()  # (4, h, w)
        rows, cols = torch.nonzero(prob > S3FD_CANDIDATE_THRESHOLD, as_tuple=True)
        if rows.numel() == 0:
            continue
        stride = 2 ** (level + 2)
        prior_xy = torch.stack([stride / 2 + cols * stride, stride / 2 + rows * stride], dim=1).float()
        prior_wh = torch.full_like(prior_xy, stride * 4.0)
        offsets = loc[:, rows, cols].T  # (N, 4)
        centre = prior_xy + offsets[:, :2] * S3FD_VARIANCES[0] * prior_wh
        size = prior_wh * torch.exp(offsets[:, 2:] * S3FD_VARIANCES[1])
        top_left = centre - size / 2
        bottom_right = size + top_left
        found.append(torch.cat([top_left, bottom_right, prob[rows, cols, None]], dim=1))
    if not found:
        return np.zeros((0, 5), dtype=np.float32)
    return torch.cat(found).numpy()


def nms(boxes: np.ndarray, iou: float = S3FD_NMS_IOU) -> list[int]:
    """Greedy non-maximum suppression, highest score first; VOC areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``.

    Args:
        boxes: ``(N, 5)`` ``[x1, y1, x2, y2, score]``.

    Returns:
        Kept row indices, by decreasing score.
    """
    if len(boxes) == 0:
        return []
    x1, y1, x2, y2, scores = (boxes[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h / (areas[i] + areas[rest] - w * h)
        order = rest[overlap <= iou]
    return keep


def s3fd_input(image_rgb: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(1, 3, H, W)`` BGR minus the S3FD means."""
    bgr = torch.from_numpy(np.ascontiguousarray(image_rgb[..., ::-1])).to(device=device, dtype=torch.float32)
    bgr = bgr - torch.tensor(S3FD_MEAN_BGR, device=device)
    return bgr.permute(2, 0, 1)[None].to(dtype)


# ---------------------------------------------------------------- landmarks


def _nominal_transform(center: torch.Tensor, scale: float, resolution: float) -> torch.Tensor:
    """face_alignment's ``transform`` matrix: image -> ``resolution`` crop of side ``200 * scale``.

    Same expressions and dtypes as the official one (float32 tensor ``center``, float64
    ``scale``), so that the truncated results match.
    """
    h = FAN_SCALE_TO_PIXELS * scale
    t = torch.eye(3)
    t[0, 0] = resolution / h
    t[1, 1] = resolution / h
    t[0, 2] = resolution * (-center[0] / h + 0.5)
    t[1, 2] = resolution * (-center[1] / h + 0.5)
    return t


def _to_image_int(points: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``transform(point, invert=True)`` per point: ``inverse @ [x, y, 1]``, truncated like ``.int()``."""
    out = torch.empty(points.shape[0], 2, dtype=torch.int32)
    for i in range(points.shape[0]):
        homogeneous = torch.ones(3)
        homogeneous[0], homogeneous[1] = points[i, 0], points[i, 1]
        out[i] = torch.matmul(inverse, homogeneous)[0:2].int()
    return out


@dataclass(frozen=True)
class FanCrop:
    """One face's FAN input and the geometry needed to map heatmaps back.

    Attributes:
        image: ``(256, 256, 3)`` uint8 RGB crop.
        center: ``(2,)`` float32 tensor, crop centre in image pixels (face_alignment's ``center``).
        scale: face_alignment's ``scale`` (crop side = ``200 * scale`` image pixels).
        corners: ``(ul_x, ul_y, br_x, br_y)`` integer corners of the region actually cut.
    """

    image: np.ndarray
    center: torch.Tensor
    scale: float
    corners: tuple[int, int, int, int]


def _resize_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """``cv2.resize(image, (size, size))`` INTER_LINEAR; a torch fallback when OpenCV is missing."""
    try:
        import cv2
    except ImportError:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return cv2.resize(image, dsize=(size, size), interpolation=cv2.INTER_LINEAR)


def fan_crop(image_rgb: np.ndarray, box: np.ndarray) -> FanCrop:
    """face_alignment's ``center``/``scale`` from a box and its ``crop``, to 256x256.

    Args:
        image_rgb: ``(H, W, 3)`` uint8.
        box: ``[x1, y1, x2, y2, ...]`` (float32 values, as S3FD gives them).
    """
    # The official expressions ran under NumPy 1.x promotion: float32 box differences, then
    # float64 as soon as a Python float or int enters; the result is stored as float32.
    x1, y1, x2, y2 = (np.float32(v) for v in box[:4])
    width, height = np.float32(x2 - x1), np.float32(y2 - y1)
    center = torch.tensor([float(x2) - float(width) / 2.0, float(y2) - float(height) / 2.0], dtype=torch.float32)
    center[1] = center[1] - float(height) * FAN_CENTER_SHIFT
    scale = float(np.float32(width + height)) / FAN_REFERENCE_SCALE
    inverse = torch.inverse(_nominal_transform(center, scale, FAN_INPUT))
    ul = _to_image_int(torch.tensor([[1.0, 1.0]]), inverse)[0].tolist()
    br = _to_image_int(torch.tensor([[float(FAN_INPUT), float(FAN_INPUT)]]), inverse)[0].tolist()
    height, width = image_rgb.shape[:2]
    out = np.zeros((br[1] - ul[1], br[0] - ul[0], 3), dtype=np.uint8)
    new_x = (max(1, -ul[0] + 1), min(br[0], width) - ul[0])
    new_y = (max(1, -ul[1] + 1), min(br[1], height) - ul[1])
    old_x = (max(1, ul[0] + 1), min(br[0], width))
    old_y = (max(1, ul[1] + 1), min(br[1], height))
    if new_x[1] >= new_x[0] and new_y[1] >= new_y[0]:
        out[new_y[0] - 1 : new_y[1], new_x[0] - 1 : new_x[1]] = image_rgb[old_y[0] - 1 : old_y[1], old_x[0] - 1 : old_x[1], :3]
    return FanCrop(_resize_uint8(out, FAN_INPUT), center, scale, (ul[0], ul[1], br[0], br[1]))


def heatmap_peaks(heatmaps: torch.Tensor) -> torch.Tensor:
    """Official sub-pixel peak of each heatmap, in heatmap coordinates (``preds`` of ``get_preds_fromhm``).

    1-based argmax, plus ``0.25 * sign(right - left, down - up)`` where the peak is not on
    the border, minus 0.5: so the centre of 0-based heatmap cell ``j`` is ``j + 0.5``.

    Args:
        heatmaps: ``(B, 68, 64, 64)``.

    Returns:
        ``(B, 68, 2)`` float32 ``(x, y)``.
    """
    b, n, h, w = heatmaps.shape
    hm = heatmaps.float().cpu()
    idx = hm.reshape(b, n, h * w).argmax(dim=-1)
    px, py = idx % w, idx // w  # 0-based
    preds = torch.stack([px + 1, py + 1], dim=-1).float()
    inside = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
    bi, ni = torch.meshgrid(torch.arange(b), torch.arange(n), indexing="ij")
    xr, xl = (px + 1).clamp(max=w - 1), (px - 1).clamp(min=0)
    yd, yu = (py + 1).clamp(max=h - 1), (py - 1).clamp(min=0)
    dx = hm[bi, ni, py, xr] - hm[bi, ni, py, xl]
    dy = hm[bi, ni, yd, px] - hm[bi, ni, yu, px]
    nudge = torch.stack([dx.sign(), dy.sign()], dim=-1) * 0.25
    preds = preds + torch.where(inside[..., None], nudge, torch.zeros_like(nudge))
    return preds - 0.5


def peaks_to_image(peaks: torch.Tensor, crop: FanCrop, integer: bool = True) -> torch.Tensor:
    """Heatmap peaks ``(68, 2)`` of one face -> image pixels ``(68, 2)`` float32.

    ``integer=True``: face_alignment's inverse ``transform`` at resolution 64 with ``.int()``
    truncation (official). ``integer=False``: the crop that was really cut, in OpenCV
    pixel-centre coordinates: ``x = ul_x - 0.5 + peak_x * (br_x - ul_x) / 64``.
    """
    if integer:
        inverse = torch.inverse(_nominal_transform(crop.center, crop.scale, FAN_HEATMAP))
        return _to_image_int(peaks.float(), inverse).float()
    ul_x, ul_y, br_x, br_y = crop.corners
    p = peaks.double()
    x = ul_x - 0.5 + p[:, 0] * (br_x - ul_x) / FAN_HEATMAP
    y = ul_y - 0.5 + p[:, 1] * (br_y - ul_y) / FAN_HEATMAP
    return torch.stack([x, y], dim=-1).float()


def flip_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """Mirror ``(B, 68, h, w)`` heatmaps left-right and swap left/right landmarks (``flip(..., is_label=True)``)."""
    return heatmaps[:, list(FLIP_PERMUTATION)].flip(-1)


# ---------------------------------------------------------------- loading


def find_fan_files(folders: list[Path]) -> dict[str, Path | None]:
    """``{S3FD_FILE: path or None, FAN_FILE: path or None}``, searching ``folders`` recursively."""
    found: dict[str, Path | None] = {S3FD_FILE: None, FAN_FILE: None}
    for folder in folders:
        if not folder.is_dir():
            continue
        for name in found:
            if found[name] is None:
                direct = folder / name
                hits = [direct] if direct.is_file() else sorted(p for p in folder.rglob(name) if p.is_file())
                found[name] = hits[0] if hits else None
    return found


def load_network(module: nn.Module, path: Path, part: str) -> nn.Module:
    """Read ``path`` safely (tensors only) into ``module`` with strict keys; eval mode, no grad."""
    from ..weights import load_pickle_weights, strict_load

    state = load_pickle_weights(path, expected=f"the {part} weights ({path.name})")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        from ..errors import WeightFileError

        raise WeightFileError(f"{path} is not a {part} state dict (found {type(state).__name__}).")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    # checkpoints saved before PyTorch 0.4.1 have no BatchNorm step counters
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    strict_load(module, state, path, part)
    return module.eval().requires_grad_(False)
