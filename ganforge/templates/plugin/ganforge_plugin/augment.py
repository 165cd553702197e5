"""A differentiable brightness and contrast jitter, applied to every image D sees."""

from __future__ import annotations

import attrs
import torch
from ganforge import Augment, param


class BrightnessContrast(Augment):
    """Per image, add a brightness shift in ``[-brightness, brightness]`` and scale the
    contrast around the image's mean by a factor in ``[1 - contrast, 1 + contrast]``, as
    DiffAugment's colour ops do (Zhao et al. 2020). Differentiable with respect to the
    images, so G learns through it; drawn from the step's generator only (exact resume)."""

    @attrs.frozen
    class Params:
        """Strength of each jitter."""

        brightness: float = param(0.25, "largest brightness shift, in [0, 1]",
                                  validator=[attrs.validators.ge(0.0),
                                             attrs.validators.le(1.0)])
        contrast: float = param(0.25, "largest relative contrast change, in [0, 1)",
                                validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        n = images.shape[0]
        # Drawn where the generator lives (the training device in a run), then moved to the
        # images: same shape, dtype and device out as in.
        draws = torch.rand(2, n, 1, 1, 1, generator=generator, device=generator.device)
        draws = draws.to(images.device)
        shift = ((draws[0] * 2 - 1) * p.brightness).to(images.dtype)
        scale = (1 + (draws[1] * 2 - 1) * p.contrast).to(images.dtype)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - mean) * scale + mean + shift
