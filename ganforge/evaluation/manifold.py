"""Manifold metrics on feature vectors: precision, recall, density and coverage.

Each set of feature vectors ``X = (x_1 .. x_N)`` estimates its manifold as the union of
balls ``B(x_i, NND_k(x_i))``, where ``NND_k(x_i)`` is the distance from ``x_i`` to its k-th
nearest neighbour in ``X`` other than itself (:func:`knn_radii`). With real features ``X``
(N of them) and generated features ``Y`` (M of them):

- precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila, 2019, "Improved
  Precision and Recall Metric for Assessing Generative Models", k = 3)::

      f(y, X)   = 1 if ||y - x|| <= NND_k(x) for at least one x in X, else 0
      precision = 1/M sum_j f(y_j, X)
      recall    = 1/N sum_i f(x_i, Y)

  Closed balls (``<=``) as in the paper, its TensorFlow code and NVlabs' stylegan2-ada
  ``metrics/precision_recall.py`` (which also rounds the radii to float16; not done here).

- density and coverage (Naeem, Oh, Uh, Choi & Yoo, 2020, "Reliable Fidelity and
  Diversity Metrics for Generative Models", k = 5)::

      density  = 1/(k M) sum_j sum_i 1[||y_j - x_i|| < NND_k(x_i)]
      coverage = 1/N sum_i 1[there is a j with ||y_j - x_i|| < NND_k(x_i)]

  Open balls (``<``) as in their reference package ``prdc`` (clovaai/prdc), so that two
  identical sets without ties have a density of exactly 1: each real ball then holds its
  centre and k - 1 neighbours.

On features without exact ties (any continuous data) the two conventions agree, and all
four values equal ``prdc.compute_prdc``'s. A set's radii need more than k vectors in it:
precision, density and coverage need ``N > k``, recall ``M > k``; fewer raise ``ValueError``
here and a one-line ``UsageError`` from the metric classes.

Distances are computed in float64 as ``|a|^2 + |b|^2 - 2 a.b`` after translating both sets
by one of their own points (which keeps integer coordinates exact and the norms small), in
blocks of rows so that no more than about :data:`BLOCK_ELEMENTS` distances exist at once:
50,000 x 50,000 features never need a 50,000^2 matrix.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import torch

from ..core.errors import UsageError
from ..core.interfaces import Metric
from ..core.params import at_most, param
from .features import FeatureSet
from .metrics import MetricParams

#: Distances held at once per block when no ``batch_size`` is given (128 MiB of float64).
BLOCK_ELEMENTS = 2**24

_k_validator = [attrs.validators.gt(0), at_most(10_000)]


def _matrix(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an (N, D) feature matrix, got shape {tuple(x.shape)}")
    return x.to(torch.float64)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _rows_per_block(columns: int, batch_size: int | None) -> int:
    if batch_size is None:
        return max(1, BLOCK_ELEMENTS // max(columns, 1))
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return batch_size


def distance_blocks(
    x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None,
    exclude_self: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Euclidean distances ``||x_i - y_j||`` in float64, as ``(start, block)`` pairs where
    ``block`` holds rows ``start .. start + len(block)`` of the ``(N, M)`` matrix.

    ``batch_size`` rows per block (unset: about :data:`BLOCK_ELEMENTS` distances per block).
    With ``exclude_self`` (``x`` and ``y`` the same set) each point's distance to itself is
    ``inf``, so that it is never its own neighbour.
    """
    a, b = _matrix("x", x), _matrix("y", y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    if exclude_self and a.shape[0] != b.shape[0]:
        raise ValueError("exclude_self needs x and y to be the same set")
    if b.shape[0] > 0:
        # A shared translation changes no distance but shrinks the norms the expansion
        # subtracts; a data point (not the mean) keeps integer coordinates exact.
        origin = b[0].clone()
        a, b = a - origin, b - origin
    b_squared = b.square().sum(1)
    rows = _rows_per_block(b.shape[0], batch_size)
    for start in range(0, a.shape[0], rows):
        block = a[start:start + rows]
        squared = torch.addmm(b_squared, block, b.T, alpha=-2.0)
        distances = squared.add_(block.square().sum(1, keepdim=True)).clamp_min_(0.0).sqrt_()
        if exclude_self:
            index = torch.arange(block.shape[0], device=distances.device)
            distances[index, index + start] = float("inf")
        yield start, distances


def pairwise_distances(x: torch.Tensor, y: torch.Tensor, *,
                       batch_size: int | None = None) -> torch.Tensor:
    """The whole ``(N, M)`` float64 distance matrix (for small sets; see
    :func:`distance_blocks` for large ones)."""
    blocks = [block for _, block in distance_blocks(x, y, batch_size=batch_size)]
    if not blocks:
        return torch.empty(0, y.shape[0], dtype=torch.float64, device=y.device)
    return torch.cat(blocks)


def knn_radii(features: torch.Tensor, k: int, *, batch_size: int | None = None) -> torch.Tensor:
    """``NND_k(x_i)``: each vector's distance to its k-th nearest neighbour in the same set,
    the vector itself excluded (a duplicate of it counts, at distance 0). Float64, ``(N,)``.
    Needs more than ``k`` vectors."""
    _check_k(k)
    x = _matrix("features", features)
    if x.shape[0] <= k:
        raise ValueError(f"k-nearest-neighbour radii with k={k} need more than {k} feature "
                         f"vectors, got {x.shape[0]}")
    radii = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for start, block in distance_blocks(x, x, batch_size=batch_size, exclude_self=True):
        radii[start:start + block.shape[0]] = block.topk(k, dim=1, largest=False).values[:, -1]
    return radii


def fraction_in_manifold(manifold: torch.Tensor, probes: torch.Tensor, k: int, *,
                         batch_size: int | None = None,
                         radii: torch.Tensor | None = None) -> float:
    """Kynkäänniemi et al.'s ``1/|probes| sum_p f(p, manifold)``: the fraction of ``probes``
    inside at least one closed ball ``B(m, NND_k(m))`` of a ``manifold`` vector ``m``.

    ``fraction_in_manifold(real, fake, k)`` is precision, ``fraction_in_manifold(fake, real,
    k)`` recall. ``radii``: the manifold's :func:`knn_radii` at ``k``, when known."""
    if radii is None:
        radii = knn_radii(manifold, k, batch_size=batch_size)
    if probes.shape[0] == 0:
        raise ValueError("no probe feature vectors to test against the manifold")
    inside = torch.empty(probes.shape[0], dtype=torch.bool, device=radii.device)
    for start, block in distance_blocks(probes, manifold, batch_size=batch_size):
        inside[start:start + block.shape[0]] = (block <= radii).any(1)
    return float(inside.to(torch.float64).mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, *,
                     batch_size: int | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019)::

        precision = 1/M sum_j f(fake_j, real)     recall = 1/N sum_i f(real_i, fake)
        f(y, X) = 1[exists x in X: ||y - x|| <= NND_k(x)]

    with ``NND_k`` from :func:`knn_radii`; k = 3 in the paper. Needs more than ``k`` vectors
    in each set."""
    return (fraction_in_manifold(real, fake, k, batch_size=batch_size),
            fraction_in_manifold(fake, real, k, batch_size=batch_size))


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5, *,
                     batch_size: int | None = None,
                     radii: torch.Tensor | None = None) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020), as ``prdc.compute_prdc``::

        density  = 1/(k M) sum_j sum_i 1[||fake_j - real_i|| < NND_k(real_i)]
        coverage = 1/N sum_i 1[min_j ||fake_j - real_i|| < NND_k(real_i)]

    with ``NND_k`` from :func:`knn_radii` over the real set only; k = 5 in the paper.
    Density is unbounded above (1 on average when both sets come from one distribution).
    Needs more than ``k`` real vectors and at least one fake. ``radii``: the real set's
    :func:`knn_radii` at ``k``, when known."""
    if radii is None:
        radii = knn_radii(real, k, batch_size=batch_size)
    if fake.shape[0] == 0:
        raise ValueError("density and coverage need at least one fake feature vector")
    counts = torch.zeros(fake.shape[0], dtype=torch.int64, device=radii.device)
    covered = torch.empty(real.shape[0], dtype=torch.bool, device=radii.device)
    for start, block in distance_blocks(real, fake, batch_size=batch_size):
        inside = block < radii[start:start + block.shape[0], None]
        counts += inside.sum(0)
        covered[start:start + block.shape[0]] = inside.any(1)
    density = float(counts.sum().to(torch.float64) / (k * fake.shape[0]))
    return density, float(covered.to(torch.float64).mean())


def _radii(features: FeatureSet, k: int) -> torch.Tensor:
    """A feature set's k-NN radii, computed once per set and k (precision, density and
    coverage of one evaluation share the real set's)."""
    return features.memoized(("knn_radii", k), lambda: knn_radii(features.features, k))


def _density_coverage(real: FeatureSet, fake: FeatureSet, k: int) -> tuple[float, float]:
    """Both figures in one pass over the distances, once per (real, fake, k). Kept with
    the generated set, which lives for one evaluation (the real set is kept between
    evaluations during training, and must not hold on to every generated set)."""
    return fake.memoized(("density_coverage", k, real), lambda: density_coverage(
        real.features, fake.features, k, radii=_radii(real, k)))


def _need(metric: str, k: int, fake: FeatureSet, real: FeatureSet, radii_of: str) -> None:
    """One UsageError line when the set whose k-NN radii are needed (``radii_of``, "n_real"
    or "n_fake") has no more than ``k`` vectors, or the other set is empty."""
    sizes = {"n_fake": len(fake), "n_real": len(real)}
    size = sizes[radii_of]
    if size <= k:
        raise UsageError(f"{metric} with k={k} needs more than {k} {radii_of.removeprefix('n_')} "
                         f"feature vectors, got {size}: raise {radii_of} or lower k")
    for name, other in sizes.items():
        if other == 0:
            raise UsageError(f"{metric} needs at least one {name.removeprefix('n_')} feature "
                             f"vector, got 0")


_PR_K_DOC = "nearest neighbours setting each vector's radius (3 in Kynkäänniemi et al., 2019)"
_DC_K_DOC = "nearest neighbours setting each real vector's radius (5 in Naeem et al., 2020)"


@attrs.frozen
class PrecisionRecallParams(MetricParams):
    """The neighbourhood size of precision and recall."""

    k: int = param(3, _PR_K_DOC, validator=_k_validator)


@attrs.frozen
class DensityCoverageParams(MetricParams):
    """The neighbourhood size of density and coverage."""

    k: int = param(5, _DC_K_DOC, validator=_k_validator)


class Precision(Metric):
    """Improved precision (Kynkäänniemi et al., 2019): the fraction of generated images
    inside the real k-NN manifold (fidelity; higher is better, at most 1)."""

    higher_is_better = True
    Params = PrecisionRecallParams

    def score(self, fake: FeatureSet, real: FeatureSet) -> tuple[float, dict[str, float]]:
        k = self.params.k
        _need("precision", k, fake, real, radii_of="n_real")
        return fraction_in_manifold(real.features, fake.features, k,
                                    radii=_radii(real, k)), {}


class Recall(Metric):
    """Improved recall (Kynkäänniemi et al., 2019): the fraction of real images inside
    the generated k-NN manifold (diversity; higher is better, at most 1)."""

    higher_is_better = True
    Params = PrecisionRecallParams

    def score(self, fake: FeatureSet, real: FeatureSet) -> tuple[float, dict[str, float]]:
        k = self.params.k
        _need("recall", k, fake, real, radii_of="n_fake")
        return fraction_in_manifold(fake.features, real.features, k,
                                    radii=_radii(fake, k)), {}


class Density(Metric):
    """Density (Naeem et al., 2020): how many real k-NN balls hold each generated image,
    over k (fidelity; higher is better, about 1 for matching distributions, unbounded)."""

    higher_is_better = True
    Params = DensityCoverageParams

    def score(self, fake: FeatureSet, real: FeatureSet) -> tuple[float, dict[str, float]]:
        k = self.params.k
        _need("density", k, fake, real, radii_of="n_real")
        return _density_coverage(real, fake, k)[0], {}


class Coverage(Metric):
    """Coverage (Naeem et al., 2020): the fraction of real images whose k-NN ball holds at
    least one generated image (diversity; higher is better, at most 1)."""

    higher_is_better = True
    Params = DensityCoverageParams

    def score(self, fake: FeatureSet, real: FeatureSet) -> tuple[float, dict[str, float]]:
        k = self.params.k
        _need("coverage", k, fake, real, radii_of="n_real")
        return _density_coverage(real, fake, k)[1], {}
