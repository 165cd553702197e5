"""The regularizer kind: each penalty against its formula on a discriminator whose input
gradient is known, lazy application with the weight rescaled, logging as reg/<label>,
weight clipping, bf16, the BatchNorm warning, the recipe tables and sweeps, and the
auxiliary-classifier loss that needs a class head."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge.builtins.losses import AuxClassifierLoss
from ganforge.builtins.regularizers import GradientPenalty, R1Penalty, R2Penalty, WeightClip
from ganforge.errors import RecipeError, UsageError
from ganforge.recipe import apply_overrides, build_recipe
from ganforge.training import Trainer, train
from ganforge.training.assembly import assemble
from ganforge.training.checkpoint_format import read_checkpoint


class Linear(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w for every image."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return (x.flatten(1) * self.w.flatten()).sum(1) + self.b


class Quadratic(nn.Module):
    """D(x) = ½ ‖x‖²: its input gradient is x itself."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


def call(regularizer, d: nn.Module, real: torch.Tensor, fake: torch.Tensor, seed: int = 0):
    return regularizer.penalty(d, real, fake, real_labels=None, fake_labels=None,
                               generator=torch.Generator().manual_seed(seed))


def test_each_penalty_matches_its_formula() -> None:
    w = torch.full((1, 2, 2), 0.5)  # ‖w‖ = 1.0
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    linear = Linear(w * 3)  # ‖∇‖ = 3 everywhere
    gp = call(GradientPenalty(GradientPenalty.Params()), linear, real, fake)
    assert gp.item() == pytest.approx((3.0 - 1.0) ** 2)
    gp0 = call(GradientPenalty(GradientPenalty.Params(target=0.0)), linear, real, fake)
    assert gp0.item() == pytest.approx(9.0)
    r1 = call(R1Penalty(R1Penalty.Params()), linear, real, fake)
    assert r1.item() == pytest.approx(0.5 * 9.0)
    # A D whose gradient is its input: R1 = ½ E‖x_real‖², R2 = ½ E‖x_fake‖².
    quadratic = Quadratic()
    r1q = call(R1Penalty(R1Penalty.Params()), quadratic, real, fake)
    r2q = call(R2Penalty(R2Penalty.Params()), quadratic, real, fake)
    assert r1q.item() == pytest.approx(0.5 * real.flatten(1).pow(2).sum(1).mean().item())
    assert r2q.item() == pytest.approx(0.5 * fake.flatten(1).pow(2).sum(1).mean().item())


