"""DiffAugment and ADA (``ganforge/builtins/augmentations.py``): the ops against hand
computations and the reference implementations' formulas, seeded determinism, gradients,
dtype, no host synchronisation, and ADA's adaptation and state."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ganforge.builtins.augmentations import (
    ADA_OPS,
    AdaptiveAugment,
    DiffAugment,
    NoAugment,
    sampling_grid,
)
from ganforge.interfaces import ComponentState


def diffaugment(**params: Any) -> DiffAugment:
    return DiffAugment(DiffAugment.Params(**params))


def ada(**params: Any) -> AdaptiveAugment:
    return AdaptiveAugment(AdaptiveAugment.Params(**params))


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clone(generator: torch.Generator) -> torch.Generator:
    """A generator in the same state: it draws the same numbers next."""
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


def images(n: int = 6, channels: int = 3, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=rng(seed)) * 2 - 1


def unique_images(n: int, channels: int, size: int) -> torch.Tensor:
    """Images whose pixels all differ (and none is 0): a shift can be read back."""
    return torch.arange(1, n * channels * size * size + 1, dtype=torch.float32).view(
        n, channels, size, size)


AUGMENTS: dict[str, Callable[[], Any]] = {
    "diffaugment": diffaugment,
    "ada": lambda: ada(initial_p=1.0),
}


# -- both -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AUGMENTS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shape_and_dtype_are_kept(name: str, channels: int, dtype: torch.dtype) -> None:
    x = images(channels=channels).to(dtype)
    out = AUGMENTS[name]()(x, rng())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out.float()).all()
    assert not torch.equal(out, x)


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_the_generator_decides_every_draw(name: str) -> None:
    x = images()
    make = AUGMENTS[name]
    torch.manual_seed(123)
    first = make()(x, rng(5))
    torch.manual_seed(456)  # the global RNG plays no part
    again = make()(x, rng(5))
    other = make()(x, rng(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # And the draws come from the generator: it has moved on.
    g = rng(5)
    make()(x, g)
    assert not torch.equal(g.get_state(), rng(5).get_state())


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_gradients_reach_the_images(name: str) -> None:
    x = images().requires_grad_(True)
    weights = torch.randn(x[0].numel(), generator=rng(9))
    (AUGMENTS[name]()(x, rng()).flatten(1) @ weights).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_bf16_under_autocast(name: str) -> None:
    x = images().to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = AUGMENTS[name]()(x, rng())
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad.float()).all()
    # bf16 follows the float32 result to bf16's precision.
    ref = AUGMENTS[name]()(x.detach().float(), rng())
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


#: aten ops that read a tensor's values back to the host, or whose output shape depends
#: on them (a host synchronisation on a GPU), or that build a tensor from host data (a
#: synchronous host-to-device copy on a GPU).
SYNCING = ("_local_scalar_dense", "item", "is_nonzero", "nonzero", "nonzero_static",
           "masked_select", "unique", "_unique", "_unique2", "unique_consecutive",
           "unique_dim", "repeat_interleave", "equal", "allclose", "lift_fresh",
           "_assert_async")


class _RefuseSync(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name in SYNCING:
            raise AssertionError(f"host synchronisation: {func}")
        if name in ("index", "index_put", "index_put_", "_index_put_impl_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool
                for i in (args[1] if len(args) > 1 else ())):
            raise AssertionError(f"boolean mask index (a data-dependent shape): {func}")
        return func(*args, **(kwargs or {}))


@contextmanager
def no_host_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every aten op run inside is checked (a dispatch mode sees what C++ runs as well as
    Python), and the Python ways of reading a tensor raise too."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a tensor's value read on the host")

    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__",
                     "numpy", "nonzero"):
            patch.setattr(torch.Tensor, name, refuse)
        with _RefuseSync():
            yield


def test_the_sync_guard_catches_syncs(monkeypatch: pytest.MonkeyPatch) -> None:
    t = torch.ones(3)
    for read in (lambda: t.sum().item(), lambda: bool(t.sum() > 0), lambda: t.tolist(),
                 lambda: t[t > 0], lambda: torch.tensor([1.0]), lambda: float(t.sum()),
                 lambda: torch.equal(t, t)):
        with pytest.raises(AssertionError), no_host_sync(monkeypatch):
            read()


@pytest.mark.parametrize("channels", [1, 3])
def test_no_host_synchronisation(monkeypatch: pytest.MonkeyPatch, channels: int) -> None:
    x = images(channels=channels).requires_grad_(True)
    d = diffaugment()
    a = ada(initial_p=0.5, interval=2)
    a(x, rng())  # the state is created on the CPU; the first call moves it (a no-op here)
    with no_host_sync(monkeypatch):
        out = d(x, rng()) + a(x, rng())
        for _ in range(5):  # through two adjustments
            a.observe_real_logits(torch.randn(6))
        out.sum().backward()
        figures = a.figures()
    assert set(figures) == {"aug/p", "aug/rt"}


# -- DiffAugment --------------------------------------------------------------------------------


def test_diffaugment_params() -> None:
    p = DiffAugment.Params()
    assert (p.policy, p.translation_ratio, p.cutout_ratio) == (
        "color,translation,cutout", 0.125, 0.5)
    assert diffaugment(policy="cutout, color").ops == ("cutout", "color")  # order as given
    with pytest.raises(ValueError, match=r"'blur'.*known: color, translation, cutout"):
        DiffAugment.Params(policy="color,blur")
    with pytest.raises(ValueError, match="names no op"):
        DiffAugment.Params(policy="")
    with pytest.raises(ValueError, match="twice"):
        DiffAugment.Params(policy="color,color")
    for bad in ({"translation_ratio": -0.1}, {"cutout_ratio": 1.5},
                {"cutout_ratio": float("nan")}):
        with pytest.raises(ValueError):
            DiffAugment.Params(**bad)


def _uniform(g: torch.Generator, n: int) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g)


def test_diffaugment_color_is_the_reference_formula() -> None:
    x = images(n=5)
    g = rng(3)
    expected_g = clone(g)
    out = diffaugment(policy="color")(x, g)
    # rand_brightness, rand_color (saturation), rand_contrast of the reference, in order.
    b, s, c = (_uniform(expected_g, 5) for _ in range(3))
    y = x + (b - 0.5)
    y = (y - y.mean(1, keepdim=True)) * (s * 2) + y.mean(1, keepdim=True)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (c + 0.5) + y.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, y)
    assert torch.equal(g.get_state(), expected_g.get_state())  # three draws per image


def test_diffaugment_color_bounds() -> None:
    # A flat image: saturation and contrast act around its own value, so only the
    # brightness moves it, by U(-0.5, 0.5) per image.
    flat = torch.full((400, 3, 4, 4), 0.25)
    out = diffaugment(policy="color")(flat, rng())
    shift = out - flat
    assert torch.allclose(shift, shift[:, :1, :1, :1].expand_as(shift), atol=1e-6)
    assert shift.min() >= -0.5 and shift.max() < 0.5 and shift.std() > 0.2
    # Grey pixels (equal channels) stay grey; the spread about the image mean is scaled by
    # U(0.5, 1.5) (the contrast), and the image mean moves by the brightness alone.
    grey = images(n=400, channels=1, size=4).expand(400, 3, 4, 4)
    out = diffaugment(policy="color")(grey, rng())
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)
    spread = lambda t: (t - t.mean((1, 2, 3), keepdim=True)).abs().sum((1, 2, 3))  # noqa: E731
    ratio = spread(out) / spread(grey)
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.5 + 1e-5
    assert ratio.min() < 0.6 and ratio.max() > 1.4
    moved = out.mean((1, 2, 3)) - grey.mean((1, 2, 3))
    assert moved.min() >= -0.5 - 1e-5 and moved.max() <= 0.5 + 1e-5
    # Saturation on one channel is the identity: the channel mean is the pixel.
    one = images(n=3, channels=1)
    g = rng(4)
    expected_g = clone(g)
    b, _, c = (_uniform(expected_g, 3) for _ in range(3))
    y = one + (b - 0.5)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (c + 0.5) + y.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(diffaugment(policy="color")(one, g), y)


def _shifts(g: torch.Generator, n: int, shift: int) -> tuple[list[int], list[int]]:
    dy = torch.randint(-shift, shift + 1, (n, 1, 1), generator=g).view(-1)
    dx = torch.randint(-shift, shift + 1, (n, 1, 1), generator=g).view(-1)
    return [int(v) for v in dy], [int(v) for v in dx]


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[i, j] = image[i + dy, j + dx]``, zero outside: the reference's translation."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    out[:, max(0, -dy):min(h, h - dy), max(0, -dx):min(w, w - dx)] = \
        image[:, max(0, dy):min(h, h + dy), max(0, dx):min(w, w + dx)]
    return out


@pytest.mark.parametrize("size,ratio,shift", [(32, 0.125, 4), (16, 0.125, 2), (20, 0.125, 3),
                                               (16, 0.25, 4), (8, 0.0, 0)])
def test_diffaugment_translation(size: int, ratio: float, shift: int) -> None:
    n = 40
    x = unique_images(n, 2, size)
    g = rng(7)
    dy, dx = _shifts(clone(g), n, shift)
    out = diffaugment(policy="translation", translation_ratio=ratio)(x, g)
    assert out.is_contiguous()
    for k in range(n):
        assert torch.equal(out[k], _shifted(x[k], dy[k], dx[k])), k
    # int(size * ratio + 0.5) pixels at most, each shift in range drawn.
    assert set(dy) | set(dx) == set(range(-shift, shift + 1))
    if shift:
        # Read the shift back from the first surviving pixel of a unique image.
        k = next(i for i in range(n) if dy[i] > 0 and dx[i] > 0)
        assert out[k, 0, 0, 0] == x[k, 0, dy[k], dx[k]]
        assert (out[k, :, -dy[k]:] == 0).all() and (out[k, :, :, -dx[k]:] == 0).all()


def _cutout_box(g: torch.Generator, n: int, h: int, w: int, size: int) -> list[tuple[int, ...]]:
    cy = torch.randint(0, h + (1 - size % 2), (n, 1, 1), generator=g).view(-1)
    cx = torch.randint(0, w + (1 - size % 2), (n, 1, 1), generator=g).view(-1)
    return [(int(y) - size // 2, int(x) - size // 2) for y, x in zip(cy, cx, strict=True)]


@pytest.mark.parametrize("size,ratio,side", [(32, 0.5, 16), (16, 0.5, 8), (15, 0.5, 8),
                                              (16, 0.3, 5), (8, 0.0, 0)])
def test_diffaugment_cutout(size: int, ratio: float, side: int) -> None:
    n = 60
    x = unique_images(n, 3, size)
    g = rng(8)
    boxes = _cutout_box(clone(g), n, size, size, side)
    out = diffaugment(policy="cutout", cutout_ratio=ratio)(x, g)
    whole = 0
    for k, (top, left) in enumerate(boxes):
        mask = torch.ones(size, size)
        mask[max(top, 0):max(top + side, 0), max(left, 0):max(left + side, 0)] = 0
        assert torch.equal(out[k], x[k] * mask), k
        zeros = (out[k, 0] == 0)
        rows, cols = zeros.any(1), zeros.any(0)
        # The zeros are exactly a rectangle (the square cut off at the border), the same
        # in every channel.
        assert zeros.sum() == rows.sum() * cols.sum()
        assert torch.equal(out[k] == 0, zeros.expand(3, -1, -1))
        if rows.sum() == side and cols.sum() == side:
            whole += 1
    if side:
        assert whole > 0  # some squares wholly inside the image: side x side zeros
        # Centres cover the reference's range, so squares reach past every border.
        assert min(t for t, _ in boxes) < 0 and max(t for t, _ in boxes) + side > size
    else:
        assert torch.equal(out, x)


def test_diffaugment_applies_the_policy_in_order() -> None:
    x = images()
    for policy in ("color,translation,cutout", "cutout,translation,color", "translation"):
        g = rng(2)
        expected_g = clone(g)
        out = diffaugment(policy=policy)(x, g)
        d = diffaugment()
        expected = x
        for op in policy.split(","):
            expected = getattr(d, op)(expected, expected_g)
        assert torch.equal(out, expected), policy
    assert not torch.equal(diffaugment(policy="color,translation")(x, rng()),
                           diffaugment(policy="translation,color")(x, rng()))


def test_diffaugment_matches_the_reference_defaults_on_32px() -> None:
    """The reference's fixed 1/8 translation and 1/2 cutout on 32 x 32 images: shifts up
    to 4 pixels and 16 x 16 squares."""
    n = 300
    x = torch.ones(n, 3, 32, 32)
    out = diffaugment(policy="cutout")(x, rng())
    zeros = (out[:, 0] == 0)
    assert zeros.any(2).sum(1).max() == 16 and zeros.any(1).sum(1).max() == 16
    out = diffaugment(policy="translation")(x, rng())
    empty_rows = (out[:, 0] == 0).all(2).sum(1)
    assert empty_rows.max() == 4


def test_noaugment_is_the_identity() -> None:
    x = images()
    assert NoAugment(NoAugment.Params())(x, rng()) is x
    assert NoAugment.changes_images is False and DiffAugment.changes_images is True


# -- ADA: the pipeline -----------------------------------------------------------------------


def test_ada_params() -> None:
    p = AdaptiveAugment.Params()
    assert (p.target, p.interval, p.speed_kimg, p.initial_p, p.max_p) == (
        0.6, 4, 500.0, 0.0, 1.0)
    assert tuple(p.ops.split(",")) == ADA_OPS == (
        "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness",
        "contrast", "lumaflip", "hue", "saturation")
    with pytest.raises(ValueError, match=r"'cutout'.*known: xflip, rotate90"):
        AdaptiveAugment.Params(ops="xflip,cutout")
    with pytest.raises(ValueError, match="initial_p"):
        AdaptiveAugment.Params(initial_p=0.5, max_p=0.4)
    for bad in ({"interval": 0}, {"speed_kimg": 0.0}, {"max_p": 1.5}, {"initial_p": -0.1},
                {"target": float("nan")}):
        with pytest.raises(ValueError):
            AdaptiveAugment.Params(**bad)


def test_sampling_grid_is_affine_grid() -> None:
    theta = torch.randn(4, 2, 3, generator=rng())
    for h, w in ((8, 8), (5, 7)):
        expected = torch.nn.functional.affine_grid(theta, [4, 1, h, w], align_corners=False)
        torch.testing.assert_close(sampling_grid(theta, h, w), expected)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ada_at_p_0_is_exactly_the_identity(channels: int, dtype: torch.dtype) -> None:
    x = images(channels=channels).to(dtype)
    g = rng()
    out = ada()(x, g)
    assert torch.equal(out, x) and out.dtype == dtype
    assert not torch.equal(g.get_state(), rng().get_state())  # it drew all the same


def test_ada_at_p_1_changes_every_image_with_every_op() -> None:
    x = images(n=8)
    assert (ada(initial_p=1.0)(x, rng()) - x).flatten(1).abs().amax(1).min() > 0.05
    for op in ADA_OPS:
        out = ada(initial_p=1.0, ops=op)(x, rng(11))
        assert not torch.allclose(out, x, atol=1e-3), op


def test_ada_probability_is_per_image() -> None:
    x = images(n=400, size=8)
    out = ada(initial_p=0.3, ops="brightness")(x, rng())
    touched = (out - x).flatten(1).abs().amax(1) > 0
    assert 0.2 < touched.float().mean() < 0.4
    assert torch.equal(out[~touched], x[~touched])


def _close_to_one_of(out: torch.Tensor, candidates: list[torch.Tensor]) -> list[int]:
    """For each image, which candidate (a batch like ``out``) it matches."""
    picks = []
    for k in range(out.shape[0]):
        errors = [float((out[k] - c[k]).abs().max()) for c in candidates]
        assert min(errors) < 1e-4, (k, errors)
        picks.append(errors.index(min(errors)))
    return picks


def test_ada_xflip_and_rotate90_are_exact_pixel_moves() -> None:
    x = images(n=40)
    picks = _close_to_one_of(ada(initial_p=1.0, ops="xflip")(x, rng()), [x, x.flip(-1)])
    assert set(picks) == {0, 1}
    rotations = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    picks = _close_to_one_of(ada(initial_p=1.0, ops="rotate90")(x, rng()), rotations)
    assert set(picks) == {0, 1, 2, 3}


def test_ada_integer_translation_moves_whole_pixels() -> None:
    x = images(n=20, size=16)
    out = ada(initial_p=1.0, ops="xint")(x, rng())
    moved = 0
    for k in range(20):
        # Every output pixel is an input pixel (reflection fills the border).
        distance = (out[k].reshape(3, -1, 1) - x[k].reshape(3, 1, -1)).abs().amin(2)
        assert distance.max() < 1e-5, k
        # Read the shift off the interior: at most round(0.125 * 16) = 2 pixels.
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.allclose(out[k, :, 2:-2, 2:-2],
                                   x[k, :, 2 + dy:14 + dy, 2 + dx:14 + dx], atol=1e-5)]
        assert len(found) == 1, k
        moved += found[0] != (0, 0)
    assert moved > 10


def test_ada_color_ops_follow_their_definitions() -> None:
    x = images(n=30)
    mean = lambda t: t.mean(1, keepdim=True)  # noqa: E731 - luma, up to sqrt(3)
    out = ada(initial_p=1.0, ops="brightness")(x, rng())
    shift = (out - x).flatten(1)
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))
    assert 0.1 < shift[:, 0].std() < 0.3  # N(0, 0.2)
    out = ada(initial_p=1.0, ops="contrast")(x, rng())
    gain = (out / x).flatten(1)
    torch.testing.assert_close(gain, gain[:, :1].expand_as(gain))
    assert (gain > 0).all() and 0.15 < gain[:, 0].log2().std() < 0.9  # log2 N(0, 0.5)
    out = ada(initial_p=1.0, ops="hue")(x, rng())
    torch.testing.assert_close(mean(out), mean(x))  # luma kept
    torch.testing.assert_close((out - mean(out)).norm(dim=1), (x - mean(x)).norm(dim=1))
    out = ada(initial_p=1.0, ops="saturation")(x, rng())
    torch.testing.assert_close(mean(out), mean(x))
    chroma = ((out - mean(out)) / (x - mean(x))).flatten(1)
    torch.testing.assert_close(chroma, chroma[:, :1].expand_as(chroma), atol=1e-3, rtol=1e-3)
    out = ada(initial_p=1.0, ops="lumaflip")(x, rng())
    torch.testing.assert_close(out - mean(out), x - mean(x))  # chroma kept
    flipped = (mean(out) - mean(x)).flatten(1).abs().amax(1) > 1e-5
    torch.testing.assert_close(mean(out)[flipped], -mean(x)[flipped])
    assert 0 < flipped.sum() < 30


def test_ada_greyscale_gets_brightness_and_contrast_only() -> None:
    x = images(channels=1)
    assert torch.equal(ada(initial_p=1.0, ops="lumaflip,hue,saturation")(x, rng()), x)
    g = rng(3)
    expected_g = clone(g)
    out = ada(initial_p=1.0, ops="brightness,contrast")(x, g)
    b = torch.randn(6, generator=expected_g) * 0.2
    torch.rand(6, generator=expected_g)  # brightness's mask: p = 1 takes every image
    c = torch.exp2(torch.randn(6, generator=expected_g) * 0.5)
    torch.testing.assert_close(out, (x + b.view(-1, 1, 1, 1)) * c.view(-1, 1, 1, 1))


def test_ada_geometry_keeps_the_range_roughly() -> None:
    x = images(n=16, size=32)
    out = ada(initial_p=1.0, ops="xflip,rotate90,xint,scale,rotate,aniso,xfrac")(x, rng())
    # Bilinear resampling with reflection: never outside the input's range.
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5


# -- ADA: the adaptation and its state --------------------------------------------------------


def test_ada_p_rises_by_the_images_seen_when_d_overfits() -> None:
    a = ada(interval=4, speed_kimg=500.0)
    logits = torch.full((64,), 2.0)
    p0 = a.p.clone()
    for _ in range(3):
        a.observe_real_logits(logits)
        assert torch.equal(a.p, p0)  # no adjustment before the interval
    a.observe_real_logits(logits)
    step = torch.tensor(256.0) / (500.0 * 1000.0)  # batch * interval / (kimg * 1000)
    assert torch.equal(a.p, p0 + step)
    assert math.isclose(float(a.p), 256 / 500_000, rel_tol=1e-6)
    assert float(a.figures()["aug/rt"]) == 1.0 and torch.equal(a.figures()["aug/p"], a.p)
    for _ in range(4):
        a.observe_real_logits(logits)
    assert torch.equal(a.p, p0 + step + step)
    assert a.p.dtype == torch.float32 and a.p.shape == ()


def test_ada_p_falls_when_d_does_not_overfit_and_is_clamped() -> None:
    a = ada(interval=2, speed_kimg=0.1, initial_p=0.5)  # 100 images from 0 to 1
    for _ in range(2):
        a.observe_real_logits(torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0]))  # r_t = 0.2
    assert torch.equal(a.p, torch.tensor(0.5) - torch.tensor(10.0) / 100.0)
    assert math.isclose(float(a.figures()["aug/rt"]), 0.2, rel_tol=1e-6)
    for _ in range(20):
        a.observe_real_logits(-torch.ones(50))
    assert float(a.p) == 0.0
    # At the target exactly p stays; above it p rises to max_p and no further.
    b = ada(interval=1, speed_kimg=0.1, max_p=0.3, target=0.6, initial_p=0.2)
    b.observe_real_logits(torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0]))  # r_t = 0.6
    assert float(b.p) == pytest.approx(0.2)
    for _ in range(10):
        b.observe_real_logits(torch.ones(50))
    assert float(b.p) == pytest.approx(0.3)


def test_ada_counts_signs_exactly() -> None:
    a = ada(interval=3)
    a.observe_real_logits(torch.tensor([0.5, -0.5, 0.0, 3.0]).to(torch.bfloat16))
    a.observe_real_logits(torch.tensor([[1.0], [2.0]]))
    state = a.component_state()
    assert int(state.tensors["sign_sum"]) == 3 and int(state.tensors["count"]) == 6
    assert state.values == {"calls": 2}


def test_ada_state_round_trip_resumes_exactly() -> None:
    logits = [torch.randn(16, generator=rng(s)) + 0.8 for s in range(30)]
    x = images(n=4, size=8)

    def run(a: AdaptiveAugment, start: int, stop: int, g: torch.Generator) -> list:
        seen = []
        for i in range(start, stop):
            a.observe_real_logits(logits[i])
            seen.append((a.p.clone(), a(x, g)))
        return seen

    params = {"interval": 3, "speed_kimg": 0.05, "initial_p": 0.1}
    whole = ada(**params)
    g = rng(1)
    uninterrupted = run(whole, 0, 30, g)

    first = ada(**params)
    g = rng(1)
    before = run(first, 0, 13, g)  # stops mid-interval
    state = first.component_state()
    assert set(state.tensors) == {"p", "sign_sum", "count", "rt"}
    assert state.values == {"calls": 13 % 3}
    saved = ComponentState({k: v.clone() for k, v in state.tensors.items()},
                           dict(state.values))
    resumed = ada(**params)
    resumed.load_component_state(saved)
    back = resumed.component_state()
    for name, tensor in state.tensors.items():
        assert torch.equal(back.tensors[name], tensor) and back.tensors[name].dtype == tensor.dtype
    assert back.values == state.values
    after = run(resumed, 13, 30, g)
    for (p1, out1), (p2, out2) in zip(before + after, uninterrupted, strict=True):
        assert torch.equal(p1, p2) and torch.equal(out1, out2)
    assert float(uninterrupted[-1][0]) != 0.1  # p did move


def test_ada_state_is_checked_on_load() -> None:
    a = ada()
    good = a.component_state()
    with pytest.raises(KeyError):
        a.load_component_state(ComponentState({"p": torch.tensor(0.5)}, {}))
    with pytest.raises(ValueError):
        a.load_component_state(ComponentState({**good.tensors, "p": torch.zeros(3)}, {}))
    with pytest.raises(ValueError):
        a.load_component_state(ComponentState(good.tensors, {"calls": -1}))
    # Float64 or shaped (1,) tensors from elsewhere come back as 0-dim float32 / int64.
    a.load_component_state(ComponentState(
        {"p": torch.tensor([0.25], dtype=torch.float64), "sign_sum": torch.tensor(3),
         "count": torch.tensor(4.0), "rt": torch.tensor(0.5)}, {"calls": 1}))
    assert a.p.dtype == torch.float32 and a.p.shape == () and float(a.p) == 0.25
    assert a.component_state().tensors["count"].dtype == torch.int64


def test_ada_figures_are_tensors() -> None:
    a = ada(initial_p=0.25)
    figures = a.figures()
    assert float(figures["aug/p"]) == 0.25 and float(figures["aug/rt"]) == 0.0


def test_ada_sums_the_signs_over_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun the adjustment all-reduces the accumulators: simulated here by two
    ranks that saw the same logits, so the images seen, and the step, double."""
    import torch.distributed as dist

    reduced = []

    def all_reduce(tensor: torch.Tensor) -> None:
        reduced.append(tensor.clone())
        tensor.mul_(2)

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    a = ada(interval=2, speed_kimg=1.0)
    for _ in range(2):
        a.observe_real_logits(torch.tensor([1.0, 1.0, 1.0, -1.0]))  # r_t = 0.5 < 0.6
    assert len(reduced) == 1 and reduced[0].tolist() == [4, 8]
    assert float(a.p) == 0.0  # fell (clamped)
    a.load_component_state(ComponentState({**a.component_state().tensors,
                                           "p": torch.tensor(0.5)}, {"calls": 0}))
    for _ in range(2):
        a.observe_real_logits(torch.ones(4))
    assert torch.equal(a.p, torch.tensor(0.5) + torch.tensor(16.0) / 1000.0)
    assert float(a.figures()["aug/rt"]) == 1.0


