"""pasl.train.losses, pasl.train.vgg and pasl.train.nets: each term against an independent computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pasl.errors import MissingWeightError, WeightFileError
from pasl.pae import PAIR_KINDS, PoseAdaptedEncoders, pair_kind, prepare_faces
from pasl.train.losses import GeneratorInputs, LossWeights, adversarial, discriminator_loss, generator_loss, identity_loss, r1_penalty
from pasl.train.nets import build_nets, ema_update, freeze_unused, he_init
from pasl.train.tiny import tiny_nets
from pasl.train.vgg import SLICES, VGG19_FILE, VGG19Perceptual, features_layout, load_vgg19_state, vgg19_features


class LinearCritic(nn.Module):
    """``logits = sum(w * image) + c * sum(depth)``: its image gradient is ``w`` exactly."""

    def __init__(self, w: torch.Tensor, c: float):
        super().__init__()
        self.w = nn.Parameter(w)
        self.c = c

    def forward(self, image, depth, landmarks):
        return [], (image * self.w).flatten(1).sum(1, keepdim=True) + self.c * depth.flatten(1).sum(1, keepdim=True)


def test_adversarial_is_bce_with_logits():
    logits = torch.tensor([[0.3], [-1.2]])
    assert float(adversarial(logits, 1.0)) == pytest.approx(float(-F.logsigmoid(logits).mean()), rel=1e-6)
    assert float(adversarial(logits, 0.0)) == pytest.approx(float(-F.logsigmoid(-logits).mean()), rel=1e-6)


def test_r1_is_half_the_mean_squared_gradient_norm():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    images = torch.rand(2, 3, 4, 4, requires_grad=True)
    logits = LinearCritic(w, 0.0)(images, images, images)[1]
    assert float(r1_penalty(logits, images).detach()) == pytest.approx(0.5 * float((w**2).sum()), rel=1e-6)


def test_discriminator_loss_sums_the_two_logits_before_the_bce():
    torch.manual_seed(0)
    w1, w2 = torch.randn(3, 4, 4) * 0.1, torch.randn(3, 4, 4) * 0.1
    discs = (LinearCritic(w1, 0.01), LinearCritic(w2, -0.02))
    real, fake, depth = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    total, parts = discriminator_loss(discs, real, fake, depth, depth, lambda_reg=2.0)

    def logits(x):
        return discs[0](x, depth, depth)[1] + discs[1](x, depth, depth)[1]

    with torch.no_grad():
        want_real = -F.logsigmoid(logits(real)).mean()
        want_fake = -F.logsigmoid(-logits(fake)).mean()
        want_r1 = 0.5 * ((w1 + w2) ** 2).sum()  # the gradient of the summed logits
        separate = -F.logsigmoid(discs[0](real, depth, depth)[1]).mean() - F.logsigmoid(discs[1](real, depth, depth)[1]).mean()
    assert float(parts["real"]) == pytest.approx(float(want_real), rel=1e-5)
    assert float(parts["fake"]) == pytest.approx(float(want_fake), rel=1e-5)
    assert float(parts["r1"]) == pytest.approx(float(want_r1), rel=1e-5)
    assert float(total.detach()) == pytest.approx(float(want_real + want_fake + 2.0 * want_r1), rel=1e-5)
    assert abs(float(separate) - float(want_real)) > 1e-3  # summing logits is not summing losses
    total.backward()
    assert discs[0].w.grad is not None and torch.isfinite(discs[0].w.grad).all()


def test_discriminator_loss_without_r1():
    discs = (LinearCritic(torch.ones(3, 4, 4), 0.0), LinearCritic(torch.ones(3, 4, 4), 0.0))
    x = torch.rand(1, 3, 4, 4)
    _, parts = discriminator_loss(discs, x, x, x, x, lambda_reg=0.0)
    assert float(parts["r1"]) == 0.0


class EmbedNet(nn.Module):
    """A stand-in IR-50: 112 input -> 512 embedding by one linear map of the 8x8-pooled face."""

    def __init__(self, seed: int):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 512)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(512, 192, generator=torch.Generator().manual_seed(seed)))

    def forward(self, faces):
        return self.fc(F.adaptive_avg_pool2d(faces, 8).flatten(1))


@pytest.fixture()
def pae() -> PoseAdaptedEncoders:
    return PoseAdaptedEncoders({k: EmbedNet(i) for i, k in enumerate(PAIR_KINDS)}, {k: k for k in PAIR_KINDS}).eval().requires_grad_(False)


class TestIdentityLoss:
    def test_one_minus_cosine_by_the_pair_network(self, pae):
        torch.manual_seed(0)
        fake, source = torch.rand(2, 3, 256, 256), torch.rand(2, 3, 256, 256)
        yaw_source, yaw_reference = torch.tensor([5.0, 40.0]), torch.tensor([70.0, -50.0])
        kinds = [pair_kind(5.0, 70.0), pair_kind(40.0, -50.0)]
        assert kinds == ["FP", "SS"]
        expected = []
        for i, kind in enumerate(kinds):
            net = pae.networks[kind]
            a, b = net(prepare_faces(fake[i : i + 1])), net(prepare_faces(source[i : i + 1]))
            expected.append(1 - F.cosine_similarity(a, b, eps=1e-6))
        got = identity_loss(pae, fake, source, yaw_source, yaw_reference)
        assert float(got) == pytest.approx(float(torch.cat(expected).mean()), rel=1e-5)

    def test_the_yaw_bins_choose_the_network(self, pae):
        torch.manual_seed(1)
        fake, source = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
        frontal = identity_loss(pae, fake, source, torch.tensor([0.0]), torch.tensor([10.0]))
        profile = identity_loss(pae, fake, source, torch.tensor([0.0]), torch.tensor([80.0]))
        assert abs(float(frontal) - float(profile)) > 1e-4

    def test_gradient_reaches_the_result_only(self, pae):
        fake = torch.rand(1, 3, 256, 256, requires_grad=True)
        source = torch.rand(1, 3, 256, 256, requires_grad=True)
        identity_loss(pae, fake, source, torch.tensor([0.0]), torch.tensor([0.0])).backward()
        assert fake.grad is not None and float(fake.grad.abs().sum()) > 0 and source.grad is None


def synthetic_vgg_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in features_layout().items():
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        scale = math.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.01
        state[key] = torch.randn(shape, generator=generator) * scale
    return state


class TestVGG:
    def test_slices_end_at_relu_x_1(self):
        features = vgg19_features()
        assert len(features) == 37
        ends = [b - 1 for _, b in SLICES]
        assert ends == [1, 6, 11, 20, 29] and all(isinstance(features[i], nn.ReLU) for i in ends)
        convs_before = [sum(isinstance(m, nn.Conv2d) for m in features[:e]) for e in ends]
        assert convs_before == [1, 3, 5, 9, 13]  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1

    @pytest.mark.parametrize("normalization", ["imagenet", "official"])
    def test_l1_over_the_five_relus(self, normalization):
        state = synthetic_vgg_state()
        loss = VGG19Perceptual(state, normalization)
        torch.manual_seed(2)
        fake, target = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
        plain = vgg19_features().requires_grad_(False)
        plain.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

        def taps(x):
            x = ((x + 1) / 2 if normalization == "official" else x)
            x = (x - mean) / std
            out = []
            for i, layer in enumerate(plain):
                x = layer(x)
                if i in (1, 6, 11, 20, 29):
                    out.append(x)
            return out

        expected = sum((a - b).abs().mean() for a, b in zip(taps(fake), taps(target)))
        assert float(loss(fake, target)) == pytest.approx(float(expected), rel=1e-5)
        assert float(loss(target, target)) == 0.0

    def test_the_official_normalisation_differs(self):
        state = synthetic_vgg_state()
        fake, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
        assert float(VGG19Perceptual(state, "imagenet")(fake, target)) != float(VGG19Perceptual(state, "official")(fake, target))

    def test_missing_file_is_one_sentence_naming_it(self, tmp_path):
        with pytest.raises(MissingWeightError, match=rf"{VGG19_FILE} there .* or set lambda_vgg to 0\.$"):
            load_vgg19_state(tmp_path)

    def test_hash_and_layout_are_checked(self, tmp_path):
        path = tmp_path / VGG19_FILE
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
        with pytest.raises(WeightFileError, match="sha256 does not start with dcbb9e9d"):
            load_vgg19_state(path)
        with pytest.raises(WeightFileError, match="does not hold torchvision's VGG19 features"):
            load_vgg19_state(path, check_hash=False)

    def test_a_file_of_the_layout_loads(self, tmp_path):
        state = synthetic_vgg_state(1)
        state["classifier.6.bias"] = torch.zeros(1000)  # other entries of the torchvision file are ignored
        torch.save(state, tmp_path / VGG19_FILE)
        loaded = load_vgg19_state(tmp_path, check_hash=False)
        assert set(loaded) == set(features_layout()) and torch.equal(loaded["features.34.weight"], state["features.34.weight"])


class TestGeneratorLoss:
    def test_total_is_the_weighted_sum_and_zero_weights_skip_networks(self):
        torch.manual_seed(0)
        generator, style_encoder, d1, d2 = tiny_nets()
        x = torch.rand(2, 3, 256, 256)
        batch = GeneratorInputs(x, x.flip(0), x, x, torch.zeros(2), torch.zeros(2))
        weights = LossWeights(adv=1.0, id=0.0, sty=2.0, l2=100.0, vgg=0.0)
        total, parts = generator_loss(generator, style_encoder, (d1, d2), batch, weights)
        expected = parts["adv"] + 2.0 * parts["sty"] + 100.0 * parts["l2"]
        assert float(total.detach()) == pytest.approx(float(expected), rel=1e-6)
        assert float(parts["vgg"]) == float(parts["id"]) == 0.0
        fake = generator(x, x, style_encoder(x)).detach()
        assert float(parts["l2"]) == pytest.approx(float(F.mse_loss(fake, x.flip(0))), rel=1e-6)

    def test_a_weighted_term_needs_its_network(self):
        generator, style_encoder, d1, d2 = tiny_nets()
        x = torch.rand(1, 3, 256, 256)
        batch = GeneratorInputs(x, x, x, x, torch.zeros(1), torch.zeros(1))
        with pytest.raises(ValueError, match="needs the VGG19 network"):
            generator_loss(generator, style_encoder, (d1, d2), batch, LossWeights(id=0.0))
        with pytest.raises(ValueError, match="needs the pose-adapted encoders"):
            generator_loss(generator, style_encoder, (d1, d2), batch, LossWeights(vgg=0.0))


class TestNets:
    def test_he_init(self):
        torch.manual_seed(0)
        conv, linear = nn.Conv2d(64, 256, 3), nn.Linear(512, 2048)
        for module in (conv, linear):
            module.bias.data.fill_(1.0)
            he_init(module)
            fan_in = module.weight[0].numel()
            assert float(module.weight.detach().std()) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.03)
            assert float(module.bias.detach().abs().max()) == 0.0

    def test_ema_is_lerp_towards_the_weights(self):
        net, ema = nn.Linear(3, 2), nn.Linear(3, 2)
        before = [p.detach().clone() for p in ema.parameters()]
        ema_update(net, ema, 0.999)
        for p, q0, q in zip(net.parameters(), before, ema.parameters()):
            torch.testing.assert_close(q, 0.999 * q0 + 0.001 * p.detach(), rtol=0, atol=1e-7)

    def test_official_nets_freeze_only_the_unused_generator_parameters(self):
        torch.manual_seed(0)
        nets, ema = build_nets("official")
        frozen = sorted(n for n, p in nets["generator"].named_parameters() if not p.requires_grad)
        assert frozen == sorted(freeze_unused(nets["generator"]))
        assert frozen == sorted(["decode.5.conv1x1.weight", "decode.6.conv1x1.weight", "decode.7.conv1x1.weight",
                                 "to_rgb_lm.0.weight", "to_rgb_lm.0.bias", "to_rgb_lm.2.weight", "to_rgb_lm.2.bias"])
        assert all(p.requires_grad for name in ("style_encoder", "discriminator", "discriminator2") for p in nets[name].parameters())
        assert set(ema) == {"generator", "style_encoder"} and not any(p.requires_grad for p in ema.parameters())
        for key, value in nets["generator"].state_dict().items():
            assert torch.equal(value, ema["generator"].state_dict()[key])
