"""Checks of losses: finite scalar values with gradients into the right network, bf16,
labels, determinism; and :class:`LossCase`, the tiny G and D they (and the regularizer
checks) use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.interfaces import (
    LABEL_KEYWORDS_FIX,
    ImageSpec,
    loss_takes_labels,
    loss_takes_real,
    missing_label_keywords,
)
from .networks import PARTNER, TinyDiscriminator, TinyGenerator
from .report import SkipCheck, fail

#: The image spec of the loss checks' tiny networks.
LOSS_SPEC = ImageSpec(channels=3, size=8, classes=3)


class LossCase:
    """A loss with the kit's tiny G and D (conditional when the loss takes labels), a real
    batch and fake images."""

    def __init__(self, loss: Any, conditional: bool | None = None, seed: int = 0) -> None:
        from ..training.step import LabelledCall

        self.loss = loss
        self.takes = loss_takes_labels(loss)
        cond = self.takes if conditional is None else conditional
        spec = LOSS_SPEC
        torch.manual_seed(seed)
        self.G = TinyGenerator(TinyGenerator.Params(conditional=cond), spec)
        self.D = TinyDiscriminator(TinyDiscriminator.Params(
            conditional=cond, aux_classifier=bool(getattr(loss, "reads_class_logits", False))),
            spec)
        self.D_call = LabelledCall(self.D, cond, PARTNER)
        rng = torch.Generator().manual_seed(seed)
        self.real = torch.rand((4, *spec.shape()), generator=rng) * 2 - 1
        self.z = self.G.sample_latent(4, rng, "cpu")
        labelled = cond or loss.needs_labels
        self.y_real = torch.arange(4) % spec.classes if labelled else None
        self.y_fake = torch.tensor([2, 0, 1, 2]) if labelled else None

    def fake(self) -> torch.Tensor:
        return self.G(self.z, self.y_fake) if self.G.conditional else self.G(self.z)

    def d_loss(self, fake: torch.Tensor) -> Any:
        kwargs = ({"real_labels": self.y_real, "fake_labels": self.y_fake}
                  if self.takes else {})
        return self.loss.discriminator_loss(self.D_call, self.real, fake, **kwargs)

    def g_loss(self, fake: torch.Tensor) -> Any:
        kwargs: dict[str, Any] = {"fake_labels": self.y_fake} if self.takes else {}
        if loss_takes_real(self.loss):  # a relativistic loss compares with the real batch
            kwargs["real"] = self.real
            if self.takes:
                kwargs["real_labels"] = self.y_real
        return self.loss.generator_loss(self.D_call, fake, **kwargs)


def _scalar(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise fail(f"{what} returned {type(value).__name__}, not a tensor")
    if value.dim() != 0:
        raise fail(f"{what} returned shape {tuple(value.shape)}, not a scalar (reduce it "
                   "with .mean())")
    if not value.is_floating_point():
        raise fail(f"{what} returned dtype {value.dtype}, not a float")
    if not bool(torch.isfinite(value)):
        raise fail(f"{what} is not finite: {float(value)}")
    if not value.requires_grad:
        raise fail(f"{what} does not require grad: it must be computed from D's outputs")
    return value


def check_loss_values(loss: Any) -> None:
    """``discriminator_loss`` and ``generator_loss`` return finite float scalars that
    require grad."""
    case = LossCase(loss)
    fake = case.fake()
    _scalar(case.d_loss(fake.detach()), "discriminator_loss")
    _scalar(case.g_loss(fake), "generator_loss")


def _missing_grads(module: nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters() if p.grad is None]


def check_loss_gradients(loss: Any) -> None:
    """Backward of ``discriminator_loss`` reaches every parameter of D (and none of G,
    whose images come detached); backward of ``generator_loss``, with D's parameters
    frozen as in the trainer's G update, reaches G's; all finite."""
    case = LossCase(loss)
    fake = case.fake()
    _scalar(case.d_loss(fake.detach()), "discriminator_loss").backward()
    missing = _missing_grads(case.D)
    if missing:
        raise fail(f"discriminator_loss gives no gradient to D's {', '.join(missing)}")
    if any(p.grad is not None for p in case.G.parameters()):
        raise fail("discriminator_loss gives gradients to G through detached fakes")
    case.D.zero_grad(set_to_none=True)
    case.D.requires_grad_(False)  # as in the trainer's G update: D is frozen
    try:
        _scalar(case.g_loss(fake), "generator_loss").backward()
    finally:
        case.D.requires_grad_(True)
    missing = _missing_grads(case.G)
    if missing:
        raise fail(f"generator_loss gives no gradient to G's {', '.join(missing)}")
    for network in (case.G, case.D):
        bad = [n for n, p in network.named_parameters()
               if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if bad:
            raise fail(f"non-finite gradients: {', '.join(bad)}")


def check_loss_bf16(loss: Any) -> None:
    """Both losses are finite scalars under CPU bfloat16 autocast, and backward works."""
    case = LossCase(loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = case.fake()
        d = _scalar(case.d_loss(fake.detach()), "discriminator_loss under bf16 autocast")
        g = _scalar(case.g_loss(fake), "generator_loss under bf16 autocast")
    (d.float() + g.float()).backward()


def _label_like(loss: Any) -> list[str]:
    """Keywords of the loss's methods that look like labels under another name."""
    import inspect

    found = []
    for method in ("discriminator_loss", "generator_loss"):
        try:
            names = inspect.signature(getattr(loss, method)).parameters
        except (AttributeError, TypeError, ValueError):
            continue
        found += [n for n in names if "label" in n or n in ("y", "y_real", "y_fake",
                                                               "real_y", "fake_y")]
    return found


