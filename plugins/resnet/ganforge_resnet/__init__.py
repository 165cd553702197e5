"""The SNGAN / BigGAN-style ResNet networks for ganforge.

The ResNet generator and discriminator of SNGAN (Miyato et al., 2018, "Spectral
Normalization for Generative Adversarial Networks"), with the conditional BatchNorm G and
the projection D of Miyato & Koyama (2018, "cGANs with Projection Discriminator"), the
lineage BigGAN (Brock et al., 2019) scaled up; residual blocks after He et al. (2016).
They follow mimicry (Lee & Town, 2020, github.com/kwotsin/mimicry), the reference
implementation, at 32, 48, 64 and 128 pixels, with the same widths, blocks, initialisation
and parameter counts.

Installed as the ``ganforge-resnet`` distribution, found through its ``ganforge`` entry
point: ``use = "resnet"`` (``resnet:resnet``) in ``[generator]`` and ``[discriminator]``.
"""

from .discriminator import ResNetDiscriminator
from .generator import ResNetGenerator

__all__ = ["ResNetDiscriminator", "ResNetGenerator"]
__version__ = "0.1.0"
