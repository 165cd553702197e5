"""The trainer end to end: run directory, logs, checkpoints, exact resume, sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganforge.datasets.order import EpochBatchSampler
from ganforge.errors import CheckpointError, UsageError
from ganforge.recipe import apply_overrides, build_recipe, load_recipe
from ganforge.training import Trainer, train
from ganforge.training.assembly import load_generator
from ganforge.training.checkpoint_format import read_checkpoint


def run(plugins, recipe_path: Path, out: Path, *overrides: str, resume: bool = False):
    recipe = load_recipe(recipe_path, plugins.registry, overrides)
    return train(recipe, plugins, out, resume=resume, progress=False)


def test_run_directory_layout(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    seen: dict[str, list] = {"samples": [], "checkpoints": [], "logs": []}

    class Observer:
        from ganforge import hookimpl

        @hookimpl
        def ganforge_sample_written(self, step, path):
            seen["samples"].append(step)

        @hookimpl
        def ganforge_checkpoint_saved(self, step, path):
            seen["checkpoints"].append(path.name)

        @hookimpl
        def ganforge_log(self, step, metrics):
            seen["logs"].append(step)

    plugins.manager.register(Observer())
    result = run(plugins, tiny_recipe, tmp_path / "run")
    root = tmp_path / "run"
    assert result.step == 6 and not result.interrupted
    assert (root / "recipe.toml").read_text().startswith("[run]")
    assert sorted(p.name for p in (root / "samples").iterdir()) == [
        "step-0000003.png", "step-0000006.png"]
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == [
        "step-0000003.safetensors", "step-0000006.safetensors"]
    lines = [json.loads(x) for x in (root / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]
    assert {"loss_d", "loss_g", "images_per_s", "epoch"} <= set(lines[0])
    assert all(x["loss_d"] > 0 for x in lines)
    assert any(p.name.startswith("events.out.tfevents") for p in (root / "tb").iterdir())
    assert seen == {"samples": [3, 6], "logs": [2, 4, 6],
                    "checkpoints": ["step-0000003.safetensors", "step-0000006.safetensors"]}


def test_checkpoint_is_plain_safetensors(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    result = run(plugins, tiny_recipe, tmp_path / "run")
    tensors = load_file(result.checkpoint)
    assert "generator/main.0.weight" in tensors
    assert "discriminator/main.0.weight" in tensors
    assert any(k.startswith("optimizer/generator/") for k in tensors)
    assert {"rng/torch_cpu", "rng/latent"} <= set(tensors)
    contents = read_checkpoint(result.checkpoint)
    assert contents.step == 6
    assert "[generator]" in contents.recipe_toml
    assert contents.versions["ganforge"] == "0.1.0" and "torch" in contents.versions
    assert contents.optimizers["generator"]["param_groups"][0]["lr"] == 2e-4
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp"))


@pytest.mark.parametrize(("stop_at", "workers"), [(2, 0), (3, 0), (5, 2)])
def test_resume_is_bit_identical(plugins, tiny_recipe: Path, tmp_path: Path, stop_at: int,
                                 workers: int) -> None:
    # 40 images, batch 8: 5 batches per epoch, so 6 steps cross an epoch boundary.
    straight = run(plugins, tiny_recipe, tmp_path / "a", f"run.num_workers={workers}")
    run(plugins, tiny_recipe, tmp_path / "b", f"run.steps={stop_at}",
        f"run.num_workers={workers}")
    resumed = run(plugins, tiny_recipe, tmp_path / "b", f"run.num_workers={workers}",
                  resume=True)
    assert resumed.step == straight.step == 6
    a, b = load_file(straight.checkpoint), load_file(resumed.checkpoint)
    assert set(a) == set(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []
    # The short run also logged its last step, so the logs agree from that point on.
    log_a = [json.loads(x)["step"] for x in (tmp_path / "a" / "metrics.jsonl").open()]
    log_b = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").open()]
    assert [s for s in log_a if s > stop_at] == [s for s in log_b if s > stop_at]
    assert log_b == sorted(set(log_b))


def test_resume_drops_log_lines_after_the_checkpoint(plugins, tiny_recipe: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(plugins, tiny_recipe, out, "run.steps=5")  # checkpoints at 3 and 5, logs at 2, 4, 5
    (out / "checkpoints" / "step-0000005.safetensors").unlink()  # as if killed after step 4
    run(plugins, tiny_recipe, out, resume=True)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").open()]
    assert steps == [2, 4, 6]


def test_existing_run_is_never_overwritten(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    run(plugins, tiny_recipe, tmp_path / "run", "run.steps=3")
    before = (tmp_path / "run" / "checkpoints" / "step-0000003.safetensors").read_bytes()
    with pytest.raises(UsageError, match="already holds a run; pass --resume"):
        run(plugins, tiny_recipe, tmp_path / "run")
    after = (tmp_path / "run" / "checkpoints" / "step-0000003.safetensors").read_bytes()
    assert before == after


def test_resume_without_a_checkpoint_starts_at_step_0(plugins, tiny_recipe: Path,
                                                      tmp_path: Path, capsys) -> None:
    """The same command line serves the first launch and every requeue."""
    result = run(plugins, tiny_recipe, tmp_path / "empty", "run.steps=2", resume=True)
    assert result.step == 2
    assert "no complete checkpoint" in capsys.readouterr().err


def test_resume_refuses_another_recipe(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    run(plugins, tiny_recipe, tmp_path / "run", "run.steps=3")
    with pytest.raises(CheckpointError, match=r"\(generator differ\)"):
        run(plugins, tiny_recipe, tmp_path / "run", "generator.width=8", resume=True)
    with pytest.raises(CheckpointError, match=r"\(run.batch_size, run.seed differ\)"):
        run(plugins, tiny_recipe, tmp_path / "run", "run.seed=1", "run.batch_size=4",
            resume=True)
    resumed = run(plugins, tiny_recipe, tmp_path / "run", "run.log_every=1", resume=True)
    assert resumed.step == 6


def test_rotation_keeps_the_newest(plugins, tiny_recipe: Path, tmp_path: Path) -> None:
    run(plugins, tiny_recipe, tmp_path / "run", "run.checkpoint_every=1", "run.keep_last=2")
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-0000005.safetensors", "step-0000006.safetensors"]


def test_sample_from_checkpoint_needs_only_the_file(plugins, tiny_recipe: Path,
                                                    tmp_path: Path) -> None:
    result = run(plugins, tiny_recipe, tmp_path / "run")
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes(result.checkpoint.read_bytes())
    import shutil
    shutil.rmtree(tmp_path / "run")
    generator, recipe, step = load_generator(moved, plugins.registry)
    assert step == 6 and recipe["generator"].params.width == 4
    assert not generator.training
    images = generator(generator.sample_latent(2, torch.Generator().manual_seed(0)))
    assert images.shape == (2, 3, 32, 32)


def test_epoch_batch_sampler_is_a_function_of_seed_and_position() -> None:
    full = EpochBatchSampler(10, 3, seed=1)
    it = iter(full)
    first = [next(it) for _ in range(7)]  # 3 batches per epoch; crosses two boundaries
    later = iter(EpochBatchSampler(10, 3, seed=1, start=4))
    assert [next(later) for _ in range(3)] == first[4:7]
    epoch0 = sorted(i for b in first[:3] for i in b)
    assert len(set(epoch0)) == 9  # no repeats within an epoch, last partial batch dropped
    assert first[:3] != first[3:6]  # a new order each epoch
    other = iter(EpochBatchSampler(10, 3, seed=2))
    assert [next(other) for _ in range(3)] != first[:3]
    with pytest.raises(Exception, match="fewer than batch_size"):
        EpochBatchSampler(2, 3, seed=0)


def test_ranks_split_each_global_batch() -> None:
    single = iter(EpochBatchSampler(20, 6, seed=3))
    ranks = [iter(EpochBatchSampler(20, 3, seed=3, rank=r, world_size=2)) for r in range(2)]
    for _ in range(5):  # 3 global batches per epoch: crosses an epoch boundary
        assert next(single) == next(ranks[0]) + next(ranks[1])


def test_an_error_before_the_first_step_closes_what_fit_opened(
        plugins, tiny_recipe: Path, tmp_path: Path, monkeypatch) -> None:
    """A failure between opening the logs and training (here a strict plugin's
    ``ganforge_run_started``) closes the logs, shuts the loader's workers down and puts
    the signal handlers back."""
    import signal

    recipe = load_recipe(tiny_recipe, plugins.registry)
    recipe = build_recipe(apply_overrides(recipe.to_dict(), ["run.num_workers=1"]),
                          plugins.registry)
    trainer = Trainer(recipe, plugins, tmp_path / "run", progress=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    opened = {}
    real_batches_method = trainer._real_batches

    def keep(stack):
        opened["batches"] = real_batches_method(stack)
        return opened["batches"]

    def fail(hook: str, **kwargs) -> None:
        if hook == "ganforge_run_started":
            raise RuntimeError("plugin failed")

    monkeypatch.setattr(trainer, "_real_batches", keep)
    monkeypatch.setattr(trainer, "notify", fail)
    with pytest.raises(RuntimeError, match="plugin failed"):
        trainer.fit()
    assert trainer.log.jsonl._file.closed and trainer._skipped._file.closed
    workers = opened["batches"]._workers  # the DataLoader iterator's processes
    assert workers and not any(w.is_alive() for w in workers)
    assert {s: signal.getsignal(s) for s in handlers} == handlers
