"""The files ``ganforge new plugin NAME`` writes: a ready distribution ``ganforge-NAME``
with one working example component of each kind asked for, a recipe and contract tests.

Every file is a :class:`string.Template` (``$name``, ``$package``, ...) held here, so the
command needs no package data. :func:`render` fills them in. Importing this module
imports neither torch nor any plugin.
"""

from __future__ import annotations

import keyword
import re
from string import Template

#: The kinds a new plugin may start with, in the order they are generated.
KINDS = ("generator", "discriminator", "loss", "optimizer", "scheduler", "dataset")
#: What ``--kinds`` defaults to.
DEFAULT_KINDS = ("generator", "discriminator", "loss")
#: Names a plugin cannot take: the core's qualifier and plugin record, the kit's partners.
RESERVED = frozenset({"ganforge", "builtins", "testkit"})
#: A plugin name: a lower-case Python identifier (it names the package ganforge_NAME too).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")

#: kind -> (module, class, registered short name, one-line summary)
COMPONENTS: dict[str, tuple[str, str, str, str]] = {
    "generator": ("generator", "MLPGenerator", "mlp",
                  "an MLP generator for any image size and channel count"),
    "discriminator": ("discriminator", "MLPDiscriminator", "mlp",
                      "an MLP discriminator returning one raw logit per image"),
    "loss": ("loss", "LeastSquaresLoss", "least_squares",
             "the least-squares GAN loss (Mao et al. 2017), labels passed on to D"),
    "optimizer": ("optimizer", "SGDOptimizer", "sgd", "SGD with momentum"),
    "scheduler": ("scheduler", "StepDecay", "step_decay",
                  "step decay of the learning rate, with a linear warm-up"),
    "dataset": ("dataset", "StripesDataset", "stripes",
                "procedural striped images, optionally labelled; no files"),
}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a plugin (one line), or None when it can."""
    if not NAME_PATTERN.fullmatch(name):
        hint = ""
        if NAME_PATTERN.fullmatch(name.lower().replace("-", "_")):
            hint = f" (try {name.lower().replace('-', '_')!r})"
        return (f"plugin name {name!r} must be a lower-case Python identifier of at most 40 "
                f"characters: a letter, then letters, digits or '_'{hint}")
    if keyword.iskeyword(name) or name in RESERVED:
        return f"plugin name {name!r} is reserved; choose another"
    return None


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``--kinds`` as a tuple in generation order; raises ``ValueError`` with one line."""
    if text is None:
        return DEFAULT_KINDS
    asked = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise ValueError(f"--kinds: unknown kind {unknown[0]!r}; choose from "
                         f"{', '.join(KINDS)}")
    if not asked:
        raise ValueError(f"--kinds: name at least one of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in asked)


# -- the distribution ------------------------------------------------------------------------

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$title components for ganforge: $summary."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["ganforge"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The entry-point name is the plugin's name: components are "$name:<component>".
[project.entry-points.ganforge]
$name = "$package.plugin"

[tool.setuptools.packages.find]
include = ["$package*"]

[tool.setuptools.package-data]
$package = ["recipes/*.toml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
''')

README = Template('''\
# $dist

$title components for ganforge, the plugin-based GAN toolkit. Written by
`ganforge new plugin $name`: rename them and make them your own.

| kind | name | what |
|---|---|---|
$table

## Install and use

```console
$$ pip install -e .
$$ ganforge plugins                          # $name  $dist  0.1.0  loaded
$$ ganforge components show $first_kind $name:$first_short
$$ ganforge run $name:${name}_quick             # the recipe in $package/recipes/
```

In a recipe, use the qualified names (`use = "$name:$first_short"`): they never clash with
another plugin's components.$dcgan_note

## Test

```console
$$ python -m pytest
```

`tests/test_contract.py` runs ganforge's contract kit (`ganforge.testing`) on every
component: Params, shapes and ranges, bf16 autocast, channels_last, `torch.compile`, seeded
determinism, state round trips, and a tiny run trained straight and with a resume that must
end bit-identical. It loads the plugin whether or not it is installed. See ganforge's
`docs/testing-plugins.md` for what each check checks and `docs/writing-plugins.md` for the
runtime contract.

## Layout

- `pyproject.toml`: the distribution, with the entry point `$name = "$package.plugin"` in
  the group `ganforge`.
- `$package/plugin.py`: the `ganforge_register` hook.
$layout
- `$package/recipes/${name}_quick.toml`: a quick run using the components.
- `tests/test_contract.py`: the contract tests.
''')

GITIGNORE = '''\
__pycache__/
*.egg-info/
build/
dist/
runs/
'''

INIT = Template('''\
"""$title components for ganforge (the ``$name`` plugin).

Importing this package imports nothing heavy: ganforge imports the components through the
``ganforge_register`` hook in :mod:`$package.plugin`.
"""

__version__ = "0.1.0"
''')

PLUGIN = Template('''\
"""Entry point of the ``$name`` plugin: registers its components with ganforge."""

from __future__ import annotations

from ganforge import Registry, hookimpl


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register the components; each is ``$name:<name>`` in recipes."""
$imports

$registrations
''')

GENERATOR = '''\
"""An MLP generator: z through two hidden layers to pixels, for any image shape."""

from __future__ import annotations

import math

import attrs
import torch
from ganforge import Generator, ImageSpec, param, resolve_image_spec
from torch import nn


class MLPGenerator(Generator):
    """Two hidden ReLU layers from z to pixels and a Tanh, so images lie in [-1, 1]."""

    @attrs.frozen
    class Params:
        """Size of z and of the hidden layers."""

        latent_dim: int = param(64, "size of z", validator=attrs.validators.gt(0))
        hidden: int = param(128, "units per hidden layer", validator=attrs.validators.gt(0))

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        # The image shape comes from the dataset (its ImageSpec).
        self._spec = resolve_image_spec("generator", None, None, image_spec)
        self.net = nn.Sequential(
            nn.Linear(params.latent_dim, params.hidden), nn.ReLU(),
            nn.Linear(params.hidden, params.hidden), nn.ReLU(),
            nn.Linear(params.hidden, math.prod(self._spec.shape())), nn.Tanh())

    @property
    def latent_dim(self) -> int:
        return self.params.latent_dim

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """A standard normal prior, drawn from the seeded generator only (exact resume)."""
        device = device if device is not None else generator.device
        return torch.randn(n, self.params.latent_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # reshape, not view: the trainer may hand channels_last tensors around.
        return self.net(z).reshape(z.shape[0], *self._spec.shape())
'''

DISCRIMINATOR = '''\
"""An MLP discriminator: pixels through a hidden layer to one raw logit per image."""

from __future__ import annotations

import math

import attrs
import torch
from ganforge import Discriminator, ImageSpec, param, resolve_image_spec
from torch import nn


class MLPDiscriminator(Discriminator):
    """A hidden LeakyReLU layer, then one raw logit per image (the sigmoid belongs to the
    loss)."""

    @attrs.frozen
    class Params:
        """Width and slope of the hidden layer."""

        hidden: int = param(128, "units of the hidden layer", validator=attrs.validators.gt(0))
        leaky_slope: float = param(0.2, "negative slope of LeakyReLU",
                                   validator=attrs.validators.ge(0.0))

    def __init__(self, params: Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.params = params
        spec = resolve_image_spec("discriminator", None, None, image_spec)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(spec.shape()), params.hidden),
            nn.LeakyReLU(params.leaky_slope), nn.Linear(params.hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()  # shape (N,)
'''

LOSS = '''\
"""The least-squares GAN loss (Mao et al. 2017) on raw discriminator outputs."""

from __future__ import annotations

import attrs
import torch
from ganforge import Loss, param
from torch import nn


class LeastSquaresLoss(Loss):
    """D pulls real outputs to ``real_target`` and fake ones to ``fake_target``; G pulls its
    fakes to ``real_target``. The labels of a labelled run are passed on to D (the D a loss
    receives drops them for an unconditional network)."""

    @attrs.frozen
    class Params:
        """Targets of the least-squares regression."""

        real_target: float = param(1.0, "target of D on real images (and of G's fakes)")
        fake_target: float = param(0.0, "target of D on generated images")

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor,
                           fake: torch.Tensor, *, real_labels: torch.Tensor | None = None,
                           fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        p = self.params
        # real and fake go through D separately, so BatchNorm sees unmixed batches.
        real_term = (discriminator(real, real_labels) - p.real_target).pow(2).mean()
        fake_term = (discriminator(fake, fake_labels) - p.fake_target).pow(2).mean()
        return 0.5 * (real_term + fake_term)

    def generator_loss(self, discriminator: nn.Module, fake: torch.Tensor, *,
                       fake_labels: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (discriminator(fake, fake_labels) - self.params.real_target).pow(2).mean()
'''

OPTIMIZER = '''\
"""SGD with momentum, as a ganforge optimizer."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from ganforge import Optimizer, param


class SGDOptimizer(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and weight decay."""

    @attrs.frozen
    class Params:
        """SGD's hyper-parameters."""

        lr: float = param(0.01, "learning rate", validator=attrs.validators.gt(0.0))
        momentum: float = param(0.5, "momentum, in [0, 1)",
                                validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])
        nesterov: bool = param(False, "Nesterov momentum (when momentum > 0)")
        weight_decay: float = param(0.0, "L2 penalty", validator=attrs.validators.ge(0.0))

    def build(self, parameters: Any, device: torch.device) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.SGD(parameters, lr=p.lr, momentum=p.momentum,
                               nesterov=p.nesterov and p.momentum > 0,
                               weight_decay=p.weight_decay)
'''

SCHEDULER = '''\
"""Step decay of the learning rate, after an optional linear warm-up."""

from __future__ import annotations

import attrs
from ganforge import Scheduler, param


class StepDecay(Scheduler):
    """Multiply the learning rate by ``gamma`` every ``every`` steps. A pure function of the
    step, so a resumed run continues on exactly the same learning rates."""

    @attrs.frozen
    class Params:
        """Period and factor of the decay, and the warm-up."""

        every: int = param(1000, "steps between decays", validator=attrs.validators.gt(0))
        gamma: float = param(0.5, "factor applied at each decay, in (0, 1]",
                             validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)])
        warmup: int = param(0, "steps of linear warm-up from 0 (0: none)",
                            validator=attrs.validators.ge(0))

    def factor(self, step: int, total: int) -> float:
        p = self.params
        warm = min(1.0, step / p.warmup) if p.warmup > 0 else 1.0
        return warm * p.gamma ** ((step - 1) // p.every)
'''

DATASET = '''\
"""Procedural striped images: no files, deterministic per index."""

from __future__ import annotations

import math

import attrs
import torch
from ganforge import Dataset, ImageSpec, param
from ganforge.seeds import derive_seed


class StripesDataset(Dataset):
    """Sinusoidal stripes: image ``i``'s angle, frequency, phase and colour are drawn from
    a generator seeded with ``(seed, i)``, so it depends on nothing else. With ``classes =
    K > 0`` image ``i`` has label ``i % K``, shown as the stripes' angle, and items are
    ``(image, label)`` pairs."""

    @attrs.frozen
    class Params:
        """Size, shape, seed and classes of the generated set."""

        count: int = param(1024, "number of images",
                           validator=[attrs.validators.gt(0), attrs.validators.le(10**7)])
        image_size: int = param(16, "side of the square images",
                                validator=[attrs.validators.ge(4), attrs.validators.le(1024)])
        channels: int = param(3, "1 (grey) or 3 (colour)",
                              validator=attrs.validators.in_([1, 3]))
        seed: int = param(0, "seed of the procedure",
                          validator=[attrs.validators.ge(0), attrs.validators.lt(2**32)])
        classes: int = param(0, "label image i with class i % classes, shown as the angle "
                             "(0: unlabelled)",
                             validator=[attrs.validators.ge(0), attrs.validators.le(64)])

    @classmethod
    def image_spec_for(cls, params: Params) -> ImageSpec:
        """The shape and classes, from the params alone (reads no data)."""
        return ImageSpec(channels=params.channels, size=params.image_size,
                         classes=params.classes)

    def __len__(self) -> int:
        return self.params.count

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, int]:
        p = self.params
        if not 0 <= index < p.count:
            raise IndexError(f"index {index} out of range for {p.count} images")
        rng = torch.Generator().manual_seed(derive_seed(p.seed, "stripes", index))
        jitter, frequency, phase = torch.rand(3, generator=rng).tolist()
        colour = torch.rand(p.channels, 1, 1, generator=rng) * 0.8 + 0.2
        if p.classes:
            angle = math.pi * (index % p.classes + 0.3 * jitter) / p.classes
        else:
            angle = math.pi * jitter
        line = torch.linspace(-1.0, 1.0, p.image_size)
        ys, xs = torch.meshgrid(line, line, indexing="ij")
        wave = torch.sin(math.pi * (1 + 3 * frequency) * (xs * math.cos(angle)
                                                          + ys * math.sin(angle))
                         + 2 * math.pi * phase)
        image = (wave.unsqueeze(0) * colour).clamp(-1.0, 1.0)  # float, CHW, in [-1, 1]
        return (image, index % p.classes) if p.classes else image
