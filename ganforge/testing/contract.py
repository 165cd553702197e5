"""``check_component``, ``check_plugin`` and ``check_training``: the contract a component
of each kind must keep, checked the way the trainer uses it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..core.interfaces import ImageSpec, is_conditional, loss_takes_labels
from ..plugins import Plugins
from . import augment_checks as ac
from . import component_checks as cc
from . import network_checks as nc
from . import regularizer_checks as rc
from .loading import RegistryLike, as_plugins, plugin_entries
from .networks import PARTNER
from .params_checks import check_params, check_validators, params_mapping, structure
from .report import CheckFailed, ContractReport, Runner, SkipCheck
from .training import train_and_resume

#: Image sizes and channel counts networks are built for; those a network refuses (with
#: a ganforge error or ValueError) are left out, and at least one must build.
SIZES: tuple[int, ...] = (16, 24, 32, 48, 64)
CHANNELS: tuple[int, ...] = (1, 3, 4)
#: The torch.compile backend of the compile check (no code generation: fast on a CPU).
COMPILE_BACKEND = "aot_eager"

#: The checks of each kind, in the order they run (names for ``skip=``).
CHECKS: dict[str, tuple[str, ...]] = {
    "generator": ("params", "validators", "specs", "output", "latent", "labels", "bf16",
                  "channels_last", "compile", "determinism", "state_dict", "gradients",
                  "component_state", "figures", "training"),
    "discriminator": ("params", "validators", "specs", "output", "labels", "bf16",
                      "channels_last", "compile", "determinism", "state_dict", "gradients",
                      "component_state", "figures", "training"),
    "loss": ("params", "validators", "loss_values", "gradients", "bf16", "labels",
             "determinism", "component_state", "figures", "training"),
    "optimizer": ("params", "validators", "optimizer_step", "determinism",
                  "component_state", "figures", "training"),
    "scheduler": ("params", "validators", "factor", "determinism", "component_state",
                  "figures", "training"),
    "regularizer": ("params", "validators", "penalty", "gradients", "determinism",
                    "component_state", "figures", "training"),
    "augment": ("params", "validators", "output", "gradients", "determinism",
                "component_state", "figures", "training"),
    "dataset": ("params", "validators", "image_spec", "items", "determinism",
                "component_state", "figures", "training"),
    "metric": ("params", "validators", "metric_params", "score", "determinism",
               "component_state", "figures"),
    "extractor": ("params", "validators", "features", "determinism", "component_state",
                  "figures"),
    "callback": ("params", "validators", "state_dict"),
}
#: Kinds trained end to end by default (``train=None``).
TRAINED_BY_DEFAULT = ("generator", "discriminator", "loss", "optimizer", "scheduler",
                      "regularizer", "augment")


def check_component(kind: str, name: str, *, registry: RegistryLike = None,
                    params: Any = None, train: bool | None = None, skip: Iterable[str] = (),
                    sizes: Iterable[int] = SIZES, channels: Iterable[int] = CHANNELS,
                    classes: int = nc.CLASSES, compile_backend: str = COMPILE_BACKEND,
                    training_recipe: Mapping[str, Any] | None = None,
                    run_dir: str | Path | None = None) -> ContractReport:
    """Check component ``name`` (``<plugin>:<name>`` or short) of ``kind`` against its
    kind's contract; every check runs, and one ``AssertionError`` lists each failed check
    as ``<kind> '<name>' [<check>]: <why>``. Returns the :class:`ContractReport` (passed
    and skipped checks) when none failed.

    ``registry``: a :class:`~ganforge.Registry` or :class:`~ganforge.plugins.Plugins`
    (e.g. :func:`plugin_registry`); None loads the installed plugins. ``params``: the
    component's params (a mapping as in a recipe table, or a ``Params`` instance); None:
    the defaults. ``train``: run the end-to-end resume check (default: for generators,
    discriminators, losses, optimizers and schedulers). ``skip``: names of checks not to
    run (see :data:`CHECKS`). ``sizes``/``channels``: image specs networks are built for,
    with ``classes`` classes (what a conditional network is built and called with).
    ``training_recipe``: tables merged over the training check's recipe (a component whose
    ``requirements`` the kit's tiny run does not meet). ``run_dir``: keep the training
    check's runs there (default: a temporary directory).
    """
    report = run_checks(kind, name, registry=registry, params=params, train=train,
                        skip=skip, sizes=sizes, channels=channels, classes=classes,
                        compile_backend=compile_backend, training_recipe=training_recipe,
                        run_dir=run_dir)
    return report.raise_for_failures()


def check_plugin(plugin: str, *, registry: RegistryLike = None,
                 params: Mapping[tuple[str, str], Any] | None = None,
                 train: bool | None = None, skip: Iterable[str] = (),
                 **options: Any) -> list[ContractReport]:
    """:func:`check_component` for every component ``plugin`` registers (``ganforge`` or
    ``builtins``: the built-ins), all of them before failing; one ``AssertionError`` lists
    every failed check of every component.

    ``params`` maps ``(kind, name)`` (short or qualified name) to that component's params;
    ``options`` are passed on to :func:`check_component`."""
    plugins = as_plugins(registry)
    entries = plugin_entries(plugins.registry, plugin)
    if not entries:
        loaded = ", ".join(sorted({r.name for r in plugins.records})) or "none"
        raise CheckFailed(f"plugin {plugin!r} registers no component in this registry "
                          f"(plugins loaded: {loaded}; see plugin_registry)")
    given = dict(params or {})
    reports = []
    for entry in entries:
        name = entry.qualified
        entry_params = given.get((entry.kind, name), given.get((entry.kind, entry.name)))
        reports.append(run_checks(entry.kind, name, registry=plugins, params=entry_params,
                                  train=train, skip=skip, **options))
    failed = [r for r in reports if not r.ok]
    if failed:
        count = sum(len(r.failures) for r in failed)
        raise CheckFailed("\n".join(
            [f"plugin {plugin!r}: {count} contract check{'s' if count != 1 else ''} failed "
             f"in {len(failed)} of {len(reports)} components"]
            + [line for r in failed for line in r.lines()]))
    return reports


def check_training(recipe: Mapping[str, Any] | str | Path | None = None, *,
                   overrides: Iterable[str] = (), registry: RegistryLike = None,
                   steps: int = 4, resume_at: int = 2,
                   run_dir: str | Path | None = None) -> None:
    """Train a tiny run ``steps`` steps straight and again from its checkpoint at step
    ``resume_at`` with a resume; the final checkpoints must be identical.

    ``recipe`` is a table (``{"loss": {"use": "my_plugin:least_squares"}}``) or a TOML
    file, merged over :data:`ganforge.testing.training.BASE_RECIPE` (the kit's MLP
    networks, 16x16 ``synthetic`` images, batch 4, CPU, fp32); ``overrides`` are
    ``--set`` strings applied after it. Raises ``AssertionError``
    (``recipe '<recipe>' [training]: ...``)."""
    label = str(recipe) if isinstance(recipe, str | Path) else "table"
    report = ContractReport("recipe", label)
    Runner(report).run("training", train_and_resume, recipe, overrides=overrides,
                       registry=registry, steps=steps, resume_at=resume_at, run_dir=run_dir)
    report.raise_for_failures()


def run_checks(kind: str, name: str, *, registry: RegistryLike = None, params: Any = None,
               train: bool | None = None, skip: Iterable[str] = (),
               sizes: Iterable[int] = SIZES, channels: Iterable[int] = CHANNELS,
               classes: int = nc.CLASSES, compile_backend: str = COMPILE_BACKEND,
               training_recipe: Mapping[str, Any] | None = None,
               run_dir: str | Path | None = None) -> ContractReport:
    """:func:`check_component` without raising: the report of every check."""
    if kind not in CHECKS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(CHECKS)}")
    plugins = as_plugins(registry)
    entry = plugins.registry.entry(kind, name)
    use = entry.qualified  # what the training recipe writes: never ambiguous
    report = ContractReport(kind, name)
    runner = Runner(report, skip)
    train = kind in TRAINED_BY_DEFAULT if train is None else train
    case = _Case(kind, use, entry.cls, params, plugins, runner, train, run_dir,
                 training_recipe)
    # Seeds set by the checks stay inside them: the caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        runner.run("params", check_params, entry.cls)
        try:
            case.params = structure(plugins.registry, kind, use, params)
        except SkipCheck as reason:
            runner.cannot_run(CHECKS[kind], str(reason))
            return report
        except Exception as error:
            if "params" in report.passed:
                report.passed.remove("params")
            report.failures["params"] = (f"the params {params!r} do not structure: "
                                         f"{' '.join(str(error).split())}")
            runner.cannot_run(CHECKS[kind], "no params to build the component with")
            return report
        runner.run("validators", check_validators, case.params)
        {"generator": case.network, "discriminator": case.network, "loss": case.loss,
         "optimizer": case.optimizer, "scheduler": case.scheduler, "dataset": case.dataset,
         "metric": case.metric, "extractor": case.extractor,
         "regularizer": case.regularizer, "callback": case.callback,
         "augment": case.augment}[kind](list(sizes), list(channels), classes, compile_backend)
    return report


class _Case:
    """One component under test: its class, params and where its checks are recorded."""

    def __init__(self, kind: str, use: str, cls: type, given: Any, plugins: Plugins,
                 runner: Runner, train: bool, run_dir: str | Path | None,
                 training_recipe: Mapping[str, Any] | None) -> None:
        self.kind, self.use, self.cls, self.given = kind, use, cls, given
        self.plugins, self.runner, self.train, self.run_dir = plugins, runner, train, run_dir
        self.training_recipe = dict(training_recipe or {})
        self.params: Any = None

    def make(self) -> Any:
        return self.cls(self.params)

    def table(self) -> dict[str, Any]:
        """The component's recipe table."""
        return {"use": self.use, **params_mapping(self.given)}

    def training(self, recipe: dict[str, Any]) -> None:
        if not self.train:
            self.runner.report.skipped["training"] = "train=False"
            return
        from ..recipe.loading import merge

        self.runner.run("training", train_and_resume, merge(recipe, self.training_recipe),
                        registry=self.plugins, run_dir=self.run_dir)

    def state(self, make: Callable[[], Any], exercise: Callable[[Any], Any]) -> None:
        def used(component: Any) -> None:
            for step in (1, 2, 3):
                component.on_step(step)
            exercise(component)

        self.runner.run("component_state", cc.check_component_state, make, used)
        self.runner.run("figures", cc.check_figures, make, used)

    # -- kinds --------------------------------------------------------------------------

    def network(self, sizes: list[int], channels: list[int], classes: int,
                backend: str) -> None:
        run, kind = self.runner.run, self.kind
        built = run("specs", nc.check_specs, self.cls, self.params, sizes, channels, classes)
        if not built:
            self.runner.cannot_run(CHECKS[kind], "no image spec was built")
            return
        main = nc.primary(built)
        self.runner.report.details["specs"] = ", ".join(
            f"{b.spec.channels}x{b.spec.size}x{b.spec.size}" for b in built) + (
            f" ({classes} classes)" if is_conditional(main.network) else "")
        run("output", nc.check_output, kind, built)
        if kind == "generator":
            run("latent", nc.check_latent, main)
        run("labels", nc.check_labels, kind, main)
        run("bf16", nc.check_bf16, kind, main)
        run("channels_last", nc.check_channels_last, kind, main)
        run("compile", nc.check_compile, kind, main, backend)
        run("determinism", nc.check_determinism, self.cls, self.params, main.spec)
        run("state_dict", nc.check_state_dict, kind, self.cls, self.params, main.spec)
        run("gradients", nc.check_gradients, kind, main)

        def exercise(network: Any) -> None:
            x, y = nc.inputs(kind, network, main.spec)
            with torch.no_grad():
                nc.forward(network, x, y)

        self.state(lambda: nc.build(self.cls, self.params, main.spec, seed=0), exercise)
        spec = main.spec
        head = getattr(main.network, "aux_classifier", False) is True
        classes = spec.classes if is_conditional(main.network) or head else 0
        recipe: dict[str, Any] = {kind: self.table(), "dataset": {
            "use": "synthetic", "image_size": spec.size, "channels": spec.channels,
            "classes": classes}}
        if head:  # an auxiliary classifier head is trained by the loss that reads it
            recipe["loss"] = {"use": "ganforge:aux_classifier"}
        self.training(recipe)

    def fresh(self, check: Callable[[Any], None]) -> Callable[[], None]:
        """``check`` on a new instance, built inside the check (a constructor that raises
        fails the check instead of the whole run)."""
        return lambda: check(self.make())

    def loss(self, *_: Any) -> None:
        run = self.runner.run
        run("loss_values", self.fresh(cc.check_loss_values))
        run("gradients", self.fresh(cc.check_loss_gradients))
        run("bf16", self.fresh(cc.check_loss_bf16))
        run("labels", self.fresh(cc.check_loss_labels))
        run("determinism", cc.check_loss_determinism, self.make)
        self.state(self.make, cc.exercise_loss)
        takes = loss_takes_labels(self.cls)
        recipe: dict[str, Any] = {"loss": self.table()}
        if takes or getattr(self.cls, "needs_labels", False):
            recipe["dataset"] = {"use": "synthetic", "classes": 3}
        if takes:
            recipe["generator"] = {"use": PARTNER, "latent_dim": 8, "hidden": 16,
                                   "conditional": True}
            recipe["discriminator"] = {"use": PARTNER, "hidden": 16, "conditional": True}
        if getattr(self.cls, "reads_class_logits", False):
            recipe.setdefault("discriminator", {"use": PARTNER, "hidden": 16})
            recipe["discriminator"]["aux_classifier"] = True
        self.training(recipe)

    def regularizer(self, *_: Any) -> None:
        run = self.runner.run
        run("penalty", self.fresh(rc.check_penalty))
        run("gradients", self.fresh(rc.check_penalty_gradients))
        run("determinism", rc.check_penalty_determinism, self.make)
        self.state(self.make, rc.exercise_regularizer)
        self.training({"regularizers": {"checked": self.table()}})

    def augment(self, *_: Any) -> None:
        run = self.runner.run
        run("output", self.fresh(ac.check_augment_output))
        run("gradients", self.fresh(ac.check_augment_gradients))
        run("determinism", ac.check_augment_determinism, self.make)
        self.state(self.make, ac.exercise_augment)
        self.training({"augment": self.table()})

    def optimizer(self, *_: Any) -> None:
        self.runner.run("optimizer_step", self.fresh(cc.check_optimizer_step))
        self.runner.run("determinism", cc.check_optimizer_determinism, self.make)
        self.state(self.make, cc.exercise_optimizer)
        self.training({"optimizer": {"generator": self.table(),
                                     "discriminator": self.table()}})

    def scheduler(self, *_: Any) -> None:
        self.runner.run("factor", self.fresh(cc.check_scheduler_factor))
        self.runner.run("determinism", cc.check_scheduler_determinism, self.make)
        self.state(self.make, lambda s: [s.factor(step, 10) for step in (1, 2, 3)])
        self.training({"schedule": {"generator": self.table(),
                                    "discriminator": self.table()}})

    def dataset(self, *_: Any) -> None:
        run = self.runner.run
        spec: ImageSpec | None = run("image_spec", cc.check_dataset_spec, self.cls,
                                     self.params)
        if spec is None:
            self.runner.cannot_run(CHECKS["dataset"], "image_spec_for failed")
            return
        given = self.given is not None
        dataset = run("items", lambda: _checked_items(self.cls, self.params, given, spec))
        if dataset is None:
            self.runner.cannot_run(CHECKS["dataset"], self.runner.report.skipped.get(
                "items", "items failed"))
            return
        run("determinism", cc.check_dataset_determinism, self.make, spec)
        self.state(self.make, cc.exercise_dataset)
        self.training({"dataset": self.table()})

    def metric(self, *_: Any) -> None:
        run = self.runner.run
        run("metric_params", cc.check_metric_params, self.params)
        run("score", self.fresh(cc.check_metric_score))
        run("determinism", cc.check_metric_determinism, self.make)
        self.state(self.make, cc.exercise_metric)


    def extractor(self, sizes: list[int], channels: list[int], *_: Any) -> None:
        run = self.runner.run
        run("features", self.fresh(lambda e: cc.check_extractor_features(e, sizes, channels)))
        run("determinism", cc.check_extractor_determinism, self.make, sizes[0], channels[-1])
        self.state(self.make, cc.exercise_extractor)

    def callback(self, *_: Any) -> None:
        self.runner.run("state_dict", _check_callback_state, self.make)


def _check_callback_state(make: Callable[[], Any]) -> None:
    """A callback's ``state_dict()`` survives JSON (tensors aside) and a fresh instance
    given it through ``load_state_dict`` returns the same."""
    import json

    state = make().state_dict()
    if not state:
        raise SkipCheck("stateless (state_dict() is empty)")
    values = {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}
    try:
        json.dumps(values, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CheckFailed(f"state_dict() values are not JSON-able: {error}") from error
    fresh = make()
    fresh.load_state_dict(state)
    back = fresh.state_dict()
    if back.keys() != state.keys() or any(
            not torch.equal(back[k], v) if isinstance(v, torch.Tensor) else back[k] != v
            for k, v in state.items()):
        raise CheckFailed("state does not round-trip through load_state_dict(state_dict())")


def _checked_items(cls: type, params: Any, given: bool, spec: ImageSpec) -> Any:
    dataset = cc.build_dataset(cls, params, given)
    cc.check_dataset_items(dataset, spec)
    return dataset
