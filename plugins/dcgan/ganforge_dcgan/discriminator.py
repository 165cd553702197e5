"""The DCGAN discriminator: strided convolutions down to 4x4, then one logit per image
(and, with ``aux_classifier``, ACGAN's class logits beside it)."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from ganforge import ImageSpec, param
from ganforge.core.errors import UsageError
from ganforge.core.interfaces import Requirement, requires
from ganforge.nn.conditioning import class_weights, refuse_labels
from ganforge.nn.layers import feature_norm, has_feature_norm, norm_validator, spectral_all
from ganforge.nn.network import NetworkDiscriminator

from .layers import (
    SIZES,
    image_size_validator,
    init_weights,
    num_resolution_steps,
    resolve_norm,
)

#: The loss an auxiliary-classifier discriminator needs (it reads the class logits).
AUX_LOSS = "aux_classifier"


class DCGANDiscriminator(NetworkDiscriminator):
    """DCGAN's D: LeakyReLU in every block, BatchNorm except on the input block.

    Returns raw logits of shape ``(N,)`` (with ``aux_classifier``: ``(N, 1 + classes)``);
    the sigmoid belongs to the loss.

    **Conditional** (``conditional = true``): called as ``D(images, y)``, the label is
    concatenated to the image as ``classes`` constant feature maps (the one-hot vector
    broadcast over every pixel) before the first convolution, whose input channels become
    ``channels + classes``; the rest of the network is unchanged. This is how the paper's
    authors conditioned their MNIST model (Radford et al.'s dcgan_code,
    ``mnist/train_cond_dcgan.py``: ``X = conv_cond_concat(X, yb)`` in ``discrim``, with
    ``conv_cond_concat`` from ``lib/ops.py``). They also concatenated the label again
    before every later layer; this discriminator does it at the input only. The extra input
    weights are drawn from N(0, 0.02) like the rest, and at ``conditional = false`` the
    network (its modules, parameters and state_dict) is exactly the unconditional one.

    **Normalization** (``norm``): ``"batch"`` is the paper's network, BatchNorm after every
    hidden layer (not the input layer, not the logit layer). The others swap it for a sweep
    of normalizations (``"discriminator.norm" = ["batch", "spectral", "layer", "none"]``):

    - ``"spectral"``: spectral normalization (Miyato et al., 2018) of every convolution, the
      input and logit layers included, applied after the paper's initialisation (so the
      initial weights are the same); no BatchNorm, and the hidden layers get a bias;
    - ``"layer"``: layer normalization (``GroupNorm`` with one group, affine weight drawn
      from N(1, 0.02) like BatchNorm's) where BatchNorm is: as many parameters as
      ``"batch"``, and nothing that mixes the samples of a batch (as a per-sample gradient
      penalty wants);
    - ``"none"``: no normalization, the hidden layers get a bias.

    ``batchnorm = false`` is the old spelling of ``norm = "none"``; it goes with the default
    ``norm = "batch"`` only (beside another ``norm`` it is refused). ``effective_norm``
    tells which normalization a network was built with. ``ganforge check`` reports every
    ``norm`` but ``"batch"`` as a deviation from the paper's BatchNorm guideline.

    **Auxiliary classifier** (``aux_classifier = true``, ACGAN: Odena et al., 2017): the
    logit layer outputs ``1 + classes`` channels instead of one (``classes`` from the
    dataset, which must have some), and ``D(images)`` returns shape ``(N, 1 + classes)``:
    column 0 the adversarial logit, columns ``1:`` the class logits. The recipe must use
    ``loss = "aux_classifier"``, which reads them. ACGAN's D is unconditional (it is not
    told the label, it predicts it), but the head combines with ``conditional = true`` too.
    At ``aux_classifier = false`` the network is exactly the one-logit one.
    """

    @attrs.frozen
    class Params:
        """Shape and ablation switches of the discriminator."""

        width: int = param(64, "channels of the first block (the paper's LSUN model: 128)",
                           validator=attrs.validators.gt(0))
        image_size: int | None = param(None, "32, 64 or 128; unset: the dataset's size",
                                       validator=image_size_validator)
        channels: int | None = param(None, "image channels; unset: the dataset's channels")
        batchnorm: bool = param(True, "BatchNorm in hidden blocks; false: the old spelling "
                                "of norm = 'none' (only beside norm = 'batch')")
        leaky_slope: float = param(0.2, "negative slope of LeakyReLU (paper: 0.2)",
                                   validator=attrs.validators.ge(0.0))
        conditional: bool = param(False, "class-conditional: D(images, y) with the label "
                                  "as one-hot constant maps concatenated to the image (as in "
                                  "the paper's MNIST code); needs a dataset with classes")
        norm: str = param("batch", "normalization: 'batch' (paper: BatchNorm in hidden "
                          "blocks), 'spectral' (of every layer, no BatchNorm), 'layer' "
                          "(GroupNorm(1, C) where BatchNorm is) or 'none'",
                          validator=norm_validator)
        aux_classifier: bool = param(False, "ACGAN head: also output class logits (needs a "
                                     "dataset with classes and loss = 'aux_classifier')")

        def __attrs_post_init__(self) -> None:
            resolve_norm(self.norm, self.batchnorm)  # refuses batchnorm = false beside norm

        @property
        def effective_norm(self) -> str:
            """The normalization built: ``norm``, or ``"none"`` for ``batchnorm = false``."""
            return resolve_norm(self.norm, self.batchnorm)

    @classmethod
    def requirements(cls, params: Any, recipe: Any) -> list[Requirement]:
        """An auxiliary-classifier head needs the loss that reads its class logits."""
        if not params.aux_classifier:
            return []
        return [requires(f"loss = {AUX_LOSS!r}", recipe["loss"].short == AUX_LOSS,
                         "the head's class logits need its classification term")]

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        spec = self.setup_network(params, image_spec, SIZES)  # params, image_spec, _classes
        self._aux_classes = aux_classes(params.aux_classifier, spec.classes)
        steps = num_resolution_steps(spec.size)
        kind, slope = params.effective_norm, params.leaky_slope
        bias = not has_feature_norm(kind)  # a norm's own affine shift makes a bias redundant
        channels = params.width
        layers: list[nn.Module] = [
            nn.Conv2d(spec.channels + self._classes, channels, 4, 2, 1, bias=False),
            nn.LeakyReLU(slope, inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=bias),
                feature_norm(kind, channels * 2),
                nn.LeakyReLU(slope, inplace=True),
            ]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1 + self._aux_classes, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        init_weights(self)
        if kind == "spectral":
            spectral_all(self.main)  # after init_weights: the initial weights are the paper's

    @property
    def aux_classifier(self) -> bool:  # type: ignore[override]  # per instance; base: ClassVar
        """True when built with ``aux_classifier = true``: the output is ``(N, 1 +
        classes)``, the adversarial logit then the class logits."""
        return self._aux_classes > 0

    @property
    def effective_norm(self) -> str:
        """The normalization built, one of ``ganforge.nn.layers.NORMS`` (``batchnorm = false``
        reads ``"none"``)."""
        return self.params.effective_norm

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """One raw logit per image, shape ``(N,)``; with the auxiliary classifier, shape
        ``(N, 1 + classes)``: the adversarial logit, then the class logits. When
        conditional, ``y`` gives the classes (int64 indices of shape ``(N,)``, or float
        class weights of shape ``(N, classes)``)."""
        if self._classes:
            n, _, height, width = images.shape
            weights = class_weights("discriminator", y, self._classes, n, images.dtype)
            maps = weights[:, :, None, None].expand(n, self._classes, height, width)
            images = torch.cat([images, maps], dim=1)
        else:
            refuse_labels("discriminator", y)
        out = self.main(images)
        return out.flatten(1) if self._aux_classes else out.flatten()


def aux_classes(aux_classifier: bool, classes: int) -> int:
    """How many class logits the head adds: the dataset's ``classes`` with
    ``aux_classifier``, 0 otherwise. A head on a dataset without classes is a usage error,
    told in one line."""
    if not aux_classifier:
        return 0
    if classes <= 0:
        raise UsageError("discriminator: aux_classifier = true needs a dataset with classes; "
                         "dataset gives none")
    return classes
