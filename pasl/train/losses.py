"""The AEG's training objective, as recovered from the release (``pasl-reference.md`` §5).

Discriminator: ``BCE(D1(x_ref) + D2(x_ref), 1) + BCE(D1(x_fake) + D2(x_fake), 0) + lambda_reg * R1``
(logits summed before the loss; R1 on the real reference images). Generator:
``lambda_adv * BCE(D1(x_fake) + D2(x_fake), 1) + lambda_id * identity + lambda_sty * style cycle
+ lambda_l2 * MSE(x_fake, gt) + lambda_vgg * VGG19 perceptual``, where the identity term (stripped from
the release) is ``1 - cos`` between PAE embeddings of the result and the source, by the pose-adapted
encoder the pair's yaw bins select (:func:`pasl.pae.pair_kind`). A weight of 0 skips its term, so its
network is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..pae import cosine_similarity, pair_kind
from .discriminator import summed_logits


@dataclass(frozen=True)
class LossWeights:
    """The lambdas; the defaults are the release's total (``compute_g_loss``) and StarGAN v2's ``lambda_reg``."""

    adv: float = 1.0
    id: float = 100.0
    sty: float = 1.0
    l2: float = 100.0
    vgg: float = 5.0
    reg: float = 1.0


def adversarial(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE-with-logits of ``logits`` against the constant ``target`` (1 real, 0 fake), mean over the batch."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def r1_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``0.5 * mean_b sum (d sum(logits) / d images)^2``; ``images`` must require grad and have produced ``logits``.

    The graph is kept (``create_graph``), so the penalty itself trains the discriminator.
    """
    (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return 0.5 * grad.float().pow(2).flatten(1).sum(1).mean()


def discriminator_loss(
    discs: tuple[nn.Module, nn.Module],
    real: torch.Tensor,
    fake: torch.Tensor,
    depth: torch.Tensor,
    landmarks: torch.Tensor,
    lambda_reg: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The discriminators' loss on real reference images and (detached) generated ones, and its parts.

    Args:
        discs: ``(discriminator, discriminator2)`` (possibly DDP-wrapped).
        real: ``(B, 3, 256, 256)`` the reference images (the maps were drawn from them).
        fake: ``(B, 3, 256, 256)`` generated from the same maps.
        depth, landmarks: ``(B, 3, 256, 256)`` conditioning maps.

    Returns:
        ``(total, {"real", "fake", "r1"})``, scalars (parts detached).
    """
    real = real.detach().requires_grad_(lambda_reg > 0)
    real_logits = summed_logits(discs, real, depth, landmarks)
    loss_real = adversarial(real_logits, 1.0)
    r1 = r1_penalty(real_logits, real) if lambda_reg > 0 else real_logits.new_zeros(())
    loss_fake = adversarial(summed_logits(discs, fake.detach(), depth, landmarks), 0.0)
    total = loss_real + loss_fake + lambda_reg * r1
    return total, {"real": loss_real.detach(), "fake": loss_fake.detach(), "r1": r1.detach()}


def identity_loss(
    pae, fake: torch.Tensor, source: torch.Tensor, yaw_source: torch.Tensor, yaw_reference: torch.Tensor, protocol: str = "fixed"
) -> torch.Tensor:
    """``mean(1 - cos(PAE_k(fake), PAE_k(source)))``, ``k = pair_kind(yaw_source, yaw_reference)`` per pair.

    The result takes the reference's pose, so the pair (source, result) is judged by the network
    trained on the (source bin, reference bin) pair. The source embedding carries no gradient.

    Args:
        pae: a :class:`pasl.pae.PoseAdaptedEncoders` (frozen, eval mode).
        fake, source: ``(B, 3, 256, 256)`` in [0, 1].
        yaw_source, yaw_reference: ``(B,)`` head yaw in degrees (:func:`pasl.shape.face_yaw`).
    """
    kinds = [pair_kind(a, b) for a, b in zip(yaw_source.reshape(-1).tolist(), yaw_reference.reshape(-1).tolist())]
    with torch.no_grad():
        wanted = pae.embed(source, kinds, protocol)
    return (1 - cosine_similarity(pae.embed(fake, kinds, protocol), wanted)).mean()


@dataclass(frozen=True)
class GeneratorInputs:
    """One batch as the generator's loss reads it (all ``(B, 3, 256, 256)`` in [0, 1], yaws ``(B,)`` degrees)."""

    source: torch.Tensor
    target: torch.Tensor
    depth: torch.Tensor
    landmarks: torch.Tensor
    yaw_source: torch.Tensor
    yaw_reference: torch.Tensor


def generator_loss(
    generator: nn.Module,
    style_encoder: nn.Module,
    discs: tuple[nn.Module, nn.Module],
    batch: GeneratorInputs,
    weights: LossWeights,
    vgg: nn.Module | None = None,
    pae=None,
    pae_protocol: str = "fixed",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The generator's and style encoder's loss (module docstring) and its parts (detached, unweighted).

    ``discs`` should have ``requires_grad`` off: only the generated image gets their gradient.
    ``vgg`` (a :class:`pasl.train.vgg.VGG19Perceptual`) and ``pae`` are needed only when their weight is > 0.

    Returns:
        ``(total, {"adv", "id", "sty", "l2", "vgg"})``.
    """
    if weights.vgg > 0 and vgg is None:
        raise ValueError("lambda_vgg > 0 needs the VGG19 network (vgg)")
    if weights.id > 0 and pae is None:
        raise ValueError("lambda_id > 0 needs the pose-adapted encoders (pae)")
    style = style_encoder(batch.source)
    fake = generator(batch.depth, batch.landmarks, style)
    zero = fake.new_zeros((), dtype=torch.float32)
    parts = {
        "adv": adversarial(summed_logits(discs, fake, batch.depth, batch.landmarks), 1.0),
        "sty": (style_encoder(fake) - style).abs().mean(),
        "l2": F.mse_loss(fake.float(), batch.target.float()),
        "vgg": vgg(fake, batch.target) if weights.vgg > 0 else zero,
        "id": identity_loss(pae, fake, batch.source, batch.yaw_source, batch.yaw_reference, pae_protocol) if weights.id > 0 else zero,
    }
    total = sum(getattr(weights, name) * value.float() for name, value in parts.items())
    return total, {name: value.detach().float() for name, value in parts.items()}