'''

SOURCES = {"generator": GENERATOR, "discriminator": DISCRIMINATOR, "loss": LOSS,
           "optimizer": OPTIMIZER, "scheduler": SCHEDULER, "dataset": DATASET}

RECIPE = Template('''\
# A quick run of the $name plugin's components ($kinds_text): a minute or two on a CPU.
[run]
steps = 200
batch_size = 32
seed = 0
log_every = 20
sample_every = 100
checkpoint_every = 200
sample_count = 16

$tables''')

TEST_CONTRACT = Template('''\
"""Contract tests of the $name plugin: ganforge's kit checks every component the way the
trainer uses it (``ganforge.testing``; see ganforge's docs/testing-plugins.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ganforge.testing import check_component, check_training, plugin_registry

PLUGIN = "$name"
MODULE = "$package.plugin"
#: (kind, short name) of every component the plugin registers.
COMPONENTS = [
$component_list
]
RECIPE = Path(__file__).parent.parent / "$package" / "recipes" / "${name}_quick.toml"


@pytest.fixture(scope="module")
def registry():
    """The installed plugins plus this one, whether or not it is installed."""
    return plugin_registry(PLUGIN, MODULE)


@pytest.mark.parametrize(("kind", "name"), COMPONENTS)
def test_component_keeps_the_contract(registry, kind: str, name: str) -> None:
    # train=True: also a tiny run trained straight and with a resume (datasets included).
    check_component(kind, f"{PLUGIN}:{name}", registry=registry, train=True)


def test_every_component_is_checked(registry) -> None:
    from ganforge.kinds import KINDS

    registered = {(e.kind, e.name) for kind in KINDS for e in registry.list(kind)
                  if e.plugin == PLUGIN}
    assert registered == set(COMPONENTS)


def test_quick_recipe_trains_and_resumes(registry) -> None:
$recipe_skip    # 4 steps straight and 2 + 2 with a resume, on small batches: identical ends.
    check_training(RECIPE, overrides=["run.batch_size=4"], registry=registry)
''')

#: The recipe tables of each kind: (table, TOML body).
_TABLES = {
    "dataset": ("dataset", 'use = "$name:stripes"\nimage_size = 16\nchannels = 3\n'),
    "generator": ("generator", 'use = "$name:mlp"\nlatent_dim = 32\nhidden = 128\n'),
    "discriminator": ("discriminator", 'use = "$name:mlp"\nhidden = 128\n'),
    "loss": ("loss", 'use = "$name:least_squares"\n'),
    "optimizer": ("optimizer.generator", 'use = "$name:sgd"\nlr = 0.01\nmomentum = 0.5\n'),
    "scheduler": ("schedule.generator", 'use = "$name:step_decay"\nevery = 100\ngamma = 0.5\n'),
}


def _recipe_tables(name: str, kinds: tuple[str, ...]) -> tuple[str, bool]:
    """The recipe's component tables, and whether it needs the dcgan plugin (for a network
    the plugin does not provide)."""
    dcgan = "generator" not in kinds or "discriminator" not in kinds
    size = 32 if dcgan else 16  # DCGAN builds 32, 64 or 128 pixel images
    tables: list[str] = []
    for kind in ("dataset", "generator", "discriminator", "loss", "optimizer", "scheduler"):
        if kind in kinds:
            table, body = _TABLES[kind]
            body = Template(body).substitute(name=name)
            if kind == "dataset":
                body = body.replace("image_size = 16", f"image_size = {size}")
            tables.append(f"[{table}]\n{body}")
            if kind in ("optimizer", "scheduler"):
                other = table.replace("generator", "discriminator")
                tables.append(f"[{other}]\n{body}")
        elif kind == "dataset":
            tables.append(f'[dataset]\nuse = "ganforge:digits"\nimage_size = {size}\n'
                          "channels = 1\n")
        elif kind in ("generator", "discriminator"):
            extra = "latent_dim = 100\n" if kind == "generator" else ""
            tables.append(f'[{kind}]\nuse = "dcgan:dcgan"\n{extra}width = 32\n')
    return "\n".join(tables), dcgan


def render(name: str, kinds: tuple[str, ...]) -> dict[str, str]:
    """Every file of the new distribution: relative path -> text."""
    package = f"ganforge_{name}"
    dist = f"ganforge-{name}"
    title = name.replace("_", " ").title()
    chosen = [(kind, *COMPONENTS[kind]) for kind in kinds]
    summary = "; ".join(info[4] for info in chosen)
    tables, dcgan = _recipe_tables(name, kinds)
    first_kind, _, _, first_short, _ = chosen[0]
    values = {
        "name": name, "package": package, "dist": dist, "title": title, "summary": summary,
        "first_kind": first_kind, "first_short": first_short,
        "kinds_text": ", ".join(kinds),
        "table": "\n".join(f"| {kind} | `{name}:{short}` | {about} |"
                           for kind, _, _, short, about in chosen),
        "layout": "\n".join(f"- `{package}/{module}.py`: `{cls}`, {about}."
                            for _, module, cls, _, about in chosen),
        "dcgan_note": ("\n\nThe recipe trains with the DCGAN networks of the `ganforge-dcgan` "
                       "plugin for the networks this plugin does not provide." if dcgan else ""),
        "imports": "\n".join(f"    from .{module} import {cls}"
                             for _, module, cls, _, _ in sorted(chosen, key=lambda c: c[1])),
        "registrations": "\n".join(f'    registry.register("{kind}", "{short}", {cls})'
                                   for kind, _, cls, short, _ in chosen),
        "tables": tables,
        "component_list": "\n".join(f'    ("{kind}", "{short}"),'
                                    for kind, _, _, short, _ in chosen),
        "recipe_skip": ('    if ("generator", "dcgan:dcgan") not in registry:\n'
                        '        pytest.skip("the recipe uses the dcgan plugin '
                        '(ganforge-dcgan), which is not installed")\n' if dcgan else ""),
    }
    files = {
        "pyproject.toml": PYPROJECT.substitute(values),
        "README.md": README.substitute(values),
        ".gitignore": GITIGNORE,
        f"{package}/__init__.py": INIT.substitute(values),
        f"{package}/plugin.py": PLUGIN.substitute(values),
        f"{package}/recipes/{name}_quick.toml": RECIPE.substitute(values),
        "tests/test_contract.py": TEST_CONTRACT.substitute(values),
    }
    for _, module, _, _, _ in chosen:
        kind = next(k for k, info in COMPONENTS.items() if info[0] == module)
        files[f"{package}/{module}.py"] = SOURCES[kind]
    return files
