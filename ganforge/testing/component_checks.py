"""Checks of losses, optimizers, schedulers, datasets, metrics and of the component state
protocol (``component_state`` / ``load_component_state``)."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..core.interfaces import (
    LABEL_KEYWORDS_FIX,
    ComponentState,
    ImageSpec,
    loss_takes_labels,
    loss_takes_real,
    missing_label_keywords,
)
from .networks import PARTNER, TinyDiscriminator, TinyGenerator
from .report import SkipCheck, fail

# -- component state ------------------------------------------------------------------------


def check_component_state(make: Callable[[], Any], exercise: Callable[[Any], Any]) -> None:
    """When ``component_state()`` is not None after some use: its tensors are tensors, its
    values survive JSON (the checkpoint stores them so), and a fresh instance given it
    through ``load_component_state`` returns the same state."""
    component = make()
    exercise(component)
    state = component.component_state()
    if state is None:
        raise SkipCheck("stateless (component_state() is None)")
    if not isinstance(state, ComponentState):
        raise fail(f"component_state() returned {type(state).__name__}, not a "
                   "ganforge.ComponentState")
    bad = [k for k, v in state.tensors.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise fail(f"component_state().tensors must map names to tensors: {bad[:5]}")
    try:
        values = json.loads(json.dumps(state.values))
    except (TypeError, ValueError) as error:
        raise fail(f"component_state().values are not JSON-able: {error}") from error
    saved = ComponentState({k: v.detach().clone() for k, v in state.tensors.items()}, values)
    fresh = make()
    fresh.load_component_state(saved)
    back = fresh.component_state()
    if not isinstance(back, ComponentState):
        raise fail("after load_component_state, component_state() returned "
                   f"{type(back).__name__}")
    if back.tensors.keys() != state.tensors.keys():
        raise fail(f"after load_component_state the tensors are {sorted(back.tensors)}, "
                   f"not {sorted(state.tensors)}")
    differ = [k for k, v in state.tensors.items()
              if back.tensors[k].dtype != v.dtype or not torch.equal(back.tensors[k].cpu(),
                                                                     v.detach().cpu())]
    if differ:
        raise fail(f"state does not round-trip: tensors {', '.join(differ[:5])} differ after "
                   "load_component_state(component_state())")
    try:
        back_values = json.loads(json.dumps(back.values))
    except (TypeError, ValueError) as error:
        raise fail(f"component_state().values are not JSON-able: {error}") from error
    if back_values != values:
        raise fail(f"state does not round-trip: values {back_values!r} after "
                   f"load_component_state, saved {values!r}")


def check_figures(make: Callable[[], Any], exercise: Callable[[Any], Any]) -> None:
    """A component that overrides ``figures()`` returns, after some use, a mapping of
    non-empty names to finite numbers or one-element tensors."""
    from ..core.interfaces import Component

    component = make()
    if getattr(type(component), "figures", None) is Component.figures:
        raise SkipCheck("logs no figures of its own")
    exercise(component)
    figures = component.figures()
    if not isinstance(figures, Mapping):
        raise fail(f"figures() returned {type(figures).__name__}, not a mapping")
    for key, value in figures.items():
        if not isinstance(key, str) or not key:
            raise fail(f"figures() has the name {key!r}: names are non-empty strings")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise fail(f"figure {key!r} is a tensor of shape {tuple(value.shape)}, not "
                           "one number")
            value = float(value.detach().float())
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(f"figure {key!r} is {type(value).__name__}, not a number")
        if not math.isfinite(value):
            raise fail(f"figure {key!r} is {value}")


# -- losses -----------------------------------------------------------------------------------

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


# -- optimizers -----------------------------------------------------------------------------


def _optimizer_run(optimizer: Any, steps: int = 2) -> tuple[torch.optim.Optimizer,
                                                             list[torch.Tensor],
                                                             list[torch.Tensor]]:
    torch.manual_seed(5)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in module.parameters()]
    built = optimizer.build(module.parameters(), torch.device("cpu"))
    if not isinstance(built, torch.optim.Optimizer):
        raise fail(f"build() returned {type(built).__name__}, not a torch.optim.Optimizer")
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(6))
    for _ in range(steps):
        built.zero_grad()
        module(x).square().mean().backward()
        built.step()
    return built, before, [p.detach().clone() for p in module.parameters()]


def exercise_optimizer(optimizer: Any) -> None:
    """Build the optimizer and take two steps (for the component state check)."""
    _optimizer_run(optimizer)


def check_optimizer_step(optimizer: Any) -> None:
    """``build(parameters, device)`` gives a torch optimizer whose param groups have an
    ``lr`` (the trainer sets it from the schedule), and a step changes the parameters
    to finite values."""
    built, before, after = _optimizer_run(optimizer, steps=1)
    for i, group in enumerate(built.param_groups):
        lr = group.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, int | float):
            raise fail(f"param group {i} has no numeric 'lr' (the schedule sets "
                       "group['lr'] = base * factor)")
    if all(torch.equal(a, b) for a, b in zip(before, after, strict=True)):
        raise fail("one step with non-zero gradients left every parameter unchanged")
    if not all(bool(torch.isfinite(p).all()) for p in after):
        raise fail("one step made parameters non-finite")


def check_optimizer_determinism(make: Callable[[], Any]) -> None:
    """Two fresh optimizers on the same parameters and gradients end at the same values."""
    _, _, a = _optimizer_run(make())
    _, _, b = _optimizer_run(make())
    if not all(torch.equal(x, y) for x, y in zip(a, b, strict=True)):
        raise fail("two runs of two steps from the same start give other parameters")


# -- schedulers -----------------------------------------------------------------------------

_TOTALS = (1, 7, 100)


def _factors(scheduler: Any, reverse: bool = False) -> dict[tuple[int, int], float]:
    points = [(step, total) for total in _TOTALS for step in range(1, total + 1)]
    values: dict[tuple[int, int], float] = {}
    for step, total in reversed(points) if reverse else points:
        value = scheduler.factor(step, total)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(f"factor({step}, {total}) returned {type(value).__name__}, not a "
                       "float")
        if not math.isfinite(value) or value < 0:
            raise fail(f"factor({step}, {total}) = {value}: must be finite and >= 0")
        values[(step, total)] = float(value)
    return values


def check_scheduler_factor(scheduler: Any) -> None:
    """``factor(step, total)`` is a finite non-negative real number for every step of runs
    of 1, 7 and 100 steps."""
    _factors(scheduler)


def check_scheduler_determinism(make: Callable[[], Any]) -> None:
    """A fresh schedule gives the same factors, asked in reverse order (a resumed run asks
    from the middle): the factor is a function of the step, or its state is kept with
    ``component_state``."""
    first = make()
    forward = _factors(first)
    second = make()
    stateful = first.component_state() is not None
    again = _factors(second, reverse=not stateful)
    differ = [k for k in forward if forward[k] != again[k]]
    if differ:
        step, total = differ[0]
        raise fail(f"factor({step}, {total}) is {forward[differ[0]]} in order and "
                   f"{again[differ[0]]} {'again' if stateful else 'in reverse order'}: "
                   "schedules must be a function of (step, total) or keep their state in "
                   "component_state()")


# -- datasets -------------------------------------------------------------------------------


def check_dataset_spec(cls: Any, params: Any) -> ImageSpec:
    """``image_spec_for(params)`` (a classmethod, called before any dataset is built)
    gives an :class:`ImageSpec` of positive ints and ``classes >= 0``."""
    spec = cls.image_spec_for(params)
    if not isinstance(spec, ImageSpec):
        raise fail(f"image_spec_for returned {type(spec).__name__}, not an ImageSpec")
    for field, low in (("channels", 1), ("size", 1), ("classes", 0)):
        value = getattr(spec, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise fail(f"image_spec_for gave {field} = {value!r}")
    return spec


def _indices(length: int) -> list[int]:
    return sorted({0, 1, length // 2, length - 1} & set(range(length)))


def _item(dataset: Any, index: int, spec: ImageSpec) -> tuple[torch.Tensor, int | None]:
    item = dataset[index]
    where = f"item {index}"
    label: int | None = None
    if spec.classes > 0:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise fail(f"{where} is {type(item).__name__}, not an (image, label) pair (the "
                       f"spec has {spec.classes} classes)")
        item, raw = item
        if isinstance(raw, torch.Tensor) and raw.dim() == 0 and not raw.is_floating_point():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < spec.classes:
            raise fail(f"{where}: label {raw!r} is not an int in [0, {spec.classes})")
        label = raw
    if not isinstance(item, torch.Tensor):
        raise fail(f"{where}: image is {type(item).__name__}, not a tensor")
    if tuple(item.shape) != spec.shape():
        raise fail(f"{where}: image shape {tuple(item.shape)}, the spec says {spec.shape()}")
    if not item.is_floating_point():
        raise fail(f"{where}: image dtype {item.dtype}, expected float")
    if not bool(torch.isfinite(item).all()):
        raise fail(f"{where}: image has non-finite values")
    low, high = float(item.min()), float(item.max())
    if low < -1 or high > 1:
        raise fail(f"{where}: image leaves [-1, 1] (min {low:.4g}, max {high:.4g})")
    return item, label


def build_dataset(cls: type, params: Any, given: bool) -> Any:
    """``cls(params)``; without params of the caller's, a dataset that cannot be built from
    its defaults (it needs files) is skipped rather than failed."""
    from ..core.errors import GanforgeError

    try:
        return cls(params)
    except GanforgeError as error:
        if given:
            raise
        raise SkipCheck(f"cannot be built from its default params ({error}); pass "
                        "params=") from error


def check_dataset_items(dataset: Any, spec: ImageSpec) -> None:
    """``len`` is positive; items are float CHW images of the spec's shape in [-1, 1]
    (``(image, int label)`` pairs when the spec has classes); ``dataset[len]`` raises
    IndexError; ``resident_images``/``resident_labels``, when given, match."""
    length = len(dataset)
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise fail(f"len(dataset) is {length!r}")
    if not spec.same_images(dataset.image_spec) or dataset.image_spec != spec:
        raise fail(f"dataset.image_spec {dataset.image_spec!r} is not image_spec_for(params) "
                   f"{spec!r}")
    for index in _indices(length):
        _item(dataset, index, spec)
    try:
        dataset[length]
    except IndexError:
        pass
    else:
        raise fail(f"dataset[{length}] (len(dataset)) did not raise IndexError")
    resident = dataset.resident_images()
    if resident is not None:
        if resident.dtype != torch.uint8 or tuple(resident.shape) != (length, *spec.shape()):
            raise fail(f"resident_images() is {resident.dtype} {tuple(resident.shape)}, "
                       f"expected uint8 {(length, *spec.shape())}")
        labels = dataset.resident_labels()
        if spec.classes and (labels is None or tuple(labels.shape) != (length,)):
            raise fail("resident_labels() must give one label per resident image")


def check_dataset_determinism(make: Callable[[], Any], spec: ImageSpec) -> None:
    """An item read twice, and from a second instance, is the same; ``augment`` with a
    seeded generator is deterministic and keeps the shape and range."""
    a, b = make(), make()
    for index in _indices(len(a)):
        first, label = _item(a, index, spec)
        for other, where in ((a, "read again"), (b, "from a second instance")):
            again, label_again = _item(other, index, spec)
            if not torch.equal(first, again) or label != label_again:
                raise fail(f"item {index} differs when {where}")
    batch = torch.stack([_item(a, i, spec)[0] for i in _indices(len(a))])
    once = a.augment(batch.clone(), torch.Generator().manual_seed(3))
    twice = a.augment(batch.clone(), torch.Generator().manual_seed(3))
    if not isinstance(once, torch.Tensor) or once.shape != batch.shape:
        raise fail("augment changed the batch's shape")
    if not torch.equal(once, twice):
        raise fail("augment with the same seeded generator gave other images")
    if float(once.min()) < -1 or float(once.max()) > 1:
        raise fail("augment left [-1, 1]")


def exercise_dataset(dataset: Any) -> None:
    """Read a few items (for the component state check)."""
    for index in _indices(len(dataset)):
        dataset[index]


# -- metrics --------------------------------------------------------------------------------


def _features(metric: Any, seed: int, n: int = 64) -> Any:
    """What the metric's extractor would give for ``n`` images (``Metric.example_features``;
    random 16-dimensional vectors with 10 class logits unless the metric says otherwise)."""
    return type(metric).example_features(n, torch.Generator().manual_seed(seed))


def check_metric_params(params: Any) -> None:
    """``Params`` subclasses :class:`ganforge.evaluation.metrics.MetricParams` (the
    evaluation driver reads ``n_fake``, ``extractor``, ...)."""
    from ..evaluation.metrics import MetricParams

    if not isinstance(params, MetricParams):
        raise fail("Params must subclass ganforge.evaluation.metrics.MetricParams")


def _score(metric: Any) -> tuple[float, dict[str, float]]:
    real = _features(metric, 1) if metric.needs_real else None
    result = metric.score(_features(metric, 0), real)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise fail(f"score() returned {type(result).__name__}, not (value, extras)")
    value, extras = result
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise fail(f"score() value {value!r} is not a finite float")
    if not isinstance(extras, dict) or not all(
            isinstance(k, str) and isinstance(v, numbers.Real) and math.isfinite(v)
            for k, v in extras.items()):
        raise fail(f"score() extras {extras!r} are not a dict of finite floats")
    return float(value), {k: float(v) for k, v in extras.items()}


def exercise_metric(metric: Any) -> None:
    """Score random features once (for the component state check)."""
    _score(metric)


def check_metric_score(metric: Any) -> None:
    """``score`` on 64 images' features (``Metric.example_features``: by default random
    16-dimensional vectors with 10 class logits) gives a finite value and a dict of finite
    extras."""
    _score(metric)


def check_metric_determinism(make: Callable[[], Any]) -> None:
    """Two fresh instances score the same features the same."""
    if _score(make()) != _score(make()):
        raise fail("the same features give another score")


# -- feature extractors ----------------------------------------------------------------------

def _extractor_output(extractor: Any, size: int, channels: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(size * 10 + channels)
    images = torch.rand(4, channels, size, size, generator=gen) * 2 - 1
    extractor.load(torch.device("cpu"))
    result = extractor(images)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise fail(f"__call__ returned {type(result).__name__}, not (features, logits)")
    return result


def check_extractor_features(extractor: Any, sizes: list[int], channels: list[int]) -> None:
    """``name`` and ``resize`` are non-empty strings (the protocol records them); 4 images
    in [-1, 1] of each size and channel count give finite float features ``(4, D)``, ``D``
    the same for every size of one channel count, and class logits ``(4, K)`` exactly when
    ``has_logits``."""
    for attribute in ("name", "resize"):
        value = getattr(extractor, attribute, None)
        if not isinstance(value, str) or not value:
            raise fail(f"{attribute} must be a non-empty string, got {value!r}")
    for c in channels:
        dims = set()
        for size in sizes:
            features, logits = _extractor_output(extractor, size, c)
            if not (isinstance(features, torch.Tensor) and features.dim() == 2
                    and features.shape[0] == 4 and features.is_floating_point()):
                raise fail(f"{c}x{size}x{size} images: features must be a float (4, D) "
                           f"tensor, got {getattr(features, 'shape', type(features))}")
            if not torch.isfinite(features).all():
                raise fail(f"{c}x{size}x{size} images: non-finite features")
            dims.add(features.shape[1])
            if extractor.has_logits != (logits is not None):
                raise fail(f"has_logits is {extractor.has_logits} but the logits are "
                           f"{'missing' if logits is None else 'there'}")
            if logits is not None and not (logits.dim() == 2 and logits.shape[0] == 4):
                raise fail(f"logits must be (4, K), got {tuple(logits.shape)}")
        if len(dims) != 1:
            raise fail(f"{c}-channel images: the feature dimension depends on the image "
                       f"size: {sorted(dims)}")


def check_extractor_determinism(make: Callable[[], Any], size: int, channels: int) -> None:
    """Two fresh instances give the same features for the same images."""
    first, _ = _extractor_output(make(), size, channels)
    second, _ = _extractor_output(make(), size, channels)
    if not torch.equal(first, second):
        raise fail("the same images give other features")


def exercise_extractor(extractor: Any) -> None:
    """Extract the features of 4 random images once (for the component state check)."""
    _extractor_output(extractor, 32, 3)
