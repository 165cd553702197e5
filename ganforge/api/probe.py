"""``ganforge.probe``: the linear probe of a discriminator's features (DCGAN §5.1), the
trained D of a checkpoint against a randomly initialised one (what ``ganforge probe``
does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .common import Note
from .evaluate import registry_of

if TYPE_CHECKING:
    from ..core.registry import Registry
    from ..evaluation.probe import ProbeResult


@attrs.frozen
class ProbeResults:
    """What :func:`probe` measured: the checkpoint and its step, the labelled dataset's
    table, the labels per class and split seed used, each discriminator's
    :class:`~ganforge.evaluation.probe.ProbeResult` (trained first, then random), and the
    class a conditional discriminator was given for every image (None: unconditional)."""

    checkpoint: Path
    step: int
    dataset: dict[str, Any]
    labels_per_class: int
    seed: int
    results: tuple[ProbeResult, ...]
    conditional_class: int | None = None

    @property
    def accuracy(self) -> dict[str, float]:
        """Each discriminator's held-out accuracy by name."""
        return {r.name: r.accuracy for r in self.results}


def probe(source: str | Path, labels_per_class: int, *, dataset: str | None = None,
          overrides: Sequence[str] = (), seed: int = 0, test_size: int = 10_000,
          baseline_seed: int = 1, device: str = "auto",
          registry: Registry | Callable[[], Registry] | None = None,
          note: Note = None) -> ProbeResults:
    """Train a linear classifier on the features of the checkpoint's D (``source``) with
    ``labels_per_class`` labelled images per class, and the same on a D of random weights
    (``baseline_seed``); score both on at most ``test_size`` held-out images (split with
    ``seed``).

    ``dataset`` is a dataset name (digits, cifar10, ...; it takes D's image size and
    channels unless ``overrides`` say otherwise) or a recipe file; by default the
    checkpoint's own dataset. Without ``dataset``, ``overrides`` change the checkpoint's
    dataset table (``"dataset.root=PATH"``); with a name, its params (``"image_size=64"``);
    with a recipe, recipe paths. ``note`` is told which folder a checkpoint's dataset reads."""
    from ..evaluation.probe import run_probe
    from ..training.assembly import assemble
    from ..training.building import build_dataset, dataset_source, resolve_device
    from ..training.experiment_loading import dataset_override_keys, load_experiment

    reg = registry_of(registry)
    sets = list(overrides)
    if dataset is None:  # then the overrides change the checkpoint's own dataset table
        dataset_override_keys(sets)
    dev = resolve_device(device)
    experiment = load_experiment(
        source, reg, "cpu", parts={"discriminator", "dataset"} if dataset is None
        else {"discriminator"}, dataset_overrides=sets if dataset is None else (),
        note=note)
    trained = experiment.discriminator
    random_d = assemble(experiment.recipe, reg, "cpu", parts={"discriminator"},
                        seed=baseline_seed, training=False).discriminator
    assert trained is not None and random_d is not None
    spec: Any = getattr(trained, "image_spec", None)
    data: Any
    if dataset is None:
        data = experiment.dataset
        table = experiment.recipe["dataset"].to_table()
    else:
        is_name = not (dataset.endswith(".toml") or Path(dataset).is_file())
        if is_name and spec is not None:
            given = {s.split("=", 1)[0].strip() for s in sets}
            sets = [f"{k}={v}" for k, v in (("image_size", spec.size),
                                            ("channels", spec.channels)) if k not in given] + sets
        table, _ = dataset_source(dataset, sets, reg)
        data = build_dataset(table, reg)
    results = run_probe(trained, random_d, data, labels_per_class, seed, test_size, dev)
    fixed_class = next((r.fixed_class for r in results if r.fixed_class is not None), None)
    return ProbeResults(Path(source), experiment.step, table, labels_per_class, seed,
                        tuple(results), fixed_class)
