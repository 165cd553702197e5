"""The DCGAN reference plugin for ganforge (Radford, Metz & Chintala, 2015).

It is an ordinary third-party plugin: installed as the ``ganforge-dcgan`` distribution and
found through its ``ganforge`` entry point. Copy it to start a plugin of your own.
"""

from .discriminator import DCGANDiscriminator
from .generator import DCGANGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]
__version__ = "0.1.0"
