"""One seed-derivation helper for every random stream of a run."""

from __future__ import annotations


def test_derived_seeds_are_independent_per_purpose_and_index() -> None:
    from ganforge.seeds import derive_seed

    seeds = {derive_seed(s, p, *i) for s in (0, 1) for p in ("latents", "data order")
             for i in ((), (0,), (1,), (1_000_003,))}
    assert len(seeds) == 16  # seed 1 at index 0 is not seed 0 at index 1,000,003
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(7, "latents", 2) == derive_seed(7, "latents", 2)  # a pure function