def test_grid_sample_reflect_is_grid_sample_and_twice_differentiable() -> None:
    """ADA's warp goes through :func:`grid_sample_reflect`: torch 2.11 has no derivative of
    ``grid_sampler_2d_backward``, so R1 with ADA failed on an H100. Its forward pass,
    gradient and second derivative are torch's ``grid_sample``'s (newer CPU builds have a
    second derivative to compare with), and gradgradcheck passes in float64."""
    from torch.autograd import gradcheck, gradgradcheck

    from ganforge.builtins.augmentations import grid_sample_reflect

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    theta = torch.randn(2, 2, 3, dtype=torch.float64, generator=gen) * 0.5
    grid = torch.nn.functional.affine_grid(theta, [2, 3, 6, 5], align_corners=False)

    def torch_grid_sample(images: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.grid_sample(images, g, mode="bilinear",
                                               padding_mode="reflection",
                                               align_corners=False)

    def r1_gradient(sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                    ) -> torch.Tensor:
        out = sample(x, grid)
        (grad,) = torch.autograd.grad((out ** 2).sum() * 0.3 + out.sum(), x, create_graph=True)
        return torch.autograd.grad((grad ** 2).sum(), x)[0]

    assert torch.equal(grid_sample_reflect(x, grid), torch_grid_sample(x, grid))
    assert torch.allclose(r1_gradient(grid_sample_reflect), r1_gradient(torch_grid_sample),
                          rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda images: grid_sample_reflect(images, grid), (x,))
    assert gradgradcheck(lambda images: grid_sample_reflect(images, grid), (x,))
