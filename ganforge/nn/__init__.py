"""The nn helpers layer: building blocks for network plugins, above the core (registry,
interfaces, params) and below the built-ins, datasets and training.

- :mod:`ganforge.nn.layers`: the ``norm`` choice (batch, spectral, layer, none) and a
  spectral normalization that works under ``torch.compile``.
- :mod:`ganforge.nn.conditioning`: class labels and the latent prior.
- :mod:`ganforge.nn.network`: what every generator and discriminator repeats (the
  conditional switch, classes, ``latent_dim``, ``image_spec``, ``sample_latent``) and the
  image-size checks of networks built for a set of sizes.
- :mod:`ganforge.nn.tracing`: a module tracer (which layers run, in which order, on which
  shapes) for architecture audits.

The submodules import torch; this package imports nothing itself.
"""
