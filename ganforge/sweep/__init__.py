"""Ablation sweeps: a recipe's ``[sweep]`` table expanded into validated variants, run
(resumably, optionally in parallel) into one run directory each, and summarised."""
