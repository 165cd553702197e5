"""The mathematics of FID, KID and the Inception Score, in float64.

- Fréchet distance (Heusel et al., 2017): ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``,
  with ``tr((S1 S2)^(1/2))`` computed as the sum of the square roots of the eigenvalues of
  ``S1 S2`` (real and non-negative for covariance matrices), as torchmetrics does.
- Kernel Inception Distance (Binkowski et al., 2018): the unbiased estimator of the squared
  MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random
  subsets.
- Inception Score (Salimans et al., 2016): ``exp(E_x KL(p(y|x) || p(y)))`` per split.
"""

from __future__ import annotations

import math

import torch


def mean_and_covariance(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of ``(N, D)`` features, in float64."""
    x = features.to(torch.float64)
    if x.shape[0] < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance between two Gaussians, in float64."""
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    diff = mu1 - mu2
    eigenvalues = torch.linalg.eigvals(sigma1 @ sigma2)
    trace_sqrt = eigenvalues.sqrt().real.sum()
    value = diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2.0 * trace_sqrt
    return float(value)


def _polynomial_mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = x.shape[0], y.shape[0]
    sum_xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    sum_yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return sum_xx + sum_yy - 2.0 * kxy.mean()


def kernel_inception_distance(
    fake: torch.Tensor,
    real: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased polynomial-kernel MMD^2 over ``subsets``
    random subsets of ``min(subset_size, len(fake), len(real))`` vectors each."""
    x, y = fake.to(torch.float64), real.to(torch.float64)
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 fake and 2 real feature vectors")
    g = torch.Generator().manual_seed(seed)
    values = torch.stack(
        [
            _polynomial_mmd(
                x[torch.randperm(x.shape[0], generator=g)[:size]],
                y[torch.randperm(y.shape[0], generator=g)[:size]],
            )
            for _ in range(subsets)
        ]
    )
    std = float(values.std()) if subsets > 1 else 0.0
    return float(values.mean()), std


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Mean and standard deviation over ``splits`` of ``exp(E KL(p(y|x) || p(y)))``."""
    log_p = torch.log_softmax(logits.to(torch.float64), dim=1)
    scores = []
    for part in torch.chunk(log_p, splits):
        log_marginal = torch.logsumexp(part, dim=0) - math.log(part.shape[0])
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        scores.append(kl.exp())
    values = torch.stack(scores)
    return float(values.mean()), float(values.std()) if splits > 1 else 0.0
