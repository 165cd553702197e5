"""The augment kind in training: D sees every batch through it (real and fake, in D's
update and G's), ADA watches D's logits on the real batch once per D update, its
probability is logged and checkpointed, and the run resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import torch

from ganforge.interfaces import Augment
from ganforge.recipe import apply_overrides, build_recipe
from ganforge.training import train
from ganforge.training.checkpoint_format import read_checkpoint

TABLE = {"run": {"device": "cpu", "batch_size": 8, "seed": 0, "steps": 4, "log_every": 2,
                 "sample_every": 4, "checkpoint_every": 2, "keep_last": 3,
                 "precision": "fp32"},
         "dataset": {"use": "synthetic", "count": 32, "image_size": 32, "channels": 3},
         "generator": {"use": "dcgan", "latent_dim": 8, "width": 8},
         "discriminator": {"use": "dcgan", "width": 8}}


class Counting(Augment):
    """Counts what the step hands an augmentation (and flips the images)."""

    calls: list[int] = []
    observed: list[tuple[int, ...]] = []

    @attrs.frozen
    class Params:
        """None."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        Counting.calls.append(images.shape[0])
        return images.flip(3)

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        Counting.observed.append(tuple(logits.shape))


@pytest.fixture
def counting(plugins):
    registry = plugins.registry
    with registry.registering_as("test counting", "testaug"):
        registry.register("augment", "counting", Counting)
    Counting.calls, Counting.observed = [], []
    yield "testaug:counting"
    registry.remove_origin("test counting")


def recipe(plugins, *overrides: str):
    return build_recipe(apply_overrides(TABLE, list(overrides)), plugins.registry)


@pytest.mark.parametrize("loss", ["bce", "relativistic"])
def test_d_sees_every_batch_through_the_augmentation(plugins, counting, tmp_path: Path,
                                                     loss: str) -> None:
    """d_steps = 2: each D update augments a real and a fake batch and reports the real
    logits once; the G update augments the fakes (and, for a relativistic loss, the reals
    it compares them with)."""
    r = recipe(plugins, f"augment.use={counting}", "run.d_steps=2", "run.steps=1",
               f"loss.use={loss}", "run.checkpoint_every=1", "run.log_every=1")
    train(r, plugins, tmp_path / "run", progress=False)
    g_calls = 2 if loss == "relativistic" else 1
    assert Counting.calls == [8] * (2 * 2 + g_calls)
    assert Counting.observed == [(8,), (8,)]


def test_ada_probability_is_logged_checkpointed_and_adapts(plugins, tmp_path: Path) -> None:
    """interval = 1 and speed 0.1 kimg: after every D update p moves by 8 / 100 towards
    where the sign of D's real logits (aug/rt) says, and the last p is stored as
    state/augment/p."""
    r = recipe(plugins, "augment.use=ada", "augment.interval=1", "augment.speed_kimg=0.1",
               "augment.initial_p=0.5", "run.log_every=1")
    train(r, plugins, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    p = 0.5
    for line in lines:
        p += 0.08 if line["aug/rt"] > 0.6 else -0.08
        assert line["aug/p"] == pytest.approx(p)
    final = read_checkpoint(tmp_path / "run" / "checkpoints" / "step-0000004.safetensors")
    assert final.tensors["state/augment/p"].item() == pytest.approx(p)


@pytest.mark.parametrize("augment", ["diffaugment", "ada"])
def test_augmented_runs_resume_exactly(plugins, tmp_path: Path, augment: str) -> None:
    """Straight to step 4, or to step 2 and resumed: the same checkpoint, tensor for tensor
    (the augmentations draw from the checkpointed latent generator)."""
    extra = ["augment.initial_p=0.5"] if augment == "ada" else []
    r = recipe(plugins, f"augment.use={augment}", *extra, "regularizers.r1.use=r1",
               "regularizers.r1.every=2", "discriminator.norm=spectral")
    train(r, plugins, tmp_path / "straight", progress=False)
    half = r.with_overrides(["run.steps=2"], plugins.registry)
    train(half, plugins, tmp_path / "resumed", progress=False)
    train(r, plugins, tmp_path / "resumed", progress=False, resume=True)
    a = read_checkpoint(tmp_path / "straight" / "checkpoints" / "step-0000004.safetensors")
    b = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "step-0000004.safetensors")
    assert a.tensors.keys() == b.tensors.keys()
    for key, tensor in a.tensors.items():
        assert torch.equal(tensor, b.tensors[key]), key
