"""Built-in augmentations of the images D sees (the ``augment`` kind).

``none`` leaves the images alone. ``diffaugment`` is DiffAugment (Zhao et al. 2020) and
``ada`` the adaptive discriminator augmentation of StyleGAN2-ADA (Karras et al. 2020).
Both draw every random number from the step's generator (so resume is exact), run on the
images' device with no host synchronisation, keep the images' dtype, and are
differentiable with respect to the images, so G learns through them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..core.interfaces import Augment, ComponentState
from ..core.params import at_most, param


class NoAugment(Augment):
    """No augmentation (the default): D sees the images as they are."""

    changes_images = False

    @attrs.frozen
    class Params:
        """No tunable values."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images


# -- a grid_sample whose backward is differentiable -----------------------------------------

_BILINEAR, _REFLECTION = 0, 2  # aten's enums for grid_sample's mode and padding_mode


class _GridSampleReflect(torch.autograd.Function):
    """Bilinear ``grid_sample`` with reflection padding (``align_corners=False``) of images
    by a grid that needs no gradient, differentiable twice with respect to the images.

    torch 2.11 has no derivative of ``grid_sampler_2d_backward`` (on CUDA and on the CPU;
    the CPU build of 2.14 has one), so R1 and the gradient penalty (double backward
    through D and the augmentation) failed with ADA on an H100. The image gradient of
    ``grid_sample`` is linear in the incoming gradient and does not depend on the images,
    so its own derivative is ``grid_sample`` again: the same fix as StyleGAN2-ADA's
    ``grid_sample_gradfix``."""

    @staticmethod
    def forward(ctx: Any, images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(images, grid)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        images, grid = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        return _GridSampleReflectBackward.apply(grad_output, images, grid), None


class _GridSampleReflectBackward(torch.autograd.Function):
    """The image gradient of :class:`_GridSampleReflect`, itself differentiable."""

    @staticmethod
    def forward(ctx: Any, grad_output: torch.Tensor, images: torch.Tensor,
                grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grid)
        grad_images, _ = torch.ops.aten.grid_sampler_2d_backward(
            grad_output, images, grid, _BILINEAR, _REFLECTION, False, [True, False])
        return grad_images

    @staticmethod
    def backward(ctx: Any, grad2: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (grid,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return _GridSampleReflect.apply(grad2, grid), None, None


def grid_sample_reflect(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
    align_corners=False)``, differentiable any number of times with respect to ``images``
    on every device (``grid`` gets no gradient)."""
    return _GridSampleReflect.apply(images, grid.detach())


# -- helpers --------------------------------------------------------------------------------


def split_ops(value: str) -> list[str]:
    """The names of a comma-separated op list, stripped, in the order given."""
    return [name.strip() for name in value.split(",")]


@attrs.frozen(repr=False)
class _OpList:
    """Validator of a comma-separated list of op names, each one of ``known``, none
    repeated, at least one."""

    known: tuple[str, ...]

    def __call__(self, _instance: object, attribute: attrs.Attribute, value: str) -> None:
        names = split_ops(value)
        if names == [""]:
            raise ValueError(f"'{attribute.name}' names no op (known: {', '.join(self.known)}; "
                             "for no augmentation use 'none')")
        unknown = [n for n in names if n not in self.known]
        if unknown:
            raise ValueError(f"'{attribute.name}' has unknown op(s) "
                             f"{', '.join(repr(n) for n in unknown)}; known: "
                             f"{', '.join(self.known)}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"'{attribute.name}' names {', '.join(map(repr, repeated))} twice")

    def __repr__(self) -> str:
        return f"<ops from {', '.join(self.known)}>"


def _uniform(n: int, generator: torch.Generator, device: torch.device,
             *shape: int) -> torch.Tensor:
    """``n`` (times ``shape``) float32 draws from U[0, 1)."""
    return torch.rand(n, *shape, generator=generator, device=device)


def _normal(n: int, generator: torch.Generator, device: torch.device,
            *shape: int) -> torch.Tensor:
    """``n`` (times ``shape``) float32 draws from N(0, 1)."""
    return torch.randn(n, *shape, generator=generator, device=device)


@contextlib.contextmanager
def _no_autocast(device: torch.device) -> Iterator[None]:
    """Autocast off: the geometry and colour maths stay in float32 under a bf16 step."""
    if torch.amp.is_autocast_available(device.type):
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        yield


# -- DiffAugment ----------------------------------------------------------------------------

DIFFAUGMENT_OPS: tuple[str, ...] = ("color", "translation", "cutout")


class DiffAugment(Augment):
    """DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
    Training"): the same random, differentiable transforms on every image D sees, real and
    fake, applied to every sample (no probability).

    A port of the authors' ``DiffAugment_pytorch.py``, op for op, for images in [-1, 1]:

    - ``color``: brightness ``x + U(-0.5, 0.5)``, then saturation ``(x - m_c) U(0, 2) +
      m_c`` around each pixel's channel mean ``m_c``, then contrast ``(x - m) U(0.5, 1.5)
      + m`` around the image's mean ``m`` (one draw per image each);
    - ``translation``: an integer shift of up to ``round(translation_ratio * size)``
      pixels along each axis, zero padded;
    - ``cutout``: a ``round(cutout_ratio * size)`` square of zeros centred at a random
      pixel (cut off at the border).

    The ops run in the order the policy names them. The random numbers are drawn in
    float32 (the reference draws them in the images' dtype).
    """

    @attrs.frozen
    class Params:
        """DiffAugment's policy and the sizes of its translation and cutout."""

        policy: str = param("color,translation,cutout",
                            "comma-separated ops, applied in this order: color, "
                            "translation, cutout", validator=_OpList(DIFFAUGMENT_OPS))
        translation_ratio: float = param(
            0.125, "largest shift, as a fraction of the image size",
            validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
        cutout_ratio: float = param(
            0.5, "side of the cutout square, as a fraction of the image size",
            validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.ops: tuple[str, ...] = tuple(split_ops(params.policy))

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images
        for op in self.ops:
            if op == "color":
                x = self.color(x, generator)
            elif op == "translation":
                x = self.translation(x, generator)
            else:
                x = self.cutout(x, generator)
        return x

    @staticmethod
    def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random brightness, saturation and contrast (three draws per image, in that
        order)."""
        n, device = x.shape[0], x.device
        x = x + (_uniform(n, generator, device, 1, 1, 1) - 0.5).to(x.dtype)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(n, generator, device, 1, 1, 1) * 2).to(x.dtype) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (_uniform(n, generator, device, 1, 1, 1) + 0.5).to(x.dtype) + mean

    def translation(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Shift each image by whole pixels (rows first, then columns, drawn uniformly in
        ``[-shift, shift]``), filling with zeros."""
        n, _, h, w = x.shape
        device = x.device
        ratio = self.params.translation_ratio
        shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
        dy = torch.randint(-shift_h, shift_h + 1, (n, 1, 1), generator=generator, device=device)
        dx = torch.randint(-shift_w, shift_w + 1, (n, 1, 1), generator=generator, device=device)
        # Output pixel (i, j) reads input (i + dy, j + dx); out of range reads the zero pad.
        rows = (torch.arange(h, device=device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
        batch = torch.arange(n, device=device).view(n, 1, 1)
        padded = F.pad(x, [1, 1, 1, 1])
        return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()

    def cutout(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Zero a square of ``cutout_ratio`` times the size in each image, centred at a
        random pixel and cut off where it leaves the image."""
        n, _, h, w = x.shape
        device = x.device
        ratio = self.params.cutout_ratio
        size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
        # The reference's centre range, [0, size] for an even square and [0, size) for odd.
        cy = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=generator,
                           device=device)
        cx = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=generator,
                           device=device)
        top, left = cy - size_h // 2, cx - size_w // 2
        rows = torch.arange(h, device=device).view(1, h, 1)
        cols = torch.arange(w, device=device).view(1, 1, w)
        inside = ((rows >= top) & (rows < top + size_h)) & ((cols >= left) & (cols < left + size_w))
        return x * (~inside).unsqueeze(1).to(x.dtype)


# -- ADA ------------------------------------------------------------------------------------

GEOMETRIC_OPS: tuple[str, ...] = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso",
                                  "xfrac")
COLOR_OPS: tuple[str, ...] = ("brightness", "contrast", "lumaflip", "hue", "saturation")
ADA_OPS: tuple[str, ...] = GEOMETRIC_OPS + COLOR_OPS

# The reference pipeline's strengths (stylegan2-ada-pytorch, training/augment.py).
_XINT_MAX = 0.125        # integer translation, fraction of the size (uniform)
_SCALE_STD = 0.2         # isotropic scaling, log2 std
_ROTATE_MAX = 1.0        # arbitrary rotation, 1 = full circle
_ANISO_STD = 0.2         # anisotropic scaling, log2 std
_XFRAC_STD = 0.125       # fractional translation, std as a fraction of the size
_BRIGHTNESS_STD = 0.2    # brightness, std
_CONTRAST_STD = 0.5      # contrast, log2 std
_HUE_MAX = 1.0           # hue rotation, 1 = full circle
_SATURATION_STD = 1.0    # saturation, log2 std


def _matrix(rows: Sequence[Sequence[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """A batch of matrices ``(N, R, C)`` from rows of per-sample ``(N,)`` tensors and
    constants."""
    elems = [e if isinstance(e, torch.Tensor) else torch.full_like(like, float(e))
             for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(like.shape[0], len(rows), len(rows[0]))


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched product of small matrices, elementwise in float32: exact to float32 whatever
    the TF32 and autocast settings (which would round a ``@`` of the transforms)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(dim=-2)


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def _translate3d(t: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t)


def _scale3d(s: torch.Tensor) -> torch.Tensor:
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s)


def _rotate3d_luma(theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta`` about the luma axis ``(1, 1, 1) / sqrt(3)`` (a hue rotation)."""
    v = 1.0 / math.sqrt(3.0)
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    a, b = v * v * cc + c, v * v * cc
    return _matrix([[a, b - v * s, b + v * s, 0],
                    [b + v * s, a, b - v * s, 0],
                    [b - v * s, b + v * s, a, 0],
                    [0, 0, 0, 1]], theta)


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, C, height, width), align_corners=False)``, computed
    elementwise in float32 (``affine_grid`` is a matrix product, which TF32 or autocast
    would round to a fraction of a pixel)."""
    device = theta.device
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    xs, ys = xs.view(1, 1, width), ys.view(1, height, 1)
    t = theta.view(-1, 6, 1, 1)
    gx = t[:, 0] * xs + t[:, 1] * ys + t[:, 2]
    gy = t[:, 3] * xs + t[:, 4] * ys + t[:, 5]
    return torch.stack([gx, gy], dim=-1)


class AdaptiveAugment(Augment):
    """Adaptive discriminator augmentation, ADA (Karras et al. 2020, "Training Generative
    Adversarial Networks with Limited Data"), with the 'bgc' pipeline of StyleGAN2-ADA:
    every op of ``ops`` is applied to each image independently with probability ``p``,
    and ``p`` follows D's overfitting.

    **The pipeline** (after the reference's ``AugmentPipe``, strengths as there): the
    geometric ops (``xflip``, ``rotate90``, integer translation ``xint`` uniform up to
    0.125 of the size, isotropic ``scale`` lognormal with log2 std 0.2, arbitrary
    ``rotate`` applied before and after the anisotropic scaling with probability ``1 -
    sqrt(1 - p)`` each, anisotropic scaling ``aniso`` log2 std 0.2, fractional translation
    ``xfrac`` std 0.125 of the size) compose one affine map per image, executed with one
    bilinear ``grid_sample`` with reflection padding. The colour ops (``brightness`` std 0.2,
    ``contrast`` log2 std 0.5, ``lumaflip``, ``hue`` rotation, ``saturation`` log2 std 1)
    compose one 4x4 colour matrix per image, applied to RGB images; images of another
    channel count (greyscale) get brightness and contrast only. An image no op of a stage
    touched comes out of that stage unchanged, so ``p = 0`` is exactly the identity.
    Differences from the reference: its anti-aliasing (a 2x upsampling and downsampling
    with a wavelet filter around the resampling, ``upfirdn2d``) is left out, its explicit
    reflect padding is replaced by ``grid_sample``'s reflection, and greyscale images get
    no luma flip.

    **The adaptation** (the reference's ``ada_target``, ``ada_interval``, ``ada_kimg``):
    :meth:`observe_real_logits` accumulates the signs of D's logits on the real batches on
    the device; every ``interval`` D updates, ``r_t = E[sign(D(x))]`` over them moves ``p``
    by ``sign(r_t - target) * images / (speed_kimg * 1000)``, clamped to ``[0, max_p]``.
    ``p`` and the accumulators are component state (resume is exact) and ``p`` and the last
    ``r_t`` are logged as ``aug/p`` and ``aug/rt``. Under ``torchrun`` each rank observes its
    own logits and the adjustment sums the signs over the ranks (one all-reduce every
    ``interval`` D updates), so every rank keeps the same ``p``.
    """

    @attrs.frozen
    class Params:
        """ADA's target, adjustment speed and ops."""

        target: float = param(0.6, "target of r_t = E[sign(D(real))]; p rises above it",
                              validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
        interval: int = param(4, "D updates between adjustments of p",
                              validator=[attrs.validators.gt(0), at_most(10**6)])
        speed_kimg: float = param(500.0, "thousands of real images for p to go from 0 to 1",
                                  validator=[attrs.validators.gt(0.0), at_most(1e9)])
        initial_p: float = param(0.0, "p at the start of training",
                                 validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
        max_p: float = param(1.0, "ceiling of p",
                             validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
        ops: str = param(",".join(ADA_OPS),
                         "comma-separated ops applied with probability p (default: the "
                         "'bgc' set); they run in the pipeline's own order",
                         validator=_OpList(ADA_OPS))

        def __attrs_post_init__(self) -> None:
            if self.initial_p > self.max_p:
                raise ValueError(f"'initial_p' ({self.initial_p}) must be <= 'max_p' "
                                 f"({self.max_p})")

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.ops: frozenset[str] = frozenset(split_ops(params.ops))
        # On the CPU until the first batch says which device the run uses.
        self._p = torch.tensor(float(params.initial_p), dtype=torch.float32)
        self._sign_sum = torch.zeros((), dtype=torch.int64)
        self._count = torch.zeros((), dtype=torch.int64)
        self._rt = torch.zeros((), dtype=torch.float32)
        self._calls = 0  # observe_real_logits calls since the last adjustment

    # -- state ------------------------------------------------------------------------------

    @property
    def p(self) -> torch.Tensor:
        """The current augmentation probability (a 0-dim float32 tensor)."""
        return self._p

    def _to(self, device: torch.device) -> None:
        """Move the state to ``device`` (once: the device of the run's first batch)."""
        if self._p.device != device:
            # non_blocking: a copy the device stream orders, not a host synchronisation.
            self._p, self._sign_sum, self._count, self._rt = (
                t.to(device, non_blocking=True)
                for t in (self._p, self._sign_sum, self._count, self._rt))

    def component_state(self) -> ComponentState:
        return ComponentState(
            tensors={"p": self._p.detach().clone(), "sign_sum": self._sign_sum.clone(),
                     "count": self._count.clone(), "rt": self._rt.clone()},
            values={"calls": self._calls})

    def load_component_state(self, state: ComponentState) -> None:
        def scalar(name: str, dtype: torch.dtype) -> torch.Tensor:
            value = state.tensors[name]
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(f"{name!r} must be a one-element tensor")
            return value.detach().to(device=self._p.device, dtype=dtype).reshape(()).clone()

        calls = state.values.get("calls", 0)
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise ValueError(f"'calls' must be a non-negative integer: {calls!r}")
        p = scalar("p", torch.float32)
        sign_sum, count = scalar("sign_sum", torch.int64), scalar("count", torch.int64)
        rt = scalar("rt", torch.float32) if "rt" in state.tensors else torch.zeros_like(p)
        self._p, self._sign_sum, self._count, self._rt = p, sign_sum, count, rt
        self._calls = calls

    def figures(self) -> Mapping[str, torch.Tensor]:
        return {"aug/p": self._p, "aug/rt": self._rt}

    # -- adaptation -------------------------------------------------------------------------

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        logits = logits.detach()
        self._to(logits.device)
        # sign() summed as integers, exactly; a NaN logit counts as 0.
        signs = (logits > 0).sum() - (logits < 0).sum()
        self._sign_sum = self._sign_sum + signs
        self._count = self._count + logits.numel()
        self._calls += 1
        if self._calls >= self.params.interval:
            self._adjust()

    def _adjust(self) -> None:
        """Move p by one step towards the target and restart the accumulators."""
        p = self.params
        sign_sum, count_i = self._sign_sum, self._count
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Every rank observed its own slice of the batch: sum the signs over ranks (as
            # the reference's training_stats does), so all ranks move p alike.
            both = torch.stack([sign_sum, count_i])
            dist.all_reduce(both)
            sign_sum, count_i = both[0], both[1]
        count = count_i.to(torch.float32)
        self._rt = sign_sum.to(torch.float32) / count.clamp(min=1.0)
        step = torch.sign(self._rt - p.target) * count / (p.speed_kimg * 1000.0)
        self._p = (self._p + step).clamp(0.0, p.max_p)
        self._sign_sum = torch.zeros_like(self._sign_sum)
        self._count = torch.zeros_like(self._count)
        self._calls = 0

    # -- the pipeline -----------------------------------------------------------------------

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self._to(images.device)
        with _no_autocast(images.device):
            x = images.to(torch.float32)
            x = self._geometric(x, generator)
            x = self._color(x, generator)
        return x.to(images.dtype)

    def _mask(self, generator: torch.Generator, device: torch.device, p: torch.Tensor,
              *shape: int, n: int) -> torch.Tensor:
        """Which images an op touches: ``rand < p``, per image (on the device, no sync)."""
        return _uniform(n, generator, device, *shape) < p

    def _geometric(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        ops = self.ops & set(GEOMETRIC_OPS)
        if not ops:
            return x
        n, _, h, w = x.shape
        device, p = x.device, self._p
        zeros = torch.zeros(n, device=device)
        ones = torch.ones(n, device=device)
        touched = torch.zeros(n, dtype=torch.bool, device=device)
        # The inverse map, output pixel -> input pixel, in pixels about the image centre.
        g_inv = torch.eye(3, device=device).expand(n, 3, 3)

        def mask(*shape: int, prob: torch.Tensor = p) -> torch.Tensor:
            nonlocal touched
            m = self._mask(generator, device, prob, *shape, n=n)
            touched = touched | m.view(n, -1)[:, 0]
            return m

        if "xflip" in ops:
            i = torch.floor(_uniform(n, generator, device) * 2)
            i = torch.where(mask(), i, zeros)
            g_inv = _matmul(g_inv, _scale2d(1 - 2 * i, ones))
        if "rotate90" in ops:
            i = torch.floor(_uniform(n, generator, device) * 4)
            i = torch.where(mask(), i, zeros)
            g_inv = _matmul(g_inv, _rotate2d(math.pi / 2 * i))  # inverse of -pi/2 i
        if "xint" in ops:
            t = (_uniform(n, generator, device, 2) * 2 - 1) * _XINT_MAX
            t = torch.where(mask(1), t, torch.zeros_like(t))
            g_inv = _matmul(g_inv, _translate2d(-torch.round(t[:, 0] * w),
                                                -torch.round(t[:, 1] * h)))
        if "scale" in ops:
            s = torch.exp2(_normal(n, generator, device) * _SCALE_STD)
            s = torch.where(mask(), s, ones)
            g_inv = _matmul(g_inv, _scale2d(1 / s, 1 / s))
        # Rotation before and after the anisotropic scaling: P(either) = p.
        p_rot = 1 - torch.sqrt((1 - p).clamp(0, 1))
        if "rotate" in ops:
            theta = (_uniform(n, generator, device) * 2 - 1) * math.pi * _ROTATE_MAX
            theta = torch.where(mask(prob=p_rot), theta, zeros)
            g_inv = _matmul(g_inv, _rotate2d(theta))  # inverse of a rotation by -theta
        if "aniso" in ops:
            s = torch.exp2(_normal(n, generator, device) * _ANISO_STD)
            s = torch.where(mask(), s, ones)
            g_inv = _matmul(g_inv, _scale2d(1 / s, s))
        if "rotate" in ops:
            theta = (_uniform(n, generator, device) * 2 - 1) * math.pi * _ROTATE_MAX
            theta = torch.where(mask(prob=p_rot), theta, zeros)
            g_inv = _matmul(g_inv, _rotate2d(theta))
        if "xfrac" in ops:
            t = _normal(n, generator, device, 2) * _XFRAC_STD
            t = torch.where(mask(1), t, torch.zeros_like(t))
            g_inv = _matmul(g_inv, _translate2d(-t[:, 0] * w, -t[:, 1] * h))

        # Pixels about the centre -> affine_grid's normalized coordinates (align_corners
        # False: pixel centres at (2 i + 1) / size - 1 = (2 / size) (i - (size - 1) / 2)):
        # theta = S g_inv S^-1 with S = diag(2 / w, 2 / h, 1), i.e. theta_ij = g_ij S_i / S_j.
        rescale = _matrix([[1, h / w, 2 / w], [w / h, 1, 2 / h], [w / 2, h / 2, 1]], zeros)
        theta = g_inv * rescale
        grid = sampling_grid(theta[:, :2, :], h, w)
        warped = grid_sample_reflect(x.float(), grid.float())
        return torch.where(touched.view(n, 1, 1, 1), warped, x)

    def _color(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels, h, w = x.shape
        rgb = channels == 3
        ops = self.ops & ({"brightness", "contrast"} | (set(COLOR_OPS) if rgb else set()))
        if not ops:
            return x
        device, p = x.device, self._p
        zeros = torch.zeros(n, device=device)
        ones = torch.ones(n, device=device)
        touched = torch.zeros(n, dtype=torch.bool, device=device)
        eye = torch.eye(4, device=device).expand(n, 4, 4)
        # Colour in -> colour out, homogeneous RGB.
        c_mat = eye

        def mask(*shape: int) -> torch.Tensor:
            nonlocal touched
            m = self._mask(generator, device, p, *shape, n=n)
            touched = touched | m.view(n, -1)[:, 0]
            return m

        if "brightness" in ops:
            b = _normal(n, generator, device) * _BRIGHTNESS_STD
            b = torch.where(mask(), b, zeros)
            c_mat = _matmul(_translate3d(b), c_mat)
        if "contrast" in ops:
            c = torch.exp2(_normal(n, generator, device) * _CONTRAST_STD)
            c = torch.where(mask(), c, ones)
            c_mat = _matmul(_scale3d(c), c_mat)
        # v v^T of the luma axis v = (1, 1, 1, 0) / sqrt(3) (no host-to-device copy).
        luma = (torch.arange(4, device=device) < 3).to(torch.float32) / math.sqrt(3.0)
        luma_outer = torch.outer(luma, luma)
        if "lumaflip" in ops:
            i = torch.floor(_uniform(n, generator, device, 1, 1) * 2)
            i = torch.where(mask(1, 1), i, torch.zeros_like(i))
            c_mat = _matmul(eye - 2 * luma_outer * i, c_mat)  # Householder reflection
        if "hue" in ops:
            theta = (_uniform(n, generator, device) * 2 - 1) * math.pi * _HUE_MAX
            theta = torch.where(mask(), theta, zeros)
            c_mat = _matmul(_rotate3d_luma(theta), c_mat)
        if "saturation" in ops:
            s = torch.exp2(_normal(n, generator, device, 1, 1) * _SATURATION_STD)
            s = torch.where(mask(1, 1), s, torch.ones_like(s))
            c_mat = _matmul(luma_outer + (torch.eye(4, device=device) - luma_outer) * s, c_mat)

        flat = x.reshape(n, channels, h * w)
        if rgb:
            # out_c = sum_k C[c, k] x_k + C[c, 3], elementwise (no TF32/autocast rounding).
            out = (c_mat[:, :3, :3].unsqueeze(-1) * flat.unsqueeze(1)).sum(dim=2)
            out = out + c_mat[:, :3, 3:]
        else:
            # Brightness then contrast only: c (x + b), the reference's greyscale formula.
            gain = c_mat[:, 0, 0].view(n, 1, 1)
            out = flat * gain + c_mat[:, 0, 3].view(n, 1, 1)
        return torch.where(touched.view(n, 1, 1, 1), out.reshape(n, channels, h, w), x)
