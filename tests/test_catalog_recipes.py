"""The shipped CIFAR-10 recipes carry the published settings they cite (StudioGAN's DCGAN,
mimicry's SNGAN 32 and cGAN-PD 32) and build networks of the published sizes; the
ablation studies validate, the GPU grid as the CPU one with CIFAR-10 swapped in."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganforge.recipe import load_recipe
from ganforge.sweep.plan import plan_sweep
from ganforge.training.assembly import build_networks, dataset_image_spec

RECIPES = Path(__file__).resolve().parents[1] / "ganforge" / "recipes"


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("name", "sizes", "settings"), [
    # mimicry a7fda06: SNGANGenerator32 / SNGANDiscriminator32 (see plugins/resnet tests).
    ("sngan_cifar10", (4_276_739, 1_053_825),
     {"d_steps": 5, "steps": 100_000, "batch_size": 64, "betas": (0.0, 0.9),
      "loss": "ganforge:hinge", "schedule": "ganforge:linear"}),
    # mimicry a7fda06: CGANPDGenerator32 / CGANPDDiscriminator32, 10 classes.
    ("cgan_pd_cifar10", (4_304_387, 1_055_105),
     {"d_steps": 5, "steps": 100_000, "batch_size": 64, "betas": (0.0, 0.9),
      "loss": "ganforge:hinge", "schedule": "ganforge:linear"}),
    # The DCGAN paper's networks at 32 px, StudioGAN's DCGAN.yaml training settings.
    ("dcgan_cifar10", None,
     {"d_steps": 2, "steps": 200_000, "batch_size": 64, "betas": (0.5, 0.999),
      "loss": "ganforge:bce", "schedule": "ganforge:constant"}),
])
def test_cifar10_recipes_have_the_published_settings(plugins, name: str, sizes,
                                                     settings: dict) -> None:
    recipe = load_recipe(RECIPES / f"{name}.toml", plugins.registry)
    run = recipe.run
    assert (run.d_steps, run.steps, run.batch_size) == (
        settings["d_steps"], settings["steps"], settings["batch_size"])
    for network in ("generator", "discriminator"):
        optimizer = recipe[f"optimizer.{network}"].params
        assert optimizer.lr == 2e-4 and tuple(optimizer.betas) == settings["betas"]
        assert recipe[f"schedule.{network}"].name == settings["schedule"]
    assert recipe["loss"].name == settings["loss"]
    fid = recipe.metrics["fid"].params  # the protocol they report: 50k vs the train split
    assert (fid.n_fake, fid.n_real, fid.extractor) == (50_000, 50_000, "inception")
    assert fid.protocol_images == 50_000  # a quicker evaluation is warned about
    assert recipe["dataset"].params.split == "train"
    assert not recipe.warnings
    spec = dataset_image_spec(recipe, plugins.registry)
    assert (spec.channels, spec.size, spec.classes) == (3, 32, 10)
    generator, discriminator = build_networks(recipe, plugins.registry, spec, device="meta")
    if sizes is not None:
        assert (count(generator), count(discriminator)) == sizes
    conditional = name.startswith("cgan")
    assert getattr(generator, "conditional") is conditional  # noqa: B009
    assert getattr(discriminator, "conditional") is conditional  # noqa: B009


def test_the_cpu_study_crosses_loss_norm_and_penalty(plugins, tmp_path: Path) -> None:
    plan = plan_sweep(RECIPES / "ablations" / "loss_norm_penalty.toml", plugins.registry,
                      out=tmp_path / "study")
    assert len(plan.variants) == 16
    recipes = {r.variant: r.recipe for r in plan.runs}
    combos = {(r["loss"].short, r["discriminator"].params.norm,
               r.regularizers["penalty"].short) for r in recipes.values()}
    assert len(combos) == 16
    # WGAN-GP's penalty with BatchNorm in D: the requirement warns in exactly those runs.
    warned = {(r["loss"].short, r["discriminator"].params.norm) for r in recipes.values()
              if r.warnings}
    assert warned == {("bce", "batch"), ("hinge", "batch")}


def test_the_gpu_study_is_the_same_grid_on_cifar10(plugins, tmp_path: Path) -> None:
    plan = plan_sweep(RECIPES / "ablations" / "loss_norm_penalty_cifar10.toml",
                      plugins.registry, out=tmp_path / "study")
    assert len(plan.variants) == 16 and len(plan.runs) == 48  # 3 seeds
    first = plan.runs[0].recipe
    assert first["dataset"].short == "cifar10" and first.run.steps == 50_000
    assert first.metrics["fid"].params.extractor == "inception"
