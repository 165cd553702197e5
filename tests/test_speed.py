"""The speed switches of ``[run]`` do what they say, and the benchmark measures them: bf16
autocast only where the hardware has it, channels_last, fused Adam, D frozen during the G
update, torch.compile without steady-state recompiles, CUDA graphs refused where they
cannot work, and ``ganforge bench`` printing the side-by-side figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from ganforge.benchmarking import plain_loop, step_flops
from ganforge.cli import app
from ganforge.errors import UsageError
from ganforge.recipe import apply_overrides, build_recipe
from ganforge.training import Trainer
from ganforge.training import speed as speed_module
from ganforge.training.data import real_batches
from ganforge.training.speed import resolve_speed

CPU = torch.device("cpu")


def small(plugins, *overrides: str, size: int = 32, width: int = 8):
    table = {"run": {"device": "cpu", "batch_size": 16, "seed": 0},
             "dataset": {"use": "synthetic", "count": 64, "image_size": size, "channels": 3},
             "generator": {"use": "dcgan", "latent_dim": 16, "width": width},
             "discriminator": {"use": "dcgan", "width": width}}
    return build_recipe(apply_overrides(table, list(overrides)), plugins.registry)


def train_step(trainer: Trainer, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """One call of the public training step on ``batches``, as ``fit`` makes it."""
    trainer.step += 1
    return trainer.train_step(lambda: trainer.next_real(batches), trainer.step)


def trainer_for(plugins, tmp_path: Path, *overrides: str) -> tuple[Trainer, object]:
    trainer = Trainer(small(plugins, *overrides), plugins, tmp_path / "run", progress=False)
    batches = real_batches(trainer.dataset, 16, 0, 0, num_workers=0, device=trainer.device,
                           pin_memory=False)
    return trainer, batches


@pytest.mark.parametrize(("native", "expected"), [(True, True), (False, False)])
def test_auto_precision_uses_bf16_only_on_hardware_with_bf16(
        monkeypatch: pytest.MonkeyPatch, native: bool, expected: bool) -> None:
    monkeypatch.setattr(speed_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_speed("auto", None, False, CPU).bf16 is expected
    assert resolve_speed("bf16", None, False, CPU).bf16  # asked for: always
    assert not resolve_speed("fp32", None, False, CPU).bf16


def test_channels_last_is_on_unless_switched_off() -> None:
    assert resolve_speed("fp32", None, False, CPU).memory_format == torch.channels_last
    assert resolve_speed("fp32", None, True, CPU).memory_format == torch.channels_last
    assert resolve_speed("fp32", False, False, CPU).memory_format == torch.contiguous_format


def test_channels_last_is_off_by_default_when_compiling_for_cuda() -> None:
    """Compiled with channels_last, DCGAN's backward failed an Inductor stride assertion on
    an H100 (torch 2.11); unset means off there, and asking for it still gets it."""
    cuda = torch.device("cuda")
    assert resolve_speed("fp32", None, True, cuda).memory_format == torch.contiguous_format
    assert resolve_speed("fp32", None, False, cuda).memory_format == torch.channels_last
    assert resolve_speed("fp32", True, True, cuda).memory_format == torch.channels_last


def test_switches_reach_the_networks_and_optimizers(plugins, tmp_path: Path) -> None:
    trainer, batches = trainer_for(plugins, tmp_path, "run.precision=bf16")
    conv = next(m for m in trainer.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.opt_d.defaults["fused"] and trainer.opt_g.defaults["fused"]
    seen = []
    trainer.discriminator.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    train_step(trainer, batches)
    assert seen and set(seen) == {torch.bfloat16}  # D runs under bf16 autocast


def test_d_is_frozen_during_the_g_update(plugins, tmp_path: Path) -> None:
    """D's weight gradients are computed once per step (its own update), never in the G
    update: G's gradient flows through D without filling D's .grad."""
    trainer, batches = trainer_for(plugins, tmp_path, "run.precision=fp32")
    counts = {"d": 0, "g": 0}
    for name, params in (("d", trainer.discriminator.parameters()),
                         ("g", trainer.generator.parameters())):
        for p in params:
            p.register_post_accumulate_grad_hook(
                lambda _, name=name: counts.__setitem__(name, counts[name] + 1))
    train_step(trainer, batches)
    n_d = len(list(trainer.discriminator.parameters()))
    n_g = len(list(trainer.generator.parameters()))
    # One accumulation per parameter and backward pass: D's backward only, not G's (an
    # unfrozen D would count 2 * n_d, as in the example loop).
    assert counts == {"d": n_d, "g": n_g}
    assert all(p.requires_grad for p in trainer.discriminator.parameters())  # restored


def test_ganforge_step_costs_fewer_flops_than_the_plain_loop(plugins, tmp_path: Path) -> None:
    """The FLOPs the benchmark reports are counted, equal per image at any batch size, and
    lower than the example loop's, whose G update also computes D's weight gradients."""
    per_image = []
    for batch in (16, 32):
        recipe = small(plugins, f"run.batch_size={batch}", "run.precision=fp32")
        trainer = Trainer(recipe, plugins, tmp_path / f"run{batch}", progress=False)
        batches = real_batches(trainer.dataset, batch, 0, 0, num_workers=0, device=CPU,
                               pin_memory=False)
        per_image.append(step_flops(trainer.train_step, batches, batch))
    assert per_image[0] == pytest.approx(per_image[1], rel=1e-9) and per_image[0] > 0
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        plain_loop(images, 16, steps=1, warmup=0, width=8, device=CPU, nz=16)
    plain = counter.get_total_flops() / 16
    assert per_image[0] < 0.95 * plain


def test_compile_has_no_recompiles_in_steady_state(plugins, tmp_path: Path) -> None:
    """After warm-up (real, detached fake and fake batches through D), shapes and dtypes
    never change (drop_last), so no step recompiles; and compiled training computes what
    eager training computes."""
    import torch._dynamo

    eager, eager_batches = trainer_for(plugins, tmp_path / "eager", "run.precision=fp32")
    compiled, batches = trainer_for(plugins, tmp_path / "compiled", "run.precision=fp32",
                                    "run.compile=true")
    assert compiled.train_step.forward_g is not compiled.generator  # wrapped
    torch._dynamo.reset()
    losses = [(train_step(compiled, batches), train_step(eager, eager_batches))
              for _ in range(2)]
    # torch's public switch: any recompilation from here on raises.
    with torch.compiler.set_stance("fail_on_recompile"):
        losses += [(train_step(compiled, batches), train_step(eager, eager_batches))
                   for _ in range(4)]
    for (cd, cg), (ed, eg) in losses:
        assert abs(cd.item() - ed.item()) < 1e-3 and abs(cg.item() - eg.item()) < 1e-3
    # Checkpoints never depend on compile: the state dicts are the plain modules'.
    assert not any(k.startswith("_orig_mod") for k in compiled.state()[0])


@pytest.mark.parametrize(("overrides", "message"), [
    (["run.cuda_graphs=true"], "needs run.compile = true"),
    (["run.cuda_graphs=true", "run.compile=true"], "needs a CUDA device; this run uses cpu"),
])
def test_cuda_graphs_are_refused_where_they_cannot_work(plugins, tmp_path: Path,
                                                        overrides: list[str],
                                                        message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        Trainer(small(plugins, *overrides), plugins, tmp_path / "run", progress=False)


def test_cuda_graphs_use_the_reduce_overhead_mode() -> None:
    settings = speed_module.SpeedSettings(bf16=True, channels_last=True, compile=True,
                                          cuda_graphs=True)
    assert settings.compile_mode == "reduce-overhead"
    assert resolve_speed("fp32", None, True, CPU).compile_mode is None


def test_bench_prints_the_side_by_side_figures(tmp_path: Path) -> None:
    recipe = tmp_path / "bench.toml"
    recipe.write_text("""
