"""Precision/recall (Kynkäänniemi et al., 2019) and density/coverage (Naeem et al., 2020):
hand-computed cases, a brute-force twin, clovaai's ``prdc`` package, blocking, edge cases."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch

from ganforge.errors import UsageError
from ganforge.evaluation import manifold
from ganforge.evaluation.features import FeatureSet
from ganforge.evaluation.manifold import (
    Coverage,
    Density,
    Precision,
    Recall,
    density_coverage,
    distance_blocks,
    fraction_in_manifold,
    knn_radii,
    pairwise_distances,
    precision_recall,
)


def column(*values: float) -> torch.Tensor:
    """1-D points as an (N, 1) feature matrix."""
    return torch.tensor(values, dtype=torch.float64)[:, None]


def metric_values(real: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, float]:
    """The four metrics through the Metric classes (as the evaluator calls them)."""
    fake_set, real_set = FeatureSet(fake), FeatureSet(real)
    values = {}
    for name, cls in [("precision", Precision), ("recall", Recall), ("density", Density),
                      ("coverage", Coverage)]:
        value, extras = cls(cls.Params(k=k)).score(fake_set, real_set)
        assert extras == {}
        values[name] = value
    return values


# -- hand-computed ---------------------------------------------------------------------------

# Real points 0, 1, 3, 7 on a line. Distances to the others:
#   0: 1, 3, 7    1: 1, 2, 6    3: 3, 2, 4    7: 7, 6, 4
# so the k-th nearest-neighbour radii are k=1: 1, 1, 2, 4; k=2: 3, 2, 3, 6; k=3: 7, 6, 4, 7.
REAL_1D = column(0, 1, 3, 7)
# Fake points 1.5, 1.75, 4.5, 12; their k=1 radii: 0.25, 0.25, 2.75, 7.5.
FAKE_1D = column(1.5, 1.75, 4.5, 12)


def test_radii_of_four_points_on_a_line() -> None:
    assert knn_radii(REAL_1D, 1).tolist() == [1, 1, 2, 4]
    assert knn_radii(REAL_1D, 2).tolist() == [3, 2, 3, 6]
    assert knn_radii(REAL_1D, 3).tolist() == [7, 6, 4, 7]
    assert knn_radii(FAKE_1D, 1).tolist() == [0.25, 0.25, 2.75, 7.5]


def test_duplicates_count_as_neighbours_at_distance_zero() -> None:
    # The point itself is excluded, its copies are not: 0 has two copies (distance 0),
    # then 5 (distance 5); 5 has three neighbours at distance 5.
    points = column(0, 0, 0, 5)
    assert knn_radii(points, 1).tolist() == [0, 0, 0, 5]
    assert knn_radii(points, 2).tolist() == [0, 0, 0, 5]
    assert knn_radii(points, 3).tolist() == [5, 5, 5, 5]


def test_hand_computed_k1_on_a_line() -> None:
    # Precision, k=1 (real balls [-1,1], [0,2], [1,5], [3,11]): 1.5 (0.5 from 1), 1.75 (0.75
    # from 1) and 4.5 (1.5 from 3) are inside, 12 (5 from 7 > 4) is not: 3/4.
    # Recall, k=1 (fake balls 1.5±0.25, 1.75±0.25, 4.5±2.75, 12±7.5): 0 (nearest 1.5, 1.5 >
    # 0.25) and 1 (0.5 > 0.25, 0.75 > 0.25, 3.5 > 2.75, 11 > 7.5) are outside, 3 (1.5 from
    # 4.5) and 7 (2.5 from 4.5) inside: 2/4.
    # Density, k=1: 1.5 lies in the balls of 1 and 3 (0.5 < 1, 1.5 < 2; 1.5 from 0 is not
    # < 1); 1.75 in those of 1 and 3; 4.5 in those of 3 and 7 (1.5 < 2, 2.5 < 4); 12 in
    # none: (2 + 2 + 2 + 0) / (1 * 4) = 1.5.
    # Coverage, k=1: 0 has no fake within 1; 1 has 1.5, 3 has 4.5, 7 has 4.5: 3/4.
    assert precision_recall(REAL_1D, FAKE_1D, 1) == (0.75, 0.5)
    assert density_coverage(REAL_1D, FAKE_1D, 1) == (1.5, 0.75)
    assert metric_values(REAL_1D, FAKE_1D, 1) == {
        "precision": 0.75, "recall": 0.5, "density": 1.5, "coverage": 0.75}


def test_hand_computed_k2_on_a_line() -> None:
    # k=2 real balls: 0±3, 1±2, 3±3, 7±6. Density: 1.5 is in all four (1.5, 0.5, 1.5, 5.5),
    # 1.75 in all four (1.75, 0.75, 1.25, 5.25), 4.5 in those of 3 and 7 (1.5, 2.5; not 0 at
    # 4.5, nor 1 at 3.5), 12 in that of 7 only (5 < 6): (4 + 4 + 2 + 1) / (2 * 4) = 11/8.
    # Coverage: every real point has a fake inside its ball: 1. Precision: 12 is now
    # inside (5 <= 6): 1.
    assert density_coverage(REAL_1D, FAKE_1D, 2) == (11 / 8, 1.0)
    assert fraction_in_manifold(REAL_1D, FAKE_1D, 2) == 1.0


def test_hand_computed_square() -> None:
    # Real: the corners of the unit square; k=1 and k=2 radii are 1 (two sides), k=3 is
    # sqrt(2) (the diagonal). Fake: the centre (sqrt(0.5) ~ 0.707 from every corner) and
    # (3, 3) (2 sqrt(2) ~ 2.83 from the nearest corner); each fake's k=1 radius is their
    # distance 2.5 sqrt(2) ~ 3.54.
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fake = torch.tensor([[0.5, 0.5], [3.0, 3.0]])
    assert knn_radii(real, 1).tolist() == [1, 1, 1, 1]
    assert knn_radii(real, 2).tolist() == [1, 1, 1, 1]
    assert knn_radii(real, 3).tolist() == pytest.approx([math.sqrt(2)] * 4, rel=1e-15)
    # Precision: the centre is inside, (3, 3) is not: 1/2. Recall: every corner is within
    # 3.54 of the centre: 1. Density: the centre is in all 4 balls, (3, 3) in none:
    # 4 / (1 * 2) = 2. Coverage: every corner's ball holds the centre: 1.
    assert precision_recall(real, fake, 1) == (0.5, 1.0)
    assert density_coverage(real, fake, 1) == (2.0, 1.0)


def test_boundary_closed_for_precision_recall_and_open_for_density_coverage() -> None:
    # Real 0, 2, 4: every k=1 radius is 2. Fake 6 lies exactly on the ball of 4; fake 10 far
    # away. Kynkäänniemi et al. count the boundary (||y - x|| <= NND_k(x)): precision 1/2.
    # prdc's density and coverage use '<': no fake is strictly inside any ball: 0, 0.
    real, fake = column(0, 2, 4), column(6, 10)
    assert knn_radii(real, 1).tolist() == [2, 2, 2]
    assert fraction_in_manifold(real, fake, 1) == 0.5
    assert density_coverage(real, fake, 1) == (0.0, 0.0)
    # The other way round: fake 6, 10 both have radius 4, so real 2 (4 from 6) is on the
    # boundary and counted, as is 4 (2 from 6); 0 (6 from 6) is not: recall 2/3.
    assert fraction_in_manifold(fake, real, 1) == pytest.approx(2 / 3, rel=1e-15)


# -- a brute-force twin (dense cdist, sort) on tie-rich integer grids -----------------------

def brute_force(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, ...]:
    real, fake = real.double(), fake.double()
    d_rr, d_ff, d_rf = torch.cdist(real, real), torch.cdist(fake, fake), torch.cdist(real, fake)
    r_real = d_rr.sort(1).values[:, k]  # column 0 is the point itself (distance 0)
    r_fake = d_ff.sort(1).values[:, k]
    precision = (d_rf <= r_real[:, None]).any(0).double().mean()
    recall = (d_rf <= r_fake[None, :]).any(1).double().mean()
    density = (d_rf < r_real[:, None]).sum().double() / (k * fake.shape[0])
    coverage = (d_rf < r_real[:, None]).any(1).double().mean()
    return float(precision), float(recall), float(density), float(coverage)


@pytest.mark.parametrize(("n", "m", "k", "seed"), [(10, 12, 1, 0), (30, 20, 3, 1), (40, 45, 5, 2),
                                                   (25, 25, 2, 3)])
def test_matches_brute_force_with_many_ties(n: int, m: int, k: int, seed: int) -> None:
    # Points on a 5x5x5 integer grid, so many distances are exactly equal: the boundary
    # convention matters at almost every comparison, and integer arithmetic is exact.
    g = torch.Generator().manual_seed(seed)
    real = torch.randint(0, 5, (n, 3), generator=g).double()
    fake = torch.randint(0, 5, (m, 3), generator=g).double()
    expected = brute_force(real, fake, k)
    for batch_size in (None, 1, 7):
        got = (*precision_recall(real, fake, k, batch_size=batch_size),
               *density_coverage(real, fake, k, batch_size=batch_size))
        assert got == pytest.approx(expected, rel=1e-15, abs=0)


# -- the reference implementation ------------------------------------------------------------

def prdc_reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        values = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(value) for name, value in values.items()}


@pytest.mark.parametrize(("n", "m", "dim", "k", "shift", "seed"), [
    (100, 80, 8, 3, 0.0, 0),
    (257, 300, 32, 5, 0.3, 1),
    (64, 64, 2, 1, 0.5, 2),
    (400, 350, 128, 10, 0.1, 3),
    (300, 200, 64, 3, 0.2, 4),
])
def test_matches_prdc(n: int, m: int, dim: int, k: int, shift: float, seed: int) -> None:
    g = np.random.default_rng(seed)
    # float32 features like an extractor's; both sides see the same values.
    real = g.normal(size=(n, dim)).astype(np.float32)
    fake = (g.normal(size=(m, dim)) * 1.2 + shift).astype(np.float32)
    expected = prdc_reference(real.astype(np.float64), fake.astype(np.float64), k)
    real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
    precision, recall = precision_recall(real_t, fake_t, k)
    density, coverage = density_coverage(real_t, fake_t, k)
    # Counts over the same decisions: exactly equal (density up to its float division).
    assert precision == expected["precision"]
    assert recall == expected["recall"]
    assert coverage == expected["coverage"]
    assert density == pytest.approx(expected["density"], rel=1e-12, abs=1e-15)
    # The Metric classes take (fake, real): the same numbers, the right way round.
    assert metric_values(real_t, fake_t, k) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # Not a degenerate case: the values are strictly between 0 and 1 (density above 0).
    assert 0 < precision < 1 and 0 < coverage < 1 and density > 0


# -- blocking, exactness, extremes -----------------------------------------------------------

def test_blocked_equals_unblocked(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(5)
    real = torch.randn(120, 16, generator=g)
    fake = torch.randn(90, 16, generator=g) + 0.2
    whole = (*precision_recall(real, fake, 3, batch_size=10_000),
             *density_coverage(real, fake, 5, batch_size=10_000))
    radii = knn_radii(real, 3, batch_size=10_000)
    for batch_size in (1, 7, 64):
        assert (*precision_recall(real, fake, 3, batch_size=batch_size),
                *density_coverage(real, fake, 5, batch_size=batch_size)) == whole
        assert torch.allclose(knn_radii(real, 3, batch_size=batch_size), radii,
                              rtol=1e-13, atol=0)
    # Unset batch_size: rows per block from the element budget, never above it.
    monkeypatch.setattr(manifold, "BLOCK_ELEMENTS", 1000)
    shapes = [tuple(block.shape) for _, block in distance_blocks(real, fake)]
    assert shapes == [(11, 90)] * 10 + [(10, 90)]
    assert (*precision_recall(real, fake, 3), *density_coverage(real, fake, 5)) == whole


def test_distances_are_exact_enough() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(50, 32, generator=g, dtype=torch.float64)
    y = torch.randn(40, 32, generator=g, dtype=torch.float64)
    exact = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.allclose(pairwise_distances(x, y, batch_size=9), exact, rtol=1e-12, atol=0)
    # A large common offset cancels in the expansion unless the sets are translated first.
    offset = 1e4
    assert torch.allclose(pairwise_distances(x + offset, y + offset), exact, rtol=1e-9, atol=0)
    # Integer coordinates stay exact.
    a = torch.tensor([[3.0, 4.0], [100.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [6.0, 8.0]])
    assert pairwise_distances(a, b).tolist() == [[5.0, 5.0], [100.0, math.sqrt(94.0**2 + 8.0**2)]]


def test_identical_sets_score_one() -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(200, 24, generator=g)
    # Every point is at distance 0 from its copy; each real ball (open, radius NND_k)
    # holds its centre and k - 1 neighbours, so the density is exactly k*N / (k*N).
    assert precision_recall(x, x.clone(), 3) == (1.0, 1.0)
    assert density_coverage(x, x.clone(), 5) == (1.0, 1.0)


def test_disjoint_far_apart_sets_score_zero() -> None:
    g = torch.Generator().manual_seed(8)
    real = torch.randn(100, 16, generator=g)
    fake = torch.randn(80, 16, generator=g) + 100.0
    assert precision_recall(real, fake, 3) == (0.0, 0.0)
    assert density_coverage(real, fake, 5) == (0.0, 0.0)
    assert metric_values(real, fake, 3) == {
        "precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# -- parameters and errors -------------------------------------------------------------------

def test_defaults_and_direction() -> None:
    assert Precision.Params().k == 3 and Recall.Params().k == 3
    assert Density.Params().k == 5 and Coverage.Params().k == 5
    assert all(cls.higher_is_better and cls.needs_real
               for cls in (Precision, Recall, Density, Coverage))
    with pytest.raises(ValueError, match="'k' must be > 0"):
        Precision.Params(k=0)


@pytest.mark.parametrize(("cls", "fake_n", "real_n", "message"), [
    (Precision, 10, 3, "precision with k=3 needs more than 3 real feature vectors, got 3"),
    (Recall, 3, 10, "recall with k=3 needs more than 3 fake feature vectors, got 3"),
    (Density, 10, 5, "density with k=5 needs more than 5 real feature vectors, got 5"),
    (Coverage, 10, 2, "coverage with k=5 needs more than 5 real feature vectors, got 2"),
    (Precision, 0, 10, "precision needs at least one fake feature vector, got 0"),
])
def test_too_few_vectors_is_one_usage_line(cls: type, fake_n: int, real_n: int,
                                           message: str) -> None:
    fake, real = FeatureSet(torch.randn(fake_n, 4)), FeatureSet(torch.randn(real_n, 4))
    with pytest.raises(UsageError, match=message) as caught:
        cls(cls.Params()).score(fake, real)
    assert "\n" not in str(caught.value)


def test_only_the_set_with_radii_must_exceed_k() -> None:
    # Precision, density and coverage need radii of the real set only: one fake will do.
    real, fake = column(0, 1, 3, 7), column(1.5)
    assert Precision(Precision.Params(k=3)).score(FeatureSet(fake), FeatureSet(real)) == (1.0, {})
    # k=3 radii 7, 6, 4, 7; 1.5 is 1.5, 0.5, 1.5, 5.5 from 0, 1, 3, 7: inside all four balls.
    assert density_coverage(real, fake, 3) == (4 / 3, 1.0)


def test_functions_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="k=4 need more than 4 feature vectors, got 4"):
        knn_radii(torch.randn(4, 2), 4)
    with pytest.raises(ValueError, match="k=3 need more than 3 feature vectors, got 2"):
        precision_recall(torch.randn(10, 2), torch.randn(2, 2), 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_radii(torch.randn(4, 2), 0)
    with pytest.raises(ValueError, match="feature sizes differ"):
        density_coverage(torch.randn(10, 2), torch.randn(10, 3), 3)
    with pytest.raises(ValueError, match=r"expected an \(N, D\) feature matrix"):
        knn_radii(torch.randn(10), 3)


def test_the_four_metrics_share_radii_and_one_density_coverage_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Scored on the same feature sets (as one evaluation passes them), the real set's
    radii at one k are computed once for precision, density and coverage, density and
    coverage share one pass, and the results are what the functions give alone."""
    from ganforge.evaluation import manifold

    gen = torch.Generator().manual_seed(5)
    real = FeatureSet(torch.randn(120, 8, generator=gen))
    fake = FeatureSet(torch.randn(100, 8, generator=gen) + 0.3)
    expected = (*manifold.precision_recall(real.features, fake.features, 5),
                *manifold.density_coverage(real.features, fake.features, 5))
    radii_calls: list[int] = []
    passes: list[int] = []
    knn, dc = manifold.knn_radii, manifold.density_coverage
    monkeypatch.setattr(manifold, "knn_radii",
                        lambda x, k, **kw: radii_calls.append(len(x)) or knn(x, k, **kw))
    monkeypatch.setattr(manifold, "density_coverage",
                        lambda *a, **kw: passes.append(1) or dc(*a, **kw))
    got = tuple(cls(cls.Params(k=5)).score(fake.head(100), real.head(120))[0]
                for cls in (Precision, Recall, Density, Coverage))
    assert got == pytest.approx(expected, rel=1e-12)
    assert sorted(radii_calls) == [100, 120]  # the fake set's once, the real set's once
    assert passes == [1]
