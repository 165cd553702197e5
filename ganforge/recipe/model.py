"""The typed form of a recipe: run parameters plus one chosen component per table."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from ..core.errors import RecipeError, UnknownComponentError
from ..core.params import at_most, param
from ..core.registry import Registry, split_qualified
from ..core.structuring import Problems, key_path, structure_params, unstructure_params
from ..core.suggest import did_you_mean
from ..io.limits import MAX_STEPS
from .loading import Table, apply_overrides, load_raw, merge
from .plugin_settings import at_defaults, build_plugin_settings
from .tables import COMPONENT_TABLES, DEFAULTS, LABEL, PER_NETWORK, TOP_LEVEL, build_labelled

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not _DEVICE.match(value):
        raise ValueError(f"'{attribute.name}' must be auto, cpu, cuda, cuda:N or mps: {value!r}")


_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)

# Ceilings of the [run] and [eval] numbers. A recipe (or a checkpoint's embedded recipe) is
# untrusted input: without a ceiling, num_workers = 10**20 forks until the machine is
# killed and prefetch_factor = 10**8 fills its memory. Each ceiling lies far above any
# real use and below the point where the number does harm.
MAX_BATCH_SIZE = 2**16
MAX_NUM_WORKERS = 256
MAX_PREFETCH_FACTOR = 32
MAX_SAMPLE_COUNT = 1024
MAX_KEEP_LAST = 10_000
MAX_D_STEPS = 100
MAX_ROLLBACKS = 1000
#: Seeds are below 2**32: NumPy's legacy seeding takes no more. Every stream a run draws
#: from is seeded by :func:`ganforge.core.seeds.derive_seed`, which maps any seed into
#: ``torch.Generator.manual_seed``'s range.
SEED_LIMIT = 2**32


def _counted(limit: int) -> list:
    """A count that must be at least 1 and at most ``limit``."""
    return [_positive, at_most(limit)]


def _up_to(limit: int) -> list:
    """A count that may be 0 and is at most ``limit``."""
    return [_non_negative, at_most(limit)]


@attrs.frozen
class RunParams:
    """The ``[run]`` table: how long and how the trainer runs."""

    steps: int = param(2000, "training steps (one D update and one G update each)",
                       validator=_counted(MAX_STEPS))
    batch_size: int = param(128, "images per batch (paper: 128)",
                            validator=_counted(MAX_BATCH_SIZE))
    seed: int = param(0, "seed of weights, latents and data order (0 to 2**32 - 1)",
                      validator=_up_to(SEED_LIMIT - 1))
    device: str = param("auto", "auto (CUDA when present), cpu, cuda or cuda:N",
                        validator=_device)
    num_workers: int = param(0, "data-loader worker processes",
                             validator=_up_to(MAX_NUM_WORKERS))
    pin_memory: bool | None = param(None, "pin host batches; unset: on when training on CUDA")
    persistent_workers: bool = param(True, "keep loader workers alive between epochs")
    prefetch_factor: int = param(2, "batches each worker loads ahead",
                                 validator=_counted(MAX_PREFETCH_FACTOR))
    log_every: int = param(50, "steps between reading losses back from the device",
                           validator=_counted(MAX_STEPS))
    sample_every: int = param(500, "steps between sample grids", validator=_counted(MAX_STEPS))
    checkpoint_every: int = param(1000, "steps between checkpoints",
                                  validator=_counted(MAX_STEPS))
    keep_last: int = param(3, "checkpoints kept by rotation", validator=_counted(MAX_KEEP_LAST))
    sample_count: int = param(64, "images in each sample grid",
                              validator=_counted(MAX_SAMPLE_COUNT))
    d_steps: int = param(1, "discriminator updates per generator update",
                         validator=_counted(MAX_D_STEPS))
    precision: str = param("auto", "'auto' (bf16 autocast where the hardware has bf16, "
                           "else fp32; fp16 on a CUDA GPU without bf16 when allow_fp16), "
                           "'fp32', 'bf16' or 'fp16' (float16 autocast with loss scaling)",
                           validator=attrs.validators.in_(["auto", "fp32", "bf16", "fp16"]))
    allow_fp16: bool = param(False, "let precision = 'auto' pick fp16 (with loss scaling) on "
                             "a CUDA GPU without bf16 (V100, T4); else auto picks fp32 there")
    fake_labels: str = param("uniform", "classes of the fake images of a conditional run: "
                             "'uniform' (drawn uniformly, seeded) or 'real' (the real "
                             "batch's labels, so the dataset's class frequencies)",
                             validator=attrs.validators.in_(["uniform", "real"]))
    channels_last: bool | None = param(None, "NHWC memory format; unset: on, "
                                        "except with compile on CUDA")
    compile: bool = param(False, "torch.compile G and D (minutes of compile time first)")
    cuda_graphs: bool = param(False, "replay the compiled G and D as CUDA graphs "
                              "(torch.compile mode 'reduce-overhead'); needs run.compile "
                              "and a CUDA device")
    graph: str = param("off", "'step': compile the whole training step (D and G updates, "
                       "Adam steps, EMA, loss sums, divergence watch) as one graph, replayed "
                       "as a CUDA graph on CUDA; 'off': eager (or run.compile per network)",
                       validator=attrs.validators.in_(["off", "step"]))
    sync_batchnorm: bool = param(False, "under torchrun: BatchNorm statistics over all "
                                 "processes (SyncBatchNorm, CUDA only)")
    on_divergence: str = param("stop", "a non-finite loss or gradient: 'stop' the run, or "
                               "'rollback' to the last checkpoint and go on with new batches",
                               validator=attrs.validators.in_(["stop", "rollback"]))
    max_rollbacks: int = param(3, "rollbacks allowed before the run stops anyway",
                               validator=_up_to(MAX_ROLLBACKS))
    out: str | None = param(None, "run directory; unset: runs/<recipe name>")


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), counted
    as PyTorch's DataLoader counts them for its own warning."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def run_notes(run: RunParams, cpus: int | None = None) -> list[str]:
    """One-line notes about ``run`` worth telling the user when the run starts (not errors:
    the run works, but perhaps not as meant). ``cpus`` defaults to :func:`usable_cpus`."""
    cpus = usable_cpus() if cpus is None else cpus
    notes = []
    if run.num_workers > cpus:
        notes.append(f"run.num_workers = {run.num_workers} is more than the {cpus} CPU "
                     f"core{'s' if cpus != 1 else ''} this process may use; workers will "
                     f"share cores (run.num_workers = {cpus} or fewer avoids that)")
    return notes


@attrs.frozen
class EvalParams:
    """The ``[eval]`` table: metrics computed during training (``[eval.metrics.<label>]``)."""

    every: int = param(0, "steps between evaluations (and at the last step); 0: never",
                       validator=_up_to(MAX_STEPS))
    best: str | None = param(None, "label of the metric that picks checkpoints/best-<label>; "
                             "unset: the first metric")


_unit = [attrs.validators.ge(0.0), attrs.validators.lt(1.0)]


@attrs.frozen
class EMAParams:
    """The ``[ema]`` table: an exponential moving average of G's weights, used for
    sampling and evaluation (Karras et al. 2018; Yazici et al. 2019).

    After each G update the average moves towards G: ``avg = beta * avg + (1 - beta) * G``
    with ``beta = decay``. With ``rampup`` (StyleGAN2-ADA's ``ema_rampup``; on by default),
    the average's half-life, counted in images, is at most ``rampup`` times the images
    trained so far, so the initial weights are forgotten quickly (without it, 60% of the
    average is still the initial G after 500 steps at ``decay = 0.999``). Before step
    ``start`` the average is a copy of G. BatchNorm buffers (running statistics) are copied
    from G, not averaged."""

    enabled: bool = param(False, "keep an EMA of the generator's weights")
    decay: float = param(0.999, "beta per G update (half-life: ln 0.5 / ln decay updates)",
                         validator=_unit)
    start: int = param(0, "steps during which the average is a plain copy of G",
                       validator=_up_to(MAX_STEPS))
    rampup: float = param(0.05, "cap the half-life at this many times the images trained "
                          "so far (StyleGAN2-ADA's ema_rampup); 0: no ramp-up",
                          validator=[attrs.validators.ge(0.0), at_most(1.0)])


@attrs.frozen
class ComponentChoice:
    """One component table: the qualified ``name`` (``plugin:name``) of the component of
    ``kind`` it uses, and its structured params."""

    kind: str
    name: str
    params: Any
    path: str

    @property
    def short(self) -> str:
        """The component's name without its plugin (``bce`` for ``ganforge:bce``)."""
        return split_qualified(self.name)[1]

    def create(self, registry: Registry, **deps: Any) -> Any:
        """Instantiate the component from ``registry``."""
        return registry.create(self.kind, self.name, self.params, **deps)

    def to_table(self) -> Table:
        """``{"use": name, **params}`` with every default filled in."""
        return {"use": self.name, **unstructure_params(self.params)}


# The recipe's tables live in .tables (re-exported here under their old names).
_TOP_LEVEL = TOP_LEVEL
REGULARIZER_LABEL = LABEL
_PER_NETWORK = PER_NETWORK


@attrs.frozen
class Recipe:
    """A fully resolved, validated recipe."""

    run: RunParams
    components: dict[str, ComponentChoice]
    source: str | None = None
    eval: EvalParams = attrs.field(factory=EvalParams)
    ema: EMAParams = attrs.field(factory=EMAParams)
    #: ``[plugins.<name>]`` tables: each plugin's own settings, structured by the Params
    #: class it registered (:meth:`~ganforge.core.registry.Registry.register_settings`);
    #: every plugin with settings is here, at its defaults when the recipe has no table.
    plugins: dict[str, Any] = attrs.field(factory=dict)
    #: Unmet requirements that components declared as warnings (one line each).
    warnings: tuple[str, ...] = ()

    @property
    def metrics(self) -> dict[str, ComponentChoice]:
        """``[eval.metrics.<label>]`` tables by label, in recipe order."""
        prefix = "eval.metrics."
        return {k[len(prefix):]: v for k, v in self.components.items() if k.startswith(prefix)}

    @property
    def regularizers(self) -> dict[str, ComponentChoice]:
        """``[regularizers.<label>]`` tables by label, in recipe order."""
        prefix = "regularizers."
        return {k[len(prefix):]: v for k, v in self.components.items() if k.startswith(prefix)}

    @property
    def callbacks(self) -> dict[str, ComponentChoice]:
        """``[callbacks.<label>]`` tables by label, in recipe order."""
        prefix = "callbacks."
        return {k[len(prefix):]: v for k, v in self.components.items() if k.startswith(prefix)}

    @property
    def best_metric(self) -> str | None:
        """The label of the metric that picks the best checkpoint, if any metric is set."""
        return self.eval.best or next(iter(self.metrics), None)

    def __getitem__(self, table: str) -> ComponentChoice:
        return self.components[table]

    def to_dict(self) -> Table:
        """The resolved recipe as plain data: every table, every default filled in (every
        plugin's settings included: what ``ganforge_run_started(recipe=...)`` receives)."""
        result: Table = {"run": unstructure_params(self.run),
                         "eval": unstructure_params(self.eval),
                         "ema": unstructure_params(self.ema)}
        if self.plugins:
            result["plugins"] = {name: unstructure_params(settings)
                                 for name, settings in self.plugins.items()}
        for table, choice in self.components.items():
            node = result
            *parents, last = table.split(".", 2 if table.startswith("eval.metrics.") else -1)
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = choice.to_table()
        return result

    def to_toml(self) -> str:
        """The resolved recipe as one flat TOML file (no ``extends``). A plugin's settings
        at their defaults are left out: they read back the same where the plugin is
        installed, and the file (a run's, a checkpoint's) still loads where it is not."""
        table = self.to_dict()
        written = {name: values for name, values in table.get("plugins", {}).items()
                   if not at_defaults(self.plugins[name])}
        if written:
            table["plugins"] = written
        else:
            table.pop("plugins", None)
        return tomli_w.dumps(table)

    def with_overrides(self, overrides: Iterable[str], registry: Registry) -> Recipe:
        """This recipe with ``--set``-style ``overrides`` applied (``use`` changes first, as
        on the command line), validated again; no TOML round trip."""
        from .loading import apply_overrides

        return build_recipe(apply_overrides(self.to_dict(), overrides), registry,
                            source=self.source)

    def notes(self, cpus: int | None = None) -> list[str]:
        """One-line notes to print when a run of this recipe starts (see :func:`run_notes`),
        and the components' unmet requirements that are warnings."""
        return run_notes(self.run, cpus) + list(self.warnings)


def _lookup(table: Mapping[str, Any], dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def build_recipe(table: Mapping[str, Any], registry: Registry,
                 source: str | None = None) -> Recipe:
    """Validate a merged recipe table, reporting every problem at once."""
    table = merge(DEFAULTS, table)
    problems: Problems = []
    for key in table:
        if key not in _TOP_LEVEL:
            problems.append((key_path("$", key), f"unknown table{did_you_mean(key, _TOP_LEVEL)}"))
    for per_network in _PER_NETWORK:
        sub = table.get(per_network)
        if isinstance(sub, Mapping):
            for key in sub:
                if key not in ("generator", "discriminator"):
                    hint = did_you_mean(key, ("generator", "discriminator"))
                    problems.append((key_path(f"$.{per_network}", key), f"unknown table{hint}"))

    run: RunParams | None = None
    try:
        run = structure_params(RunParams, table.get("run", {}), "$.run")
    except RecipeError as exc:
        problems.extend(exc.problems)
    ema: EMAParams | None = None
    try:
        ema = structure_params(EMAParams, table.get("ema", {}), "$.ema")
    except RecipeError as exc:
        problems.extend(exc.problems)

    components: dict[str, ComponentChoice] = {}
    shadowed: list[str] = []  # short names several plugins register: warnings
    for dotted, kind in COMPONENT_TABLES.items():
        path = f"$.{dotted}"
        data = _lookup(table, dotted)
        if data is None:
            problems.append((path, f"missing table [{dotted}] (add one with use = \"...\")"))
            continue
        if not isinstance(data, Mapping):
            problems.append((path, f"expected a table, got {type(data).__name__}"))
            continue
        name = data.get("use")
        if not isinstance(name, str):
            problems.append((f"{path}.use", f"required: the registered {kind} name"))
            continue
        if note := registry.shadowing(kind, name):
            shadowed.append(f"{path}.use: {note}")
        try:
            name = registry.qualified(kind, name)
        except UnknownComponentError as exc:
            problems.append((f"{path}.use", str(exc)))
            continue
        params = {k: v for k, v in data.items() if k != "use"}
        try:
            components[dotted] = ComponentChoice(
                kind, name, registry.structure(kind, name, params, path), path)
        except RecipeError as exc:
            problems.extend(exc.problems)
    for section in ("regularizers", "callbacks"):
        components.update(build_labelled(section, table.get(section, {}), registry, problems,
                                         ComponentChoice))
    evaluation = _build_eval(table.get("eval", {}), registry, components, problems)
    plugins = build_plugin_settings(table.get("plugins", {}), registry, problems)
    if problems:
        raise RecipeError(problems, source=source)
    assert run is not None and evaluation is not None and ema is not None
    recipe = Recipe(run=run, components=components, source=source, eval=evaluation, ema=ema,
                    plugins=plugins)
    warnings = shadowed + _check_requirements(recipe, registry, problems)
    if problems:
        raise RecipeError(problems, source=source)
    return attrs.evolve(recipe, warnings=tuple(warnings)) if warnings else recipe


def _check_requirements(recipe: Recipe, registry: Registry, problems: Problems) -> list[str]:
    """Ask every component what it needs from ``recipe``: unmet requirements become
    problems at the component's table, or warnings; returns the warnings."""
    warnings = []
    for table, choice in recipe.components.items():
        cls = registry.get(choice.kind, choice.name)
        try:
            needs = list(cls.requirements(choice.params, recipe))
        except Exception as exc:  # a plugin's bug: name it, as a problem of its table
            problems.append((choice.path, f"{choice.name!r}: requirements() raised "
                                          f"{type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        for need in needs:
            if need.met:
                continue
            if need.warn:
                warnings.append(need.message(table, choice.name))
            else:
                problems.append((choice.path, need.message(table, choice.name)))
    return warnings


def _check_extractor(params: Any, registry: Registry, path: str, problems: Problems) -> None:
    """A metric's feature extractor is registered and its params structure."""
    if not hasattr(params, "extractor_table"):
        return
    try:
        registry.structure("extractor", params.extractor, params.extractor_table(),
                           f"{path}.extractor_params")
    except UnknownComponentError as exc:
        problems.append((f"{path}.extractor", str(exc)))
    except RecipeError as exc:
        problems.extend(exc.problems)


def _build_eval(data: Any, registry: Registry, components: dict[str, ComponentChoice],
                problems: Problems) -> EvalParams | None:
    """Structure ``[eval]``: its own params plus one metric component per label."""
    if not isinstance(data, Mapping):
        problems.append(("$.eval", f"expected a table, got {type(data).__name__}"))
        return None
    metrics = data.get("metrics", {})
    if not isinstance(metrics, Mapping):
        problems.append(("$.eval.metrics", "expected a table of [eval.metrics.<label>] tables"))
        metrics = {}
    evaluation = None
    try:
        evaluation = structure_params(EvalParams, {k: v for k, v in data.items()
                                                   if k != "metrics"}, "$.eval")
    except RecipeError as exc:
        problems.extend(exc.problems)
    for label, metric in metrics.items():
        path = key_path("$.eval.metrics", label)
        if not isinstance(metric, Mapping) or not isinstance(metric.get("use"), str):
            problems.append((f"{path}.use", "required: the registered metric name"))
            continue
        try:
            name = registry.qualified("metric", metric["use"])
            params = {k: v for k, v in metric.items() if k != "use"}
            structured = registry.structure("metric", name, params, path)
            components[f"eval.metrics.{label}"] = ComponentChoice("metric", name, structured,
                                                                  path)
        except UnknownComponentError as exc:
            problems.append((f"{path}.use", str(exc)))
            continue
        except RecipeError as exc:
            problems.extend(exc.problems)
            continue
        _check_extractor(structured, registry, path, problems)
    if evaluation is not None:
        if evaluation.every and not metrics:
            problems.append(("$.eval.every", "set, but no [eval.metrics.<label>] table"))
        if evaluation.best is not None and evaluation.best not in metrics:
            problems.append(("$.eval.best", f"no metric labelled {evaluation.best!r}"
                             f"{did_you_mean(evaluation.best, metrics)}"))
    return evaluation


def load_recipe(path: str | Path, registry: Registry, overrides: Iterable[str] = ()) -> Recipe:
    """Load ``path`` with its ``extends`` chain, apply ``--set`` overrides and validate."""
    source = str(path)
    try:
        table = apply_overrides(load_raw(path), overrides)
        return build_recipe(table, registry, source=source)
    except RecipeError as exc:
        if exc.source is None:
            raise RecipeError(exc.problems, source=source) from None
        raise
