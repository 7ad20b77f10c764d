"""Image, pose and distribution metrics for the paper's benchmarks, batched in torch on any device.

Images are ``(B, 3, H, W)`` in ``[0, 1]``. Every function returns per-sample values (or one
number for distribution metrics), so the caller chooses how to average; the averages the
paper reports are noted in each docstring. What follows the official release
(``metrics/eval.py``, ``metrics/fid.py``, ``mean_pae_csim.py``; docs/official-code.md §6)
and what had to be chosen is said where it matters.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..catalog import download_command, entry
from ..errors import MissingWeightError, PASLError, WeightFileError
from ..rotations import axis_angle_to_angles, axis_angle_to_matrix

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def _gaussian_window(size: int, sigma: float, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(channels, 1, size, size)`` normalised Gaussian, the outer product of the 1-D one (as eval.py builds it)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype=dtype, device=device).expand(channels, 1, size, size).contiguous()


def official_ssim_range(y_pred: torch.Tensor) -> float:
    """The data range ``L`` that eval.py's SSIM detects from the *fake* batch: ``max - min`` with
    ``max = 255 if any value > 128 else 1`` and ``min = -1 if any value < -0.5 else 0``."""
    max_val = 255.0 if bool((y_pred > 128).any()) else 1.0
    min_val = -1.0 if bool((y_pred < -0.5).any()) else 0.0
    return max_val - min_val


def ssim_official(fake: torch.Tensor, target: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """SSIM exactly as the official ``metrics/eval.py`` (``SSIM.__call__``) defines it; ``(B,)`` per image.

    Followed: an 11x11 Gaussian window (sigma 1.5) applied per channel with no padding (the "valid"
    region only), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, the SSIM map averaged over channels and
    pixels. The official loader feeds images normalised to ``[-1, 1]`` (``Normalize(0.5, 0.5)``), so
    this function maps the ``[0, 1]`` inputs to ``2x - 1`` first; SSIM's luminance term is not
    shift-invariant, so this changes the number. ``L`` is detected like the release does
    (:func:`official_ssim_range`, on the fake) *over the whole batch passed in*: with ``[-1, 1]``
    data that is 2 when any pixel of the batch is below 0.25 in ``[0, 1]`` terms, else 1. To
    reproduce a run exactly, pass the release's batches (``val_batch_size``); its per-batch value is
    ``ssim_official(...).mean()`` and it then averages batch values (a short last batch weighs as
    much as a full one). Give ``data_range`` (in ``[-1, 1]`` units, 2.0 normally) to fix ``L``.

    Argument order follows the call ``metric(x_fake, x2_target)``; the result is symmetric anyway.
    """
    if fake.shape != target.shape or fake.dim() != 4:
        raise PASLError(f"SSIM needs two image batches of the same (B, C, H, W) shape, got {tuple(fake.shape)} and {tuple(target.shape)}.")
    if min(fake.shape[-2:]) < SSIM_WINDOW:
        raise PASLError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(fake.shape[-2:])}.")
    x = fake * 2 - 1
    y = target.to(fake.dtype) * 2 - 1
    L = official_ssim_range(x) if data_range is None else float(data_range)
    channels = x.shape[1]
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, channels, x.dtype, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, padding=0, groups=channels)

    mu1, mu2 = blur(x), blur(y)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = blur(x * x) - mu1_sq
    sigma2_sq = blur(y * y) - mu2_sq
    sigma12 = blur(x * y) - mu1_mu2
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``10 log10(range^2 / MSE)``; ``inf`` for identical images.
    (Not in the official code; the usual definition.)"""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).to(a.dtype if a.is_floating_point() else torch.float32)


# --- pose and expression from FLAME codes ---------------------------------------------------------


def _pose(codes_or_pose) -> torch.Tensor:
    """FLAME ``pose`` ``(B, 6)`` (global 3 + jaw 3) from a :class:`pasl.csg.codes.FlameCodes` or the tensor itself."""
    return getattr(codes_or_pose, "pose", codes_or_pose)


