"""Vector arithmetic on averaged latents (DCGAN §6.3.2): a sheet's latents, exemplar
indices, concept means, ``A - B + C`` and its noisy neighbourhood. See
:mod:`ganforge.evaluation.latent`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...core.errors import UsageError
from ...core.interfaces import Generator
from ...core.seeds import derive_seed

#: Default number of exemplars that make up one concept (the paper averaged three).
EXEMPLARS_PER_CONCEPT = 3


def sheet_latents(generator: Generator, n: int, seed: int) -> torch.Tensor:
    """The ``n`` latents of a sample sheet, ``(n, latent_dim)`` on the CPU.

    Drawn exactly like ``ganforge sample --n N --seed S``, so a sheet is reproducible from
    ``(seed, n)`` alone and is the same on every device.
    """
    if n < 1:
        raise UsageError(f"a sheet needs at least one sample, got n = {n}")
    return generator.sample_latent(n, torch.Generator().manual_seed(seed), "cpu")


def parse_indices(text: str, option: str, n: int, count: int = EXEMPLARS_PER_CONCEPT) -> list[int]:
    """``"3,17,22"`` as ``[3, 17, 22]``: exactly ``count`` distinct indices in ``0 .. n-1``.

    Errors are :class:`UsageError` lines that name ``option`` (e.g. ``"--a"``).
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    indices: list[int] = []
    for part in parts:
        try:
            indices.append(int(part))
        except ValueError:
            raise UsageError(
                f"{option}: {part!r} is not a sheet index (expected "
                f"{count} comma-separated integers such as 3,17,22)"
            ) from None
    if len(indices) != count:
        raise UsageError(
            f"{option}: expected exactly {count} comma-separated sheet indices, "
            f"got {len(indices)} ({text!r})"
        )
    for index in indices:
        if not 0 <= index < n:
            raise UsageError(
                f"{option}: index {index} is out of range; the sheet has indices 0..{n - 1}"
            )
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise UsageError(
            f"{option}: index {repeated[0]} is given more than once; pick "
            f"{count} different exemplars"
        )
    return indices


def concept_mean(latents: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
    """The mean of ``latents[indices]``, shape ``(latent_dim,)``: one concept's latent.

    Averaging several exemplars gives a stable concept vector where single latents do not
    (§6.3.2). An index outside ``0 .. len(latents)-1`` is a :class:`UsageError`.
    """
    if not indices:
        raise UsageError("a concept needs at least one exemplar index")
    n = latents.shape[0]
    for index in indices:
        if not 0 <= int(index) < n:
            raise UsageError(f"index {index} is out of range; valid indices are 0..{n - 1}")
    return latents[torch.as_tensor(list(indices), dtype=torch.long)].mean(dim=0)


def arithmetic_latent(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a - b + c``, e.g. smiling woman - neutral woman + neutral man = smiling man."""
    return a - b + c


def neighbourhood(
    z: torch.Tensor, k: int, scale: float, seed: int, prior: str | None = "uniform"
) -> torch.Tensor:
    """``k`` noisy copies of the latent ``z``, shape ``(k, latent_dim)``.

    For the ``"uniform"`` prior the noise is uniform on ``[-scale, scale]``, as in the paper
    (scale 0.25); for any other prior it is ``scale * N(0, I)``. The noise comes from a CPU
    generator seeded from ``seed`` through a derived stream, so it does not repeat the
    latents that ``sample_latent`` draws for the same seed.
    """
    if k < 0:
        raise UsageError(f"the neighbourhood size must be >= 0, got {k}")
    base = z.detach().reshape(1, -1).cpu()
    rng = torch.Generator().manual_seed(derive_seed(seed, "neighbourhood"))
    shape = (k, base.shape[1])
    if prior == "uniform":
        noise = torch.rand(shape, generator=rng, dtype=base.dtype).mul_(2).sub_(1)
    else:
        noise = torch.randn(shape, generator=rng, dtype=base.dtype)
    return base + scale * noise