[run]
num_workers = 0
[dataset]
use = "synthetic"
count = 64
image_size = 32
[generator]
use = "dcgan"
latent_dim = 16
width = 8
[discriminator]
use = "dcgan"
width = 8
""")
    result = CliRunner().invoke(app, ["bench", str(recipe), "--batch", "16", "--steps", "2",
                                      "--warmup", "1", "--peak-tflops", "1"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip("│ ").startswith("16"))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    ganforge, plain, ratio = float(cells[1]), float(cells[2]), float(cells[3].rstrip("x"))
    assert ganforge > 0 and plain > 0 and ratio == pytest.approx(ganforge / plain, rel=0.02)
    gflop, tflops, roofline = float(cells[5]), float(cells[6]), float(cells[7].rstrip("%"))
    assert gflop > 0 and tflops == pytest.approx(ganforge * gflop / 1e3, rel=0.05)
    assert roofline == pytest.approx(100 * tflops, rel=0.05, abs=0.1)


@pytest.mark.parametrize("extra", [
    (),
    ("regularizers.r1.use=r1", "augment.use=diffaugment", "discriminator.norm=spectral"),
    ("regularizers.gp.use=gradient_penalty", "regularizers.clip.use=weight_clip",
     "augment.use=ada", "augment.interval=1", "augment.initial_p=0.3"),
], ids=["plain", "r1-diffaugment-spectral", "gp-clip-ada"])
def test_the_step_never_reads_back_from_the_device(plugins, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    extra: tuple[str, ...]) -> None:
    """No host synchronisation inside a training step (losses and the divergence watch
    stay on the device; ``fit`` reads them back every ``log_every`` steps): every way of
    turning a tensor into a Python value is counted while the step runs, with penalties,
    weight clipping, spectral norm and augmentations too."""
    from ganforge.datasets.policy import ImageBatch

    trainer, _ = trainer_for(plugins, tmp_path, *extra)
    images = torch.rand(4, 16, 3, 32, 32) * 2 - 1  # batches already in memory: the step alone
    batches = iter([ImageBatch(x) for x in images])
    train_step(trainer, batches)  # the first step may set things up
    reads: list[str] = []
    inside = [False]
    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__",
                 "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            if inside[0]:
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    inside[0] = True
    try:
        for _ in range(3):
            train_step(trainer, batches)
    finally:
        inside[0] = False
    assert reads == []
    assert trainer.train_step.watch.check() is None  # and the watch can still be read when asked


def test_a_network_that_declares_it_cannot_compile_runs_eagerly() -> None:
    """``supports_compile = False`` (the kit's opt-out) is read by the trainer too: with
    run.compile on, that network is passed through as it is, any other is compiled."""
    from ganforge.recipe import RunParams
    from ganforge.training.distributed import DistributedContext
    from ganforge.training.step import forward_module

    class Eager(torch.nn.Linear):
        supports_compile = False

    speed = resolve_speed("fp32", None, True, CPU)
    run, dist = RunParams(compile=True), DistributedContext()
    eager = Eager(2, 2)
    assert forward_module(eager, run, speed, dist, CPU) is eager
    plain = torch.nn.Linear(2, 2)
    compiled = forward_module(plain, run, speed, dist, CPU)
    assert compiled is not plain and getattr(compiled, "_orig_mod", None) is plain