def pose_errors(fake_codes, reference_codes) -> dict[str, torch.Tensor]:
    """Per-axis head-pose differences in degrees, ``{"yaw", "pitch", "roll"}`` each ``(B,)``.

    Angles come from ``pose[:, :3]`` through :func:`pasl.rotations.axis_angle_to_angles`
    (``R = Rz(roll) Ry(yaw) Rx(pitch)``, ``yaw = asin(-R[2, 0])``, as :func:`pasl.lbs.yaw_from_rotation`).
    The paper's ARD is ``errors["yaw"].mean()`` with the driving (reference) image as the target.

    How this differs from the paper's numbers: ``mean_pae_csim.py`` reads yaw from 3DDFA_V2 (a BFM
    fit): ``R`` is built from the normalised rows of its affine camera matrix (``P2sRt``) and
    ``yaw = asin(R[2, 0])``, saturated to exactly +-90 when ``|R[2, 0]| > 0.998`` (beyond ~86.4 deg).
    We read FLAME's own rotation from DECA: ``asin(-R[2, 0])`` (atan2 form, no saturation). The
    opposite sign of ``R[2, 0]`` reflects a different frame convention; a global sign flip leaves
    ``|yaw_fake - yaw_ref|`` unchanged. The estimators themselves differ (face model, training data,
    their biases at large yaw), so our ARD compares methods measured here, not digit for digit with
    the paper's table. Roll and pitch are ill-defined near |yaw| = 90 (gimbal lock); trust yaw there.
    """
    fake = axis_angle_to_angles(_pose(fake_codes)[:, :3].double())
    ref = axis_angle_to_angles(_pose(reference_codes)[:, :3].double())
    diff = (fake - ref).abs()
    diff = torch.minimum(diff, 360 - diff)  # roll/pitch wrap at +-180
    return {"yaw": diff[:, 0], "pitch": diff[:, 1], "roll": diff[:, 2]}


def expression_error(fake_codes, reference_codes) -> dict[str, torch.Tensor]:
    """How far the fake's expression is from the reference's, per sample: ``exp_l1`` (mean absolute
    difference of the FLAME expression coefficients), ``exp_l2`` (their Euclidean distance) and
    ``jaw_deg`` (the angle of the relative jaw rotation, ``pose[:, 3:6]``). Not a paper metric
    (AUCON/PRMSE are absent from the release); a code-space proxy for expression transfer."""
    diff = (fake_codes.exp - reference_codes.exp).double()
    jaw_fake = axis_angle_to_matrix(_pose(fake_codes)[:, 3:6].double())
    jaw_ref = axis_angle_to_matrix(_pose(reference_codes)[:, 3:6].double())
    relative = jaw_fake @ jaw_ref.transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return {"exp_l1": diff.abs().mean(1), "exp_l2": diff.norm(dim=1), "jaw_deg": torch.rad2deg(torch.acos(cos))}


OUTER_EYE_CORNERS = (36, 45)
"""Indices of the outer eye corners in the 68-point (iBUG/FAN) layout, 0-based."""


def landmark_distance(a: torch.Tensor, b: torch.Tensor, normalise: Literal["interocular", "none"] = "interocular") -> torch.Tensor:
    """Normalised mean error between two ``(B, 68, 2)`` landmark sets, per sample: the mean point-to-point
    distance divided by the outer-eye-corner distance of ``b`` (the reference), or raw pixels with
    ``normalise="none"``."""
    if a.shape != b.shape or a.shape[-2:] != (68, 2):
        raise PASLError(f"landmark_distance needs two (B, 68, 2) landmark sets, got {tuple(a.shape)} and {tuple(b.shape)}.")
    error = (a.double() - b.double()).norm(dim=-1).mean(-1)
    if normalise == "none":
        return error
    if normalise != "interocular":
        raise PASLError(f"normalise must be 'interocular' or 'none', got {normalise!r}.")
    i, j = OUTER_EYE_CORNERS
    return error / (b[:, i].double() - b[:, j].double()).norm(dim=-1)