def check_loss_labels(loss: Any) -> None:
    """A loss that takes ``real_labels``/``fake_labels`` works with a conditional D given
    labels and with an unconditional D given ``None`` (an unlabelled run); one with
    ``needs_labels`` must take them."""
    if not loss_takes_labels(loss):
        missing = missing_label_keywords(loss)
        if getattr(loss, "needs_labels", False) or len(missing) < 3 or _label_like(loss):
            # it means to take labels (needs them, declares some, or names them otherwise)
            raise fail(f"it cannot train a conditional discriminator: it lacks "
                       f"{', '.join(missing)}; {LABEL_KEYWORDS_FIX}")
        raise SkipCheck("takes no labels, so a conditional discriminator refuses it (to "
                        "train one, add real_labels/fake_labels keywords); unconditional "
                        "networks only")
    conditional = LossCase(loss, conditional=True)
    fake = conditional.fake()
    _scalar(conditional.d_loss(fake.detach()), "discriminator_loss with labels")
    _scalar(conditional.g_loss(fake), "generator_loss with labels")
    if not loss.needs_labels:
        plain = LossCase(loss, conditional=False)
        fake = plain.fake()
        _scalar(plain.loss.discriminator_loss(plain.D_call, plain.real, fake.detach(),
                                              real_labels=None, fake_labels=None),
                "discriminator_loss with labels None")
        real = ({"real": plain.real, "real_labels": None} if loss_takes_real(loss) else {})
        _scalar(plain.loss.generator_loss(plain.D_call, fake, fake_labels=None, **real),
                "generator_loss with labels None")


def check_loss_determinism(make: Callable[[], Any]) -> None:
    """Two fresh instances, after the same ``torch.manual_seed``, give identical losses."""
    values = []
    for _ in range(2):
        torch.manual_seed(99)
        case = LossCase(make())
        fake = case.fake()
        torch.manual_seed(100)
        values.append((case.d_loss(fake.detach()).detach(), case.g_loss(fake).detach()))
    (d1, g1), (d2, g2) = values
    if not (torch.equal(d1, d2) and torch.equal(g1, g2)):
        raise fail(f"the same inputs and seed give other losses: ({float(d1)}, {float(g1)}) "
                   f"then ({float(d2)}, {float(g2)})")


def exercise_loss(loss: Any) -> None:
    """Use a loss the way three training steps do (for the component state check)."""
    case = LossCase(loss)
    for step in (1, 2, 3):
        loss.on_step(step)
        fake = case.fake()
        case.d_loss(fake.detach())
        case.g_loss(fake)
