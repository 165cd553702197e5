"""``python -m ganforge`` (also what ``torchrun -m ganforge`` runs)."""

from .cli import main

main()