# --- FID -------------------------------------------------------------------------------------------


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str) -> np.ndarray:
    """``sqrt(sigma1 @ sigma2)`` (its trace is what FID needs)."""
    if method == "scipy":
        from scipy import linalg

        root = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(root).all():  # singular product: the usual regularisation (pytorch-fid's)
            offset = np.eye(sigma1.shape[0]) * 1e-6
            root = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        return np.real(root)
    # eigen form: sqrt(S1 S2) is similar to sqrt(S1^1/2 S2 S1^1/2), which is symmetric PSD
    w1, v1 = np.linalg.eigh(sigma1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    w, _ = np.linalg.eigh(root1 @ sigma2 @ root1)
    return np.diag(np.sqrt(np.clip(w, 0, None)))  # only its trace is used


def frechet_distance(mu1, sigma1, mu2, sigma2, method: Literal["auto", "scipy", "eigh"] = "auto") -> float:
    """Fréchet distance between two Gaussians, ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))``, in float64.

    ``"scipy"`` is the official ``metrics/fid.py`` form (``scipy.linalg.sqrtm``, real part);
    ``"eigh"`` uses ``Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2)`` with symmetric eigen-decompositions,
    which needs no scipy and cannot return complex values; ``"auto"`` is scipy when installed.
    """
    mu1, mu2 = (np.asarray(torch.as_tensor(m).double().cpu(), dtype=np.float64).reshape(-1) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(torch.as_tensor(s).double().cpu(), dtype=np.float64)) for s in (sigma1, sigma2))
    if method == "auto":
        try:
            import scipy.linalg  # noqa: F401

            method = "scipy"
        except ImportError:
            method = "eigh"
    if method not in ("scipy", "eigh"):
        raise PASLError(f"method must be 'auto', 'scipy' or 'eigh', got {method!r}.")
    root = _sqrtm_product(sigma1, sigma2, method)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov``, rowvar=False: unbiased, as fid.py) of ``(N, D)`` features."""
    array = features.detach().double().cpu().numpy()
    return array.mean(0), np.cov(array, rowvar=False)


FID_KEYS = {"paper": "fid_paper", "standard": "fid_standard"}
"""The catalogue kind (:mod:`pasl.catalog`) of each flavour's backbone file."""
FID_BACKBONES = {
    flavour: {"file": entry(key).patterns[0], "sha256_prefix": entry(key).sha256, "source": entry(key).source}
    for flavour, key in FID_KEYS.items()
}
"""Backbone files by flavour, read from the catalogue. The full sha256 of these files was not found in any source we
could read; both names follow torch hub's convention that the 8 hex digits in the name are the start of the file's
sha256 (what ``torch.hub`` checks with ``check_hash``), so that prefix is what we check."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PaperInception(torch.nn.Module):
    """StarGAN v2's ``metrics/fid.py`` feature extractor: torchvision Inception-v3 run block by block up to
    Mixed_7c, then global average pooling -> 2048 features. The blocks are called directly, so the
    model's ``transform_input`` never applies (as in the release)."""

    flavour = "paper"

    def __init__(self, state_dict: dict | None = None):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        self.net = net.eval().requires_grad_(False)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        return paper_fid_preprocess(images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        pool = torch.nn.functional.max_pool2d
        x = n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x)))
        x = n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(pool(x, 3, 2)))
        x = pool(x, 3, 2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        return x.mean(dim=(2, 3))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def paper_fid_preprocess(images: torch.Tensor, img_size: int = 256) -> torch.Tensor:
    """The release's FID input: ``Resize(img_size)``, ``Resize(299)``, ImageNet mean/std. The release resizes
    8-bit PNGs with PIL (bilinear, antialiased, rounding between the two resizes); we resize tensors with
    torch's antialiased bilinear, which is close but not bit-identical."""
    x = images.float()
    for size in (img_size, 299):
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _fid_block(base: type, pool) -> type:
    """A torchvision Inception block whose pooling branch pools with ``pool``: the one change pytorch-fid
    makes to match the TensorFlow FID graph. The state-dict keys stay torchvision's. (It reuses
    torchvision's ``_forward`` for the other branches, so the default pooling branch is computed and dropped.)"""

    class Block(base):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            outputs = self._forward(x)[:-1]
            outputs.append(self.branch_pool(pool(x)))
            return torch.cat(outputs, 1)

    Block.__name__ = f"FID{base.__name__}"
    return Block


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class StandardInception(PaperInception):
    """pytorch-fid's FID Inception (the TensorFlow FID network ported to torch): torchvision's Inception-v3
    with 1008 classes, no auxiliary head, padding-free average pooling in Mixed_5b-5d, 6b-6e and 7b, and max
    pooling in Mixed_7c's pool branch. Input: bilinear resize to 299 (no antialias), then ``2x - 1``."""

    flavour = "standard"

    def __init__(self, state_dict: dict | None = None):
        torch.nn.Module.__init__(self)
        from torchvision.models import inception as tv

        net = tv.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
        a, c, e = _fid_block(tv.InceptionA, _avg_pool_no_pad), _fid_block(tv.InceptionC, _avg_pool_no_pad), tv.InceptionE
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = a(192, pool_features=32), a(256, pool_features=64), a(288, pool_features=64)
        net.Mixed_6b, net.Mixed_6c = c(768, channels_7x7=128), c(768, channels_7x7=160)
        net.Mixed_6d, net.Mixed_6e = c(768, channels_7x7=160), c(768, channels_7x7=192)
        net.Mixed_7b, net.Mixed_7c = _fid_block(e, _avg_pool_no_pad)(1280), _fid_block(e, _max_pool)(2048)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        self.net = net.eval().requires_grad_(False)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return 2 * x - 1


_BACKBONE_CLASSES = {"paper": PaperInception, "standard": StandardInception}


def load_fid_backbone(flavour: Literal["paper", "standard"], path: str | Path, check_hash: bool = True) -> torch.nn.Module:
    """The FID feature network of ``flavour`` from a local weight file (nothing is downloaded); ``path``
    is the file or the folder holding it under its official name. ``check_hash=False`` is for tests
    with synthetic weights."""
    if flavour not in FID_BACKBONES:
        raise PASLError(f"FID flavour must be one of {sorted(FID_BACKBONES)}, got {flavour!r}.")
    spec = FID_BACKBONES[flavour]
    path = Path(path)
    if path.is_dir():
        path = path / spec["file"]
    if not path.is_file():
        raise MissingWeightError(
            f"FID backbone not found: {path}. Put {spec['file']} there (or pass its path); get it from {spec['source']}, "
            f"or run `{download_command(FID_KEYS[flavour])}`."
        )
    if check_hash and not _sha256(path).startswith(spec["sha256_prefix"]):
        raise WeightFileError(f"{path} is not {spec['file']}: its sha256 does not start with {spec['sha256_prefix']}.")
    from ..weights import load_pickle_weights

    state = load_pickle_weights(path, expected=spec["file"])
    try:
        return _BACKBONE_CLASSES[flavour](state)
    except RuntimeError as err:
        raise WeightFileError(f"{path} does not hold the {flavour} FID Inception weights: {str(err).splitlines()[0][:200]}") from None


@torch.no_grad()
def fid_features(images: torch.Tensor, backbone: torch.nn.Module, batch_size: int = 50) -> torch.Tensor:
    """``(N, 2048)`` FID features of ``[0, 1]`` images with ``backbone`` from :func:`load_fid_backbone`
    (its flavour decides the preprocessing), computed on the backbone's device in chunks.
    ``paper`` and ``standard`` features are not interchangeable: compare FIDs of one flavour only."""
    param = next(backbone.parameters())
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(param.device)
        chunks.append(backbone(backbone.preprocess(x).to(param.dtype)).float().cpu())
    return torch.cat(chunks)


def fid(features_a: torch.Tensor, features_b: torch.Tensor, method: Literal["auto", "scipy", "eigh"] = "auto") -> float:
    """FID between two feature sets (the release computes it between the sources, ``real``, and the fakes)."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b), method=method)


__all__ = [
    "FID_BACKBONES", "FID_KEYS", "OUTER_EYE_CORNERS", "PaperInception", "StandardInception", "expression_error", "feature_statistics",
    "fid", "fid_features", "frechet_distance", "landmark_distance", "load_fid_backbone", "official_ssim_range", "paper_fid_preprocess",
    "pose_errors", "psnr", "ssim_official",
]
