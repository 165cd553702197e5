"""Every built-in component keeps the contract the kit checks (ganforge.testing)."""

from __future__ import annotations

import pytest

from ganforge import load_plugins
from ganforge.testing import check_component

#: (kind, qualified name, params) of every built-in that builds without files; the losses,
#: optimizer and schedules also train 4 steps straight and 2 + 2 with a resume.
CHECKED = [
    ("loss", "ganforge:bce", None),
    ("loss", "ganforge:hinge", None),
    ("loss", "ganforge:wgan", None),
    ("loss", "ganforge:lsgan", {"a": -1.0, "b": 1.0, "c": 0.0}),
    ("loss", "ganforge:relativistic", None),
    ("loss", "ganforge:relativistic", {"mode": "pairwise"}),
    ("loss", "ganforge:aux_classifier", None),
    ("loss", "ganforge:aux_classifier", {"adversarial": "hinge", "classify_fake_in_d": False}),
    ("regularizer", "ganforge:none", None),
    ("regularizer", "ganforge:gradient_penalty", None),
    ("regularizer", "ganforge:r1", {"weight": 1.0, "every": 2}),
    ("regularizer", "ganforge:r2", None),
    ("regularizer", "ganforge:weight_clip", {"clip": 0.05}),
    ("augment", "ganforge:none", None),
    ("augment", "ganforge:diffaugment", None),
    ("augment", "ganforge:ada", {"initial_p": 0.5, "interval": 1}),
    ("optimizer", "ganforge:adam", None),
    ("optimizer", "ganforge:adamw", None),
    ("optimizer", "ganforge:rmsprop", {"momentum": 0.9, "centered": True}),
    ("optimizer", "ganforge:sgd", {"momentum": 0.9, "nesterov": True}),
    ("optimizer", "ganforge:adam", {"implementation": "loop", "weight_decay": 0.01}),
    ("scheduler", "ganforge:constant", {"warmup": 2}),
    ("scheduler", "ganforge:linear", None),
    ("scheduler", "ganforge:cosine", {"warmup": 1, "final": 0.1}),
    ("dataset", "ganforge:synthetic", None),
    ("dataset", "ganforge:synthetic", {"classes": 4, "channels": 1, "image_size": 24}),
    ("dataset", "ganforge:digits", {"image_size": 16}),
    ("dataset", "ganforge:stacked_digits", {"image_size": 16, "size": 64}),
    ("metric", "ganforge:fid", None),
    ("metric", "ganforge:kid", {"subsets": 10, "subset_size": 32}),
    ("metric", "ganforge:inception_score", None),
    ("metric", "ganforge:precision", None),
    ("metric", "ganforge:recall", {"k": 5}),
    ("metric", "ganforge:density", None),
    ("metric", "ganforge:coverage", {"k": 3}),
    ("extractor", "ganforge:pixels", None),
    ("extractor", "ganforge:pixels", {"size": 4}),
    ("extractor", "ganforge:digits", None),
    ("metric", "ganforge:modes", {"min_count": 2}),
    ("metric", "ganforge:mode_kl", None),
    ("metric", "ganforge:digits_is", {"splits": 2}),
    ("metric", "ganforge:class_accuracy", None),
    ("callback", "ganforge:stop_at_metric", {"metric": "loss_d", "target": 0.5}),
]
#: Image sizes other than the contract's default ones. The digits extractor fits its
#: classifier at each size it is called with (a few seconds each): 24 (a size the digits'
#: 8x8 grid does not divide) and 32 (the session's cached fit) check the same code path as
#: all five sizes.
SIZES_OF = {("extractor", "ganforge:digits"): (24, 32)}
#: Extractors that need weights (a download): their Params are checked here, their
#: features in their own test modules.
NEED_WEIGHTS = {"inception"}
#: Built-ins that read files or download them: their Params are checked here; the rest
#: needs data (their own test modules cover them).
NEED_DATA = {"image_folder", "lsun", "prepared", "cifar10", "mnist", "celeba", "svhn"}


@pytest.fixture(scope="module")
def registry():
    return load_plugins()


@pytest.mark.parametrize(("kind", "name", "params"), CHECKED,
                         ids=[f"{k}-{n.split(':')[1]}-{i}" for i, (k, n, _) in
                              enumerate(CHECKED)])
def test_builtin_keeps_the_contract(registry, kind: str, name: str, params) -> None:
    report = check_component(kind, name, registry=registry, params=params,
                             **({"sizes": SIZES_OF[kind, name]} if (kind, name) in SIZES_OF
                                else {}))
    assert not report.failures
    if kind in ("loss", "optimizer", "scheduler", "regularizer", "augment"):
        assert "training" in report.passed


def test_the_installed_plugins_are_the_default_registry() -> None:
    report = check_component("scheduler", "constant", train=False)
    assert report.name == "constant" and "factor" in report.passed


def test_a_dataset_trains_and_resumes(registry) -> None:
    report = check_component("dataset", "ganforge:synthetic", registry=registry,
                             params={"classes": 3, "count": 16, "image_size": 16}, train=True)
    assert "training" in report.passed


@pytest.mark.parametrize("name", sorted(NEED_DATA))
def test_builtins_that_need_data_have_documented_params(registry, name: str) -> None:
    report = check_component("dataset", f"ganforge:{name}", registry=registry,
                             skip=("items", "determinism", "component_state", "figures"))
    assert "params" in report.passed


@pytest.mark.parametrize("name", sorted(NEED_WEIGHTS))
def test_extractors_that_need_weights_have_documented_params(registry, name: str) -> None:
    report = check_component("extractor", f"ganforge:{name}", registry=registry,
                             skip=("features", "determinism", "component_state", "figures"))
    assert "params" in report.passed


def test_every_builtin_is_covered(registry) -> None:
    from ganforge.kinds import KINDS

    builtins = {(e.kind, e.name) for kind in KINDS for e in registry.registry.list(kind)
                if e.plugin == "ganforge"}
    covered = {(kind, name.split(":")[1]) for kind, name, _ in CHECKED}
    assert builtins == covered | {("dataset", name) for name in NEED_DATA} | \
        {("extractor", name) for name in NEED_WEIGHTS}
