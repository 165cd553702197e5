"""Run G and D once before training: which shapes each network produces and accepts.

A generator whose images are not the dataset's shape (a plugin's bug: its ``image_spec``
says 32x32, its layers make 16x16) would otherwise surface as an internal error deep in
D's first convolution. :func:`check_network_shapes` builds both networks on the meta
device (no memory, no arithmetic), passes a latent batch through G and G's images through
D, and turns a mismatch into one line naming both shapes. Where a network cannot run on
the meta device (an operation without a meta kernel), it runs a batch of two on the CPU
instead (or on the already built networks, when given).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import torch
from torch import nn

from ..core.errors import RecipeError
from ..core.interfaces import Discriminator, Generator, ImageSpec, is_conditional

if TYPE_CHECKING:
    from ..core.registry import Registry
    from ..recipe import Recipe

#: Images per probe batch: two, so a BatchNorm in training mode would still work.
PROBE_BATCH = 2


@attrs.frozen
class NetworkShapes:
    """What one probe saw, per image (the batch dimension left out)."""

    latent: tuple[int, ...]
    images: tuple[int, ...]
    logits: tuple[int, ...]
    #: ``"meta"`` or the device the fallback ran on.
    device: str

    def lines(self, generator: str, discriminator: str) -> list[str]:
        """Two lines for ``ganforge check``."""
        return [f"generator {generator!r}: latent {_shape(self.latent)} -> images "
                f"{_shape(self.images)}",
                f"discriminator {discriminator!r}: images {_shape(self.images)} -> logits "
                f"{_shape(self.logits)} (probed on {self.device})"]


def _shape(dims: tuple[int, ...]) -> str:
    return "(N" + ("".join(f", {d}" for d in dims) if dims else ",") + ")"


def _first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the probe; the modes are restored after it."""
    modes = [m.training for m in modules]
    try:
        for module in modules:
            module.eval()
        with torch.no_grad():
            yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


def _probe(generator: Generator, discriminator: Discriminator, spec: ImageSpec,
           names: tuple[str, str], device: torch.device) -> NetworkShapes:
    """Run G then D on ``device``; a mismatch is a :class:`RecipeError`, any other failure
    propagates (the caller decides whether to retry elsewhere)."""
    g_name, d_name = names
    latent_dim = int(generator.latent_dim)
    z = generator.sample_latent(PROBE_BATCH, torch.Generator().manual_seed(0), "cpu")
    z = z.to(device)
    labels = torch.zeros(PROBE_BATCH, dtype=torch.long, device=device)
    with _evaluating(generator, discriminator):
        fake = generator(z, labels) if is_conditional(generator) else generator(z)
        if tuple(fake.shape[1:]) != spec.shape():
            raise RecipeError.single(
                "$.generator", f"generator {g_name!r} produces {_shape(tuple(fake.shape[1:]))}"
                f" images, but the dataset and discriminator {d_name!r} take "
                f"{_shape(spec.shape())} (from a latent of shape {_shape((latent_dim,))})")
        real = torch.zeros((PROBE_BATCH, *spec.shape()), device=device)
        logits = discriminator(real, labels) if is_conditional(discriminator) \
            else discriminator(real)
    if logits.shape[:1] != (PROBE_BATCH,):
        raise RecipeError.single(
            "$.discriminator", f"discriminator {d_name!r} returns logits of shape "
            f"{tuple(logits.shape)} for {PROBE_BATCH} images of {_shape(spec.shape())}; "
            "expected one logit per image")
    return NetworkShapes(tuple(z.shape[1:]), tuple(fake.shape[1:]),
                         tuple(logits.shape[1:]), str(device))


def check_network_shapes(recipe: Recipe, registry: Registry,
                         networks: tuple[Generator, Discriminator] | None = None
                         ) -> NetworkShapes:
    """Probe the recipe's G and D (see the module docstring); ``networks`` are the built
    ``(generator, discriminator)`` to fall back on when the meta device cannot run them
    (else they are built on the CPU). Raises a one-line :class:`RecipeError` naming both
    shapes when G's images are not what the dataset and D take, or when D does not accept
    them. The global random state is left as it was."""
    from .assembly import build_networks, dataset_image_spec

    spec = dataset_image_spec(recipe, registry)
    names = (recipe["generator"].name, recipe["discriminator"].name)
    with torch.random.fork_rng(devices=[]):
        try:
            meta = build_networks(recipe, registry, spec, device="meta")
            return _probe(*meta, spec, names, torch.device("meta"))
        except RecipeError:
            raise
        except Exception:  # no meta kernel somewhere: run a small batch for real
            pass
        if networks is None:
            networks = build_networks(recipe, registry, spec, device="cpu")
        generator, discriminator = networks
        device = next(generator.parameters(), torch.empty(0)).device
        try:
            return _probe(generator, discriminator, spec, names, device)
        except RecipeError:
            raise
        except Exception as error:
            raise RecipeError.single(
                "$.discriminator", f"generator {names[0]!r} and discriminator {names[1]!r} "
                f"do not run together on {_shape(spec.shape())} images: "
                f"{_first_line(error)}") from error
