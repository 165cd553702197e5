"""The ``ganforge`` command line (Typer + rich). Importing it does not import torch."""

from . import ablate_commands as _ablate_commands  # noqa: F401  (ablate)
from . import bench_commands as _bench_commands  # noqa: F401  (bench)
from . import commands as _commands  # noqa: F401  (defines the commands on ``app``)
from . import data_commands as _data_commands  # noqa: F401  (the ``data`` sub-commands)
from . import eval_commands as _eval_commands  # noqa: F401  (eval, probe)
from . import export_commands as _export_commands  # noqa: F401  (export)
from . import latent_commands as _latent_commands  # noqa: F401  (interpolate, arithmetic)
from . import new_commands as _new_commands  # noqa: F401  (new plugin)
from . import recipe_commands as _recipe_commands  # noqa: F401  (recipes)
from .app import app, main

__all__ = ["app", "main"]
