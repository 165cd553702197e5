"""``ganforge.evaluate``: score a checkpoint's generator (what ``ganforge eval`` does).

A checkpoint may come from anyone, and its embedded recipe names the dataset read. So a
dataset taken from a checkpoint never downloads (``download`` is forced off), can be
changed with ``dataset_overrides`` (``"dataset.root=PATH"``), and ``note`` is told which
folder is read (:func:`ganforge.training.experiment_loading.checkpoint_dataset`).

``fake_images`` scores saved images (a folder or an ``.npz``) against the real images of
``dataset`` instead of a checkpoint (:mod:`ganforge.api.evaluate_images`).

Every argument is checked before the registry is loaded or the checkpoint read. Errors
are ganforge's (:class:`~ganforge.core.errors.UsageError`, ...); the messages name the options
of ``ganforge eval`` (``--n``, ``--seeds``), which the arguments mirror.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..core.errors import UsageError
from .common import Note

if TYPE_CHECKING:
    from ..core.interfaces import Metric
    from ..core.registry import Registry
    from ..evaluation.results import ClassResults, MetricResult

#: Most seeds one evaluation takes: every seed is a full evaluation.
MAX_SEEDS = 100
#: The Inception extractor's names: ``resize`` is its option.
_INCEPTION = ("inception", "ganforge:inception")


@attrs.frozen
class EvaluationResult:
    """What :func:`evaluate` scored: the checkpoint and its step, which generator
    (``"ema"`` or ``"raw"``), the dataset table read (``download`` off) and whether the
    generator is conditional; then, by mode, each metric's :class:`MetricResult`
    (``results``), each metric scored class by class (``per_class``), or one summary per
    metric over the evaluation ``seeds`` (``per_seed``: ``value`` the mean, ``std`` (n - 1),
    ``seeds`` and each seed's value and protocol). ``recorded`` is the file the scores were
    appended to (``record_problem`` why not, when that failed); ``reference_stats`` the
    .npz written of ``reference_images`` real images. :attr:`scores` is the value of each
    metric, whatever the mode. Saved images (``fake_images``, the folder or .npz given)
    have no ``checkpoint`` or ``step`` (None), ``generator`` ``"images"`` and nothing
    recorded."""

    checkpoint: Path | None
    step: int | None
    generator: str
    dataset: dict[str, Any]
    conditional: bool
    results: tuple[MetricResult, ...] = ()
    per_class: tuple[ClassResults, ...] = ()
    seeds: tuple[int, ...] = ()
    per_seed: tuple[dict[str, Any], ...] = ()
    recorded: Path | None = None
    record_problem: str | None = None
    reference_stats: Path | None = None
    reference_images: int = 0
    fake_images: Path | None = None

    @property
    def scores(self) -> dict[str, float]:
        """Each metric's value by label: the score, the mean over classes (intra-class) or
        the mean over seeds."""
        if self.per_seed:
            return {entry["metric"]: entry["value"] for entry in self.per_seed}
        if self.per_class:
            return {r.label: r.value for r in self.per_class}
        return {r.label: r.value for r in self.results}

    @property
    def std(self) -> dict[str, float]:
        """Each metric's standard deviation (n - 1) over the seeds; empty without seeds."""
        return {entry["metric"]: entry["std"] for entry in self.per_seed}


def registry_of(registry: Registry | Callable[[], Registry] | None) -> Registry:
    """The registry an API function was given: a registry, a function giving one (called
    once the arguments are checked; the command line loads the plugins this way, warning
    about broken ones), or None: the installed plugins."""
    from ..core.registry import Registry

    if registry is None:
        from ..plugins import load_plugins

        return load_plugins().registry
    if isinstance(registry, Registry):
        return registry
    return registry()


def check_image_counts(*options: tuple[str, int | None]) -> None:
    """Refuse (one line naming the option) an image count over the metrics' ceiling
    (:data:`~ganforge.evaluation.metrics.MAX_IMAGES`); None is an option not given."""
    from ..evaluation.metrics import MAX_IMAGES
    from ..sampling import check_count

    for option, value in options:
        if value is not None:
            check_count(value, option, limit=MAX_IMAGES, low=2)


def check_seeds(seeds: Sequence[int], option: str = "--seeds") -> list[int]:
    """``seeds`` checked: 2 to :data:`MAX_SEEDS` different seeds, each a valid seed."""
    from ..sampling import check_seed

    checked = [check_seed(int(seed), option) for seed in seeds]
    if not 2 <= len(checked) <= MAX_SEEDS or len(set(checked)) != len(checked):
        raise UsageError(f"{option} {','.join(map(str, checked))}: give 2 to {MAX_SEEDS} "
                         "different seeds (a standard deviation needs two)")
    return checked


def evaluate(source: str | Path | None = None, metrics: Sequence[str] | None = None, *,
             n: int | None = None, n_real: int | None = None, extractor: str | None = None,
             extractor_params: Mapping[str, Any] | None = None, resize: str | None = None,
             reference_stats: str | Path | None = None, protocol_images: int | None = None,
             save_reference_stats: str | Path | None = None,
             inception_weights: str | Path | None = None, download: bool = False,
             per_class: bool = False, n_per_class: int | None = None, ema: bool = True,
             dataset_overrides: Sequence[str] = (), seeds: Sequence[int] | None = None,
             device: str = "auto", record: bool = True,
             fake_images: str | Path | None = None, dataset: str | Path | None = None,
             registry: Registry | Callable[[], Registry] | None = None,
             note: Note = None) -> EvaluationResult:
    """Score the generator of the checkpoint ``source`` with ``metrics`` (registered
    names, default ``["fid"]``), each score with its protocol.

    ``n``, ``n_real``, ``extractor`` (with ``extractor_params``), ``resize``,
    ``protocol_images``, ``inception_weights`` and ``download`` set every metric's params;
    ``reference_stats`` scores fid against a .npz of mu and sigma instead of the dataset.
    ``per_class`` scores each class on its own (intra-class FID; ``n_per_class`` images
    per class); ``seeds`` scores every metric once per evaluation seed (mean ± std).
    Otherwise the scores are recorded beside the checkpoint (``record``), and
    ``save_reference_stats`` writes the real images' mu and sigma to a .npz. ``ema`` False
    scores the raw G rather than its moving average. ``note`` receives the messages a
    command line prints (the dataset folder read, a protocol that differs from the run's).

    ``fake_images`` (a folder of PNG/JPEG files or an ``.npz``; ``source`` None) scores
    those images instead, against the real images of ``dataset`` (a recipe or a dataset
    name) with ``dataset_overrides`` (``dataset.KEY=VALUE``; ``dataset.use=NAME`` names
    one without ``dataset``); ``n`` defaults to every image given
    (:mod:`ganforge.api.evaluate_images`)."""
    from ..core.interfaces import is_conditional
    from ..evaluation.evaluator import Evaluator
    from ..evaluation.results import aggregate_seeds
    from ..training.building import extractor_builder, resolve_device
    from ..training.experiment_loading import dataset_override_keys, load_experiment
    from .evaluate_images import check_image_options, evaluate_images

    say = note or (lambda _text: None)
    check_image_options(source, fake_images, dataset, per_class, ema)
    names = list(metrics) if metrics is not None else ["fid"]
    check_image_counts(("--n", n), ("--n-real", n_real), ("--n-per-class", n_per_class))
    seed_list = check_seeds(seeds) if seeds is not None else None
    if seed_list is not None and (per_class or save_reference_stats is not None):
        raise UsageError("--seeds scores the whole set once per seed; it does not go with "
                         "--per-class or --save-reference-stats")
    if n_per_class is not None and not per_class:
        raise UsageError("--n-per-class is for --per-class scores; add --per-class")
    reg = registry_of(registry)
    overrides = list(dataset_overrides)
    dataset_override_keys(overrides)  # a wrong override is refused before anything is loaded
    dev = resolve_device(device)
    params = _metric_params(n, n_real, extractor, extractor_params, resize, protocol_images,
                            inception_weights, download, names, reference_stats)
    save_target = _save_target(save_reference_stats, reference_stats, per_class)
    if fake_images is not None:
        return evaluate_images(
            fake_images, lambda n_fake: _metrics(None, names, {"n_fake": n_fake, **params},
                                                 reg, say),
            n=n, dataset=dataset, overrides=overrides, seeds=seed_list,
            save_target=save_target, device=dev, registry=reg)
    assert source is not None
    checkpoint = Path(source)
    built = _metrics(checkpoint, names, params, reg, say)
    uses_real = [m.uses_real_images() for _, m in built.values()]
    if save_target is not None and not any(uses_real):
        raise UsageError("--save-reference-stats: none of these metrics reads real images")
    if per_class:  # refused before the checkpoint is read
        for name, m in built.values():
            if not m.uses_real_images():
                raise UsageError(f"--per-class: metric {name!r} compares with no real images; "
                                 "intra-class scores are for metrics such as fid and kid")
    experiment = load_experiment(checkpoint, reg, dev, dataset_overrides=overrides,
                                 parts={"generator", "dataset"} if any(uses_real) else
                                 {"generator"}, note=note, ema=ema)
    generator, step = experiment.generator, experiment.step
    assert generator is not None
    table = experiment.recipe["dataset"].to_table()
    if "download" in table:
        table["download"] = False
    evaluator = Evaluator(built, experiment.dataset, table, dev, classes=experiment.classes,
                          registry=reg, build_extractor=extractor_builder(reg, dev))
    which = "ema" if experiment.generator_is_ema else "raw"
    scored: dict[str, Any] = {"checkpoint": checkpoint, "step": step, "generator": which,
              "dataset": table, "conditional": is_conditional(generator)}
    if per_class:  # refused in one line for an unconditional G or an unlabelled dataset
        return EvaluationResult(**scored, per_class=tuple(evaluator.run_per_class(
            generator, step, n_per_class=n_per_class, generator_label=which)))
    if seed_list is not None:
        runs = runs_per_seed(evaluator, built, reg, seed_list,
                             lambda: evaluator.run(generator, step, generator_label=which))
        return EvaluationResult(**scored, seeds=tuple(seed_list),
                                per_seed=tuple(aggregate_seeds(runs)))
    results = evaluator.run(generator, step, generator_label=which)
    recorded, problem = _record(checkpoint, step, results) if record else (None, None)
    n_images = 0
    if save_target is not None:
        from ..evaluation.npz_stats import save_reference_npz

        mu, sigma, n_images = evaluator.real_statistics()
        save_reference_npz(save_target, mu.numpy(), sigma.numpy())
    return EvaluationResult(**scored, results=tuple(results), recorded=recorded,
                            record_problem=problem, reference_stats=save_target,
                            reference_images=n_images)


def _metric_params(n: int | None, n_real: int | None, extractor: str | None,
                   extractor_params: Mapping[str, Any] | None, resize: str | None,
                   protocol_images: int | None, inception_weights: str | Path | None,
                   download: bool, names: list[str],
                   reference_stats: str | Path | None) -> dict[str, Any]:
    """The params every metric is given, checked against each other."""
    params: dict[str, Any] = {}
    for key, value in (("n_fake", n), ("n_real", n_real), ("extractor", extractor),
                       ("inception_weights",
                        str(inception_weights) if inception_weights else None),
                       ("resize", resize), ("protocol_images", protocol_images)):
        if value is not None:
            params[key] = value
    if download:
        params["download"] = True
    if extractor_params:
        params["extractor_params"] = dict(extractor_params)
    if resize is not None and (extractor or "inception") not in _INCEPTION:
        raise UsageError(f"--resize is the Inception network's; extractor {extractor!r} "
                         "resizes images its own way")
    if reference_stats is not None:
        bad = [name for name in names if name not in ("fid", "ganforge:fid")]
        if bad:
            raise UsageError(f"--reference-stats is for fid; {', '.join(bad)} need the "
                             "dataset's images (score them in another call)")
        params["reference_stats"] = str(reference_stats)
    return params


def _save_target(save: str | Path | None, reference_stats: str | Path | None,
                 per_class: bool) -> Path | None:
    """Where the reference statistics are to be written, checked; None when not asked."""
    if save is None:
        return None
    target = Path(save)
    if reference_stats is not None or per_class:
        raise UsageError("--save-reference-stats writes the statistics of the dataset's "
                         "images; it does not go with --reference-stats or --per-class")
    if target.suffix != ".npz" or target.is_dir() or not target.parent.is_dir():
        raise UsageError(f"--save-reference-stats {target}: not a .npz file in an existing "
                         "folder (pytorch-fid reads only .npz)")
    return target


def _metrics(checkpoint: Path | None, names: list[str], params: dict[str, Any],
             registry: Registry, say: Callable[[str], None]
             ) -> dict[str, tuple[str, Metric]]:
    """The metrics by name, each with the run's ``protocol_images`` unless given; a note
    for each protocol (extractor, resize) that differs from the run's. Each metric's
    extractor and reference file are checked (one line) before any image is made."""
    from ..training.building import build_metrics

    claimed = _claimed_protocols(checkpoint, names) if checkpoint is not None else {}
    tables = {}
    for name in names:
        own = dict(params)
        if "protocol_images" not in own and claimed.get(name, {}).get("protocol_images"):
            own["protocol_images"] = claimed[name]["protocol_images"]
        tables[name] = (name, own)
    built = build_metrics(tables, registry)
    for name, (_, metric) in built.items():
        for key in ("extractor", "resize"):
            theirs = claimed.get(name, {}).get(key)
            ours = getattr(metric.params, key)
            inception = metric.params.extractor in _INCEPTION
            if theirs is not None and theirs != ours and (key == "extractor" or inception):
                say(f"note: the run's {name} protocol uses {key} = {theirs!r}; this score "
                    f"uses {ours!r} (--{key} {theirs} to match it)")
    for _name, metric in built.values():
        _check_extractor(registry, metric.params)
        metric.reference_file()  # a bad reference_stats file: one line, before any image
    return built


def _params_of(metric: Any) -> dict[str, Any]:
    """A metric's params as the table that made it."""
    from ..core.structuring import unstructure_params

    return dict(unstructure_params(metric.params))


def runs_per_seed(evaluator: Any, built: Mapping[str, tuple[str, Any]], registry: Any,
                  seeds: Sequence[int], run: Callable[[], list[Any]]
                  ) -> list[tuple[int, list[Any]]]:
    """``run()`` once per evaluation seed, the evaluator's metrics (``built``: label ->
    (name, metric)) rebuilt with that ``seed`` each time: ``(seed, results)`` pairs, for
    :func:`aggregate_seeds`."""
    from ..training.building import build_metrics

    runs = []
    for seed in seeds:
        evaluator.metrics = build_metrics(
            {label: (name, {**_params_of(m), "seed": seed}) for label, (name, m) in built.items()},
            registry)
        runs.append((seed, run()))
    return runs


def _record(checkpoint: Path, step: int, results: list[Any]) -> tuple[Path | None, str | None]:
    """Record the scores beside the checkpoint (its model card shows them): the file, or
    why it could not be written (the scores are kept either way)."""
    from ..core.errors import StorageError
    from ..sharing.scores import record_evaluations

    try:
        return record_evaluations(checkpoint, step, results), None
    except StorageError as exc:
        return None, str(exc)


def _check_extractor(registry: Registry, params: Any) -> None:
    """The metric's extractor is registered and its params structure: one line if not."""
    from ..core.errors import RecipeError, UnknownComponentError

    try:
        registry.structure("extractor", params.extractor, params.extractor_table(),
                           "--extractor-param")
    except UnknownComponentError as exc:
        raise UsageError(f"--extractor: {exc}") from None
    except RecipeError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def _claimed_protocols(checkpoint: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """What the checkpoint's recipe says of each metric named (its ``[eval.metrics.*]``
    table with that ``use``): ``protocol_images``, ``extractor`` and ``resize`` as the
    recipe sets them, so an evaluation warns about fewer images than the run's protocol
    and notes a different pipeline. Nothing when the header does not read (the checkpoint
    is refused with its own message later)."""
    from ..core.errors import GanforgeError
    from ..io.checkpoint_files import read_header

    try:
        table = read_header(checkpoint).recipe_table
    except (GanforgeError, OSError, ValueError):
        return {}
    evaluation = table.get("eval")
    tables = evaluation.get("metrics") if isinstance(evaluation, dict) else None
    claimed: dict[str, dict[str, Any]] = {}
    for metric in tables.values() if isinstance(tables, dict) else ():
        if not isinstance(metric, dict) or not isinstance(metric.get("use"), str):
            continue
        for name in names:
            if metric["use"] in (name, f"ganforge:{name}") and name not in claimed:
                claimed[name] = {key: metric[key] for key in
                                 ("protocol_images", "extractor", "resize") if key in metric}
    return claimed