def test_the_gradient_penalty_is_taken_on_seeded_interpolates() -> None:
    """On D = ½‖x‖² the gradient at x̂ is x̂ = ε real + (1 - ε) fake with ε ~ U(0, 1) drawn
    from the step's generator: recompute it from the same seed."""
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    value = call(GradientPenalty(GradientPenalty.Params()), Quadratic(), real, fake, seed=5)
    eps = torch.rand((4, 1, 1, 1), generator=torch.Generator().manual_seed(5))
    mixed = eps * real + (1 - eps) * fake
    expected = (mixed.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    again = call(GradientPenalty(GradientPenalty.Params()), Quadratic(), real, fake, seed=6)
    assert again.item() != pytest.approx(value.item())


def test_the_penalty_is_differentiated_with_respect_to_d() -> None:
    """The graph is kept (create_graph): R1 = ½‖w‖² for a linear D, whose gradient with
    respect to w is w."""
    linear = Linear(torch.randn(1, 2, 2))
    r1 = call(R1Penalty(R1Penalty.Params()), linear, torch.randn(2, 1, 2, 2),
              torch.randn(2, 1, 2, 2))
    r1.backward()
    assert torch.allclose(linear.w.grad, linear.w.detach())


def test_weight_clipping_clamps_every_parameter() -> None:
    d = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    with torch.no_grad():
        for p in d.parameters():
            p.mul_(100)
    WeightClip(WeightClip.Params(clip=0.05)).after_update(d)
    assert all(bool(p.abs().max() <= torch.tensor(0.05)) for p in d.parameters())


TABLE = {"run": {"device": "cpu", "batch_size": 8, "seed": 0, "steps": 6, "log_every": 1,
                 "sample_every": 6, "checkpoint_every": 6, "precision": "fp32"},
         "dataset": {"use": "synthetic", "count": 32, "image_size": 32, "channels": 1},
         "generator": {"use": "dcgan", "latent_dim": 8, "width": 8},
         "discriminator": {"use": "dcgan", "width": 8, "norm": "layer"}}


def recipe(plugins, *overrides: str):
    return build_recipe(apply_overrides(TABLE, list(overrides)), plugins.registry)


def logged(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_lazy_penalties_apply_every_k_steps_with_the_weight_times_k(plugins) -> None:
    """``every = 3``: no penalty at steps 1 and 2, ``weight * 3 * R1`` at step 3."""
    from ganforge.training.step import GANStep

    r = recipe(plugins, "regularizers.r1.use=r1", "regularizers.r1.weight=2.0",
               "regularizers.r1.every=3")
    experiment = assemble(r, plugins.registry, "cpu", parts={"generator", "discriminator",
                                                             "loss", "optimizers"})
    step = GANStep(experiment, torch.Generator().manual_seed(0))
    real, fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    assert step._penalties(real, fake, None, None, step=1) is None
    assert step._penalties(real, fake, None, None, step=2) is None
    total = step._penalties(real, fake, None, None, step=3)
    assert total is not None
    assert total.item() == pytest.approx(2.0 * 3 * step.penalties["r1"].item(), rel=1e-6)
    assert step.penalties["r1"].item() > 0


def test_training_logs_each_penalty_and_clips_weights(plugins, tmp_path: Path) -> None:
    r = recipe(plugins, "regularizers.r1.use=r1", "regularizers.r1.every=3",
               "regularizers.gp.use=gradient_penalty", "regularizers.clip.use=weight_clip",
               "regularizers.clip.clip=0.02")
    assert list(r.regularizers) == ["r1", "gp", "clip"]
    train(r, plugins, tmp_path / "run", progress=False)
    lines = logged(tmp_path / "run")
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(x["reg/gp"]) and x["reg/gp"] >= 0 for x in lines)
    assert "reg/r1" not in lines[0] and "reg/r1" not in lines[1]  # not yet due
    assert lines[2]["reg/r1"] == lines[3]["reg/r1"] == lines[4]["reg/r1"]  # the last value
    assert lines[5]["reg/r1"] != lines[2]["reg/r1"]  # computed again at step 6
    assert "reg/clip" not in lines[0]  # a constraint logs nothing
    final = read_checkpoint(tmp_path / "run" / "checkpoints" / "step-0000006.safetensors")
    d_weights = [t for k, t in final.section("discriminator").items()
                 if "running" not in k and "num_batches" not in k]
    assert all(bool(t.abs().max() <= torch.tensor(0.02)) for t in d_weights)


def test_penalties_work_under_bf16_autocast(plugins, tmp_path: Path) -> None:
    r = recipe(plugins, "run.precision=bf16", "regularizers.r1.use=r1",
               "regularizers.gp.use=gradient_penalty")
    train(r, plugins, tmp_path / "run", progress=False)
    lines = logged(tmp_path / "run")
    assert all(math.isfinite(x["reg/r1"]) and math.isfinite(x["reg/gp"]) for x in lines)


def test_a_penalty_with_batchnorm_in_d_warns_at_validation(plugins) -> None:
    r = recipe(plugins, "discriminator.norm=batch", "regularizers.gp.use=gradient_penalty")
    assert any("[regularizers.gp] 'ganforge:gradient_penalty' needs a discriminator without "
               "BatchNorm" in w for w in r.warnings)
    assert not recipe(plugins, "regularizers.gp.use=gradient_penalty").warnings  # layer norm


def test_regularizer_tables_are_validated(plugins) -> None:
    with pytest.raises(RecipeError) as err:
        recipe(plugins, "regularizers.r1.use=r3", "regularizers.r1.wieght=1")
    text = str(err.value)
    assert "$.regularizers.r1.use: unknown regularizer 'r3'" in text
    with pytest.raises(RecipeError, match=r"\$\.regularizers\.x\.every"):
        recipe(plugins, "regularizers.x.use=r1", "regularizers.x.every=0")


def test_swapping_a_regularizer_in_or_out_is_one_override(plugins) -> None:
    """``none`` is a regularizer too, so ``regularizers.penalty.use`` is one sweep axis;
    swapping resets the table to the new component's defaults."""
    with_r1 = recipe(plugins, "regularizers.penalty.use=r1", "regularizers.penalty.weight=1")
    out = with_r1.with_overrides(["regularizers.penalty.use=none"], plugins.registry)
    assert out.regularizers["penalty"].short == "none"
    back = out.with_overrides(["regularizers.penalty.use=gradient_penalty"], plugins.registry)
    assert back.regularizers["penalty"].params.weight == 10.0
    assert "regularizers" in with_r1.to_dict()


def test_the_aux_classifier_loss_needs_the_class_head(plugins, tmp_path: Path) -> None:
    labelled = ["dataset.classes=3", "generator.conditional=true", "loss.use=aux_classifier"]
    with pytest.raises(RecipeError, match="needs a discriminator with an auxiliary classifier "
                                          "head"):
        recipe(plugins, *labelled)
    r = recipe(plugins, *labelled, "discriminator.aux_classifier=true")
    trainer = Trainer(r, plugins, tmp_path / "run", progress=False)
    assert trainer.experiment.labelled  # fake classes are drawn for the classification term
    trainer.fit()
    assert all(math.isfinite(x["loss_d"]) for x in logged(tmp_path / "run"))
    with pytest.raises(RecipeError, match="aux_classifier"):  # the head without its loss
        recipe(plugins, "dataset.classes=3", "discriminator.aux_classifier=true")


def test_the_aux_classifier_loss_formula() -> None:
    """bce + class_weight * (CE(real) + CE(fake)) for D; bce + class_weight * CE(fake)
    for G."""
    import torch.nn.functional as F

    out_real = torch.tensor([[0.3, 2.0, -1.0], [-0.2, 0.1, 0.4]])
    out_fake = torch.tensor([[-0.5, 0.0, 1.0], [0.7, -2.0, 0.5]])
    y_real, y_fake = torch.tensor([0, 1]), torch.tensor([1, 1])

    def d(images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return out_real if images is real else out_fake

    real, fake = torch.zeros(2, 1), torch.ones(2, 1)
    loss = AuxClassifierLoss(AuxClassifierLoss.Params(class_weight=0.5))
    got = loss.discriminator_loss(d, real, fake, real_labels=y_real, fake_labels=y_fake)
    adv = F.softplus(-out_real[:, 0]).mean() + F.softplus(out_fake[:, 0]).mean()
    cls = F.cross_entropy(out_real[:, 1:], y_real) + F.cross_entropy(out_fake[:, 1:], y_fake)
    assert got.item() == pytest.approx((adv + 0.5 * cls).item())
    g = loss.generator_loss(d, fake, fake_labels=y_fake)
    expected = F.softplus(-out_fake[:, 0]).mean() + 0.5 * F.cross_entropy(out_fake[:, 1:],
                                                                         y_fake)
    assert g.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="auxiliary classifier head"):
        loss.generator_loss(lambda x, y=None: out_fake[:, 0], fake, fake_labels=y_fake)


def test_the_aux_classifier_loss_refuses_an_unlabelled_dataset(plugins) -> None:
    r = recipe(plugins, "loss.use=aux_classifier", "discriminator.aux_classifier=true")
    with pytest.raises(UsageError, match="classes"):
        assemble(r, plugins.registry, "cpu", parts={"generator", "discriminator", "loss"})
