"""``ganforge.evaluate(fake_images=...)`` (``ganforge eval --fake-images``): images saved
by any toolkit, a folder of PNG/JPEG files or an ``.npz``
(:mod:`ganforge.evaluation.image_sets`), scored against a dataset's real images exactly as
a checkpoint's generator is: the same metrics, extractors, real-image features (and their
cache) and protocol records.

There is no checkpoint, so the real images come from ``dataset`` (a recipe, whose
``[dataset]`` table is read, or a dataset name) changed by ``dataset.KEY=VALUE``
overrides, or from the overrides alone (``dataset.use=digits``); metrics that read no real
images (``digits_is``, fid against ``reference_stats``) need no dataset. The images must
have the dataset's size and channels. ``n`` (every metric's ``n_fake``) defaults to every
image given, and may not exceed them; the first ``n`` are scored, in file-name order (a
folder) or array order (an ``.npz``), whatever the evaluation seed, which still draws the
real images. The result's ``checkpoint`` and ``step`` are None, ``generator`` is
``"images"``, ``fake_images`` the path given, and each score's protocol records the images
under ``fake_images`` (absolute path, count read, SHA-256 of their pixels). Nothing is
recorded beside the images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import UsageError

if TYPE_CHECKING:
    import torch

    from ..core.registry import Registry
    from .evaluate import EvaluationResult

OPTION = "--fake-images"


def check_image_options(source: str | Path | None, fake_images: str | Path | None,
                        dataset: str | Path | None, per_class: bool, ema: bool) -> None:
    """Refuse (one line) a call that mixes a checkpoint's options with saved images."""
    if fake_images is None:
        if source is None:
            raise UsageError("give a checkpoint to score, or --fake-images DIR_OR_NPZ")
        if dataset is not None:
            raise UsageError("--dataset is for --fake-images; a checkpoint's dataset comes "
                             "from its recipe (change it with --set dataset.KEY=VALUE)")
        return
    if source is not None:
        raise UsageError(f"{OPTION} scores saved images instead of a checkpoint: give one "
                         "or the other")
    if per_class:
        raise UsageError(f"--per-class needs a conditional generator; {OPTION} images carry "
                         "no classes")
    if not ema:
        raise UsageError(f"--no-ema chooses a checkpoint's weights; {OPTION} has none")


def dataset_table(dataset: str | Path | None, overrides: Sequence[str], registry: Registry
                  ) -> dict[str, Any] | None:
    """The dataset table ``{"use": qualified name, **params}`` (validated) of a recipe's
    ``[dataset]`` or a dataset name, after ``dataset.KEY=VALUE`` ``overrides``; None when
    neither names a dataset."""
    from ..core.structuring import structure_params, unstructure_params
    from ..recipe import apply_overrides, load_raw

    raw: dict[str, Any] = {}
    if dataset is not None:
        path = Path(dataset)
        if path.suffix == ".toml" or path.is_file():
            data = load_raw(path).get("dataset")
            if not isinstance(data, dict) or "use" not in data:
                raise UsageError(f"--dataset {dataset}: the recipe has no [dataset] table "
                                 "with use = \"...\"")
            raw = {"dataset": dict(data)}
        else:
            raw = {"dataset": {"use": str(dataset)}}
    table = dict(apply_overrides(raw, list(overrides)).get("dataset") or {})
    if not table:
        return None
    if "use" not in table:
        raise UsageError("--set dataset.KEY=VALUE: no dataset is named; add --dataset "
                         "NAME_OR_RECIPE or --set dataset.use=NAME")
    name = str(table.pop("use"))
    cls = registry.get("dataset", name)
    params = structure_params(cls.Params, table, "$.dataset")
    return {"use": registry.qualified("dataset", name), **unstructure_params(params)}


def evaluate_images(fake_images: str | Path, built_metrics: Callable[[int], dict[str, Any]],
                    *, n: int | None, dataset: str | Path | None, overrides: Sequence[str],
                    seeds: list[int] | None, save_target: Path | None,
                    device: torch.device, registry: Registry) -> EvaluationResult:
    """Score the images of ``fake_images`` with the metrics ``built_metrics(n_fake)``
    gives (``n``, else every image read); see the module's docstring."""
    from ..evaluation.evaluator import Evaluator
    from ..evaluation.image_sets import ImageSetGenerator, image_set_digest, load_image_set
    from ..evaluation.metrics import MAX_IMAGES
    from ..evaluation.results import aggregate_seeds
    from ..training.building import build_dataset, extractor_builder
    from .evaluate import EvaluationResult

    path = Path(fake_images)
    images = load_image_set(path, MAX_IMAGES, OPTION)
    if n is not None and n > len(images):
        raise UsageError(f"{OPTION} {str(path)!r}: holds {len(images)} images; --n {n} "
                         f"needs as many (give --n {len(images)} or fewer, or more images)")
    built = built_metrics(n if n is not None else len(images))
    uses_real = any(m.uses_real_images() for _, m in built.values())
    table = dataset_table(dataset, overrides, registry)
    if table is None and (uses_real or save_target is not None):
        needing = ", ".join(label for label, (_, m) in built.items() if m.uses_real_images())
        raise UsageError(f"{OPTION}: {needing or '--save-reference-stats'} compare(s) with a "
                         "dataset's real images; name it with --dataset NAME_OR_RECIPE (or "
                         "--set dataset.use=NAME)")
    real = None
    if table is not None:
        real = build_dataset(table, registry)
        spec = real.image_spec
        if tuple(images.shape[1:]) != spec.shape():
            have, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, spec.shape()))
            raise UsageError(f"{OPTION} {str(path)!r}: images are {have} (channels x height "
                             f"x width); dataset {table['use']!r} gives {want}; give images "
                             "of the dataset's size and channels (or change it with --set "
                             "dataset.KEY=VALUE)")
    evaluator = Evaluator(built, real, table or {}, device, classes=0, registry=registry,
                          build_extractor=extractor_builder(registry, device))
    generator: Any = ImageSetGenerator(images, OPTION)  # served as a Generator's images
    record = {"path": str(path.resolve()), "images": len(images),
              "sha256": image_set_digest(images)}
    scored: dict[str, Any] = {"checkpoint": None, "step": None, "generator": "images",
                              "dataset": table or {}, "conditional": False,
                              "fake_images": path}
    if seeds is not None:
        from .evaluate import runs_per_seed

        runs = runs_per_seed(evaluator, built, registry, seeds, lambda: _with_images(
            evaluator.run(generator, None, generator_label="images"), record))
        return EvaluationResult(**scored, seeds=tuple(seeds),
                                per_seed=tuple(aggregate_seeds(runs)))
    results = _with_images(evaluator.run(generator, None, generator_label="images"), record)
    n_images = 0
    if save_target is not None:
        from ..evaluation.npz_stats import save_reference_npz

        mu, sigma, n_images = evaluator.real_statistics()
        save_reference_npz(save_target, mu.numpy(), sigma.numpy())
    return EvaluationResult(**scored, results=tuple(results), reference_stats=save_target,
                            reference_images=n_images)


def _with_images(results: list[Any], record: dict[str, Any]) -> list[Any]:
    """``results`` with the images scored recorded in each protocol."""
    for result in results:
        result.protocol["fake_images"] = dict(record)
    return results
