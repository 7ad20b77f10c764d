"""pasl.eval.metrics against independent references: skimage SSIM, hand PSNR, closed-form FID, hand-made rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pasl.errors import MissingWeightError, PASLError, WeightFileError
from pasl.eval import metrics
from pasl.rotations import angles_to_axis_angle


def _images(seed: int, shape=(2, 3, 40, 48), dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(shape, generator=g, dtype=dtype), 5, 1, 2)
    return smooth.clamp(0, 1)


def test_ssim_of_identical_images_is_one():
    x = _images(0)
    assert torch.allclose(metrics.ssim_official(x, x), torch.ones(2, dtype=x.dtype), atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-14), (torch.float32, 2e-7)])
def test_ssim_matches_skimage_on_the_valid_region(dtype, tol):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    a, b = _images(1, dtype=dtype), _images(2, dtype=dtype)
    b = (0.6 * a + 0.4 * b).clamp(0, 1)  # correlated, so SSIM is well away from 0
    ours = metrics.ssim_official(a, b)
    assert metrics.official_ssim_range(a * 2 - 1) == 2.0
    for i in range(a.shape[0]):
        # skimage filters the full image (reflect padding) and averages after cropping (win-1)/2 = 5 pixels
        # on each side: exactly the valid region. Same window (truncate 3.5 -> radius 5), same constants.
        x, y = (t[i].double().numpy() * 2 - 1 for t in (a, b))
        _, full = skimage_metrics.structural_similarity(
            x, y, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0, full=True
        )
        reference = full[:, 5:-5, 5:-5].mean()
        assert abs(ours[i].item() - reference) < tol
    assert 0.3 < ours.min().item() < 0.99


def test_ssim_range_detection_follows_the_release():
    bright = torch.full((1, 3, 16, 16), 0.9)  # 2x-1 = 0.8 everywhere: no value below -0.5 -> L = 1
    assert metrics.official_ssim_range(bright * 2 - 1) == 1.0
    assert metrics.official_ssim_range(torch.full((1, 1, 2, 2), 200.0)) == 255.0
    other = bright.clone()
    other[..., :8, :] = 0.7
    assert not torch.allclose(metrics.ssim_official(bright, other), metrics.ssim_official(bright, other, data_range=2.0))


def test_ssim_rejects_mismatched_or_tiny_images():
    with pytest.raises(PASLError, match="same"):
        metrics.ssim_official(torch.zeros(1, 3, 20, 20), torch.zeros(1, 3, 20, 21))
    with pytest.raises(PASLError, match="11x11"):
        metrics.ssim_official(torch.zeros(1, 3, 10, 20), torch.zeros(1, 3, 10, 20))


def test_psnr_by_hand():
    a = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    b = a.clone()
    b[0] += 0.1  # MSE 0.01 -> 20 dB
    b[1, 0, 0, 0] = 1.0  # MSE 1/48
    values = metrics.psnr(a, b)
    assert values[0].item() == pytest.approx(20.0, abs=1e-9)
    assert values[1].item() == pytest.approx(10 * math.log10(48), abs=1e-9)
    assert metrics.psnr(a * 255, b * 255, data_range=255)[0].item() == pytest.approx(20.0, abs=1e-9)
    assert torch.isinf(metrics.psnr(a, a)).all()


def _random_spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return m @ m.T + 0.1 * np.eye(n)


@pytest.mark.parametrize("method", ["scipy", "eigh"])
def test_frechet_distance_closed_forms(method):
    s = _random_spd(5, 0)
    mu = np.arange(5.0)
    assert metrics.frechet_distance(mu, s, mu, s, method=method) == pytest.approx(0.0, abs=1e-8)
    # diagonal covariances: sum (sqrt(a) - sqrt(b))^2 plus the mean term
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = 3.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert metrics.frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b), method=method) == pytest.approx(expected, rel=1e-10)
    # general SPD: a direct computation through the symmetric square roots
    s2 = _random_spd(5, 1)
    w, v = np.linalg.eigh(s)
    r = (v * np.sqrt(w)) @ v.T
    w2 = np.linalg.eigvalsh(r @ s2 @ r)
    direct = np.trace(s) + np.trace(s2) - 2 * np.sqrt(w2).sum() + 5.0
    assert metrics.frechet_distance(mu, s, mu + 1, s2, method=method) == pytest.approx(direct, rel=1e-9)


def test_fid_of_identical_feature_sets_is_zero_and_grows_with_a_shift():
    feats = torch.randn(64, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert metrics.fid(feats, feats) == pytest.approx(0.0, abs=1e-8)
    assert metrics.fid(feats, feats + 2) == pytest.approx(8 * 4.0, rel=1e-8)  # covariance unchanged: |shift|^2


def test_fid_backbone_comes_only_from_a_checked_local_file(tmp_path):
    with pytest.raises(MissingWeightError, match="inception_v3_google-0cc3c7bd.pth") as info:
        metrics.load_fid_backbone("paper", tmp_path)
    assert "download.pytorch.org" in str(info.value)
    bad = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightFileError, match="sha256"):
        metrics.load_fid_backbone("paper", tmp_path)
    with pytest.raises(MissingWeightError, match="pt_inception-2015-12-05-6726825d.pth"):
        metrics.load_fid_backbone("standard", tmp_path)
    with pytest.raises(WeightFileError, match="FID Inception weights"):
        torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "junk.pth")
        metrics.load_fid_backbone("standard", tmp_path / "junk.pth", check_hash=False)
    with pytest.raises(PASLError, match="flavour"):
        metrics.load_fid_backbone("clean", tmp_path)


@pytest.mark.slow
def test_paper_fid_features_with_synthetic_weights(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path / "synthetic_inception.pth"
    torch.save(net.state_dict(), path)
    backbone = metrics.load_fid_backbone("paper", path, check_hash=False)
    images = _images(3, shape=(3, 3, 64, 64), dtype=torch.float32)
    feats = metrics.fid_features(images, backbone, batch_size=2)
    assert feats.shape == (3, 2048)
    assert torch.isfinite(feats).all()
    # the same as running torchvision's own layers on the preprocessed input (its forward would add transform_input)
    with torch.no_grad():
        net.eval()
        x = metrics.paper_fid_preprocess(images)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
                     "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
            x = getattr(net, name)(x)
    assert torch.allclose(feats, x.flatten(1), atol=1e-5)


def _codes(angles_deg, exp=None, jaw=None):
    class Codes:
        pass

    c = Codes()
    angles = torch.tensor(angles_deg, dtype=torch.float64)
    jaw = torch.zeros(len(angles_deg), 3, dtype=torch.float64) if jaw is None else jaw
    c.pose = torch.cat([angles_to_axis_angle(angles), jaw], dim=1)
    c.exp = torch.zeros(len(angles_deg), 50, dtype=torch.float64) if exp is None else exp
    return c


def test_pose_errors_of_hand_made_rotations():
    fake = _codes([[30.0, 0.0, 0.0], [75.0, 10.0, -5.0], [0.0, 0.0, 170.0]])
    ref = _codes([[0.0, 0.0, 0.0], [45.0, -10.0, 5.0], [0.0, 0.0, -170.0]])
    errors = metrics.pose_errors(fake, ref)
    assert torch.allclose(errors["yaw"], torch.tensor([30.0, 30.0, 0.0], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(errors["pitch"], torch.tensor([0.0, 20.0, 0.0], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(errors["roll"], torch.tensor([0.0, 10.0, 20.0], dtype=torch.float64), atol=1e-9)  # 170 vs -170: 20, not 340
    assert metrics.pose_errors(fake.pose, ref.pose)["yaw"].mean().item() == pytest.approx(20.0)  # ARD, tensors work too


def test_expression_error():
    exp = torch.zeros(2, 50, dtype=torch.float64)
    exp[0, :2] = torch.tensor([3.0, 4.0])
    jaw = torch.zeros(2, 3, dtype=torch.float64)
    jaw[1, 0] = math.radians(12.0)
    errors = metrics.expression_error(_codes([[0, 0, 0]] * 2, exp=exp, jaw=jaw), _codes([[0, 0, 0]] * 2))
    assert errors["exp_l2"].tolist() == pytest.approx([5.0, 0.0])
    assert errors["exp_l1"].tolist() == pytest.approx([7.0 / 50, 0.0])
    assert errors["jaw_deg"].tolist() == pytest.approx([0.0, 12.0], abs=1e-6)


def test_landmark_distance_is_normalised_by_the_outer_eye_corners():
    b = torch.zeros(1, 68, 2)
    b[0, 36] = torch.tensor([10.0, 50.0])
    b[0, 45] = torch.tensor([90.0, 50.0])  # inter-ocular 80
    a = b.clone()
    a[..., 0] += 4.0  # every point 4 px off
    assert metrics.landmark_distance(a, b).item() == pytest.approx(4.0 / 80)
    assert metrics.landmark_distance(a, b, normalise="none").item() == pytest.approx(4.0)
    with pytest.raises(PASLError, match="68"):
        metrics.landmark_distance(a[:, :5], b[:, :5])


def _synthetic_standard_state() -> dict:
    torch.manual_seed(1)
    model = metrics.StandardInception()
    for module in model.modules():  # non-trivial batch-norm statistics, so a wrong pooling or order shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return {k: v.clone() for k, v in model.net.state_dict().items()}


@pytest.mark.slow
def test_standard_fid_features_with_synthetic_weights(tmp_path):
    state = _synthetic_standard_state()
    assert state["fc.weight"].shape == (1008, 2048) and not any(k.startswith("AuxLogits") for k in state)
    torch.save(state, tmp_path / "synthetic.pth")
    backbone = metrics.load_fid_backbone("standard", tmp_path / "synthetic.pth", check_hash=False)
    images = _images(4, shape=(2, 3, 64, 64), dtype=torch.float32)
    feats = metrics.fid_features(images, backbone)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    # the blocks differ from torchvision's only in their pooling branch, and that changes the features
    plain = metrics.PaperInception()
    plain.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    with torch.no_grad():
        assert not torch.allclose(plain(backbone.preprocess(images)), feats, atol=1e-4)


@pytest.mark.slow
def test_standard_fid_features_match_pytorch_fid(tmp_path, monkeypatch):
    pytorch_fid = pytest.importorskip("pytorch_fid.inception")  # independent reference, when installed
    state = _synthetic_standard_state()
    torch.save(state, tmp_path / "synthetic.pth")
    backbone = metrics.load_fid_backbone("standard", tmp_path / "synthetic.pth", check_hash=False)
    images = _images(4, shape=(2, 3, 64, 64), dtype=torch.float32)
    feats = metrics.fid_features(images, backbone)
    monkeypatch.setattr(pytorch_fid, "load_state_dict_from_url", lambda *args, **kwargs: state)  # never download: our weights
    reference = pytorch_fid.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    with torch.no_grad():
        expected = reference(images)[0].flatten(1)
    assert torch.allclose(feats, expected, rtol=0, atol=1e-6)  # 0.0 measured: the same operations in the same order
