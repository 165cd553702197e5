"""ADA, the adaptive discriminator augmentation of StyleGAN2-ADA (Karras et al. 2020):
the ``ada`` augment (registered in ``builtins/__init__.py``, importable from
``augmentations.py`` as before)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import torch
import torch.distributed as dist

from ..core.interfaces import Augment, ComponentState
from ..core.params import at_most, param
from .augmentations_ops import (
    _matmul,
    _matrix,
    _no_autocast,
    _normal,
    _OpList,
    _rotate2d,
    _rotate3d_luma,
    _scale2d,
    _scale3d,
    _translate2d,
    _translate3d,
    _uniform,
    grid_sample_reflect,
    sampling_grid,
    split_ops,
)

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
