"""``run.graph = "step"``: the whole training step as one ``torch.compile(fullgraph=True)``
graph. Kept fast: DCGAN 32x32 at width 8, batch 8, fp32; compiled once for the module with
``aot_eager`` (Dynamo's graph capture and AOT autograd, without Inductor's C++ compile,
which took about 2 minutes for this step on the loaded 2-core machine; Inductor gave the
same losses, checked by hand, see docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch._dynamo.backends.registry import lookup_backend

from ganforge import load_plugins
from ganforge.core.errors import RecipeError, UsageError
from ganforge.recipe import apply_overrides, build_recipe
from ganforge.training import Trainer, assemble
from ganforge.training.step import GANStep
from ganforge.training.step_graph import StepGraph, build_step

STEPS = 3
TOLERANCE = 1e-5  # absolute, on losses and weights after STEPS steps (fp32; seen: 1.2e-7)


def tiny(plugins, *overrides: str):
    table = {"run": {"device": "cpu", "batch_size": 8, "seed": 0, "precision": "fp32",
                     "graph": "step", "log_every": 2, "sample_every": 1000,
                     "checkpoint_every": 2, "keep_last": 5, "steps": 4},
             "dataset": {"use": "synthetic", "count": 64, "image_size": 32, "channels": 1},
             "generator": {"use": "dcgan", "latent_dim": 16, "width": 8},
             "discriminator": {"use": "dcgan", "width": 8},
             "ema": {"enabled": True}}
    return build_recipe(apply_overrides(table, list(overrides)), plugins.registry)


class CountingBackend:
    """``aot_eager``, counting the graphs it is given (one per compile)."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, inputs: list[torch.Tensor]):
        self.graphs.append(gm)
        return lookup_backend("aot_eager")(gm, inputs)


@pytest.fixture(scope="module")
def plugins_once():
    return load_plugins()


@pytest.fixture(scope="module")
def pair(plugins_once):
    """The eager step and the graph step from the same state, after STEPS steps on the same
    batches, with the losses of both and the compile count."""
    torch._dynamo.reset()
    recipe = tiny(plugins_once)
    eager_x, graph_x = (assemble(recipe, plugins_once.registry, "cpu") for _ in range(2))
    eager = GANStep(eager_x, torch.Generator().manual_seed(1))
    backend = CountingBackend()
    graph = StepGraph(graph_x, torch.Generator().manual_seed(1), backend=backend)
    g = torch.Generator().manual_seed(2)
    reals = [torch.randn(8, 1, 32, 32, generator=g).contiguous(
        memory_format=torch.channels_last) for _ in range(3 * STEPS)]
    a, b = iter(reals), iter(reals)
    losses = [(eager(lambda: next(a), s), graph(lambda: next(b), s))
              for s in range(1, STEPS + 1)]
    return eager, graph, backend, losses, reals


def test_the_step_is_one_graph_with_no_break(pair) -> None:
    _, graph, backend, _, _ = pair
    assert len(backend.graphs) == 1  # fullgraph=True: a break would have raised
    ops = {str(n.target) for n in backend.graphs[0].graph.nodes
           if n.op in ("call_function", "call_method")}
    assert any("grad" in op for op in ops)  # the backward passes are in the graph
    assert any("lerp" in op for op in ops)  # the EMA and the Adam moments


def test_the_graph_computes_what_the_eager_step_computes(pair) -> None:
    eager, graph, _, losses, _ = pair
    for (ld, lg), (gd, gg) in losses:
        assert torch.allclose(ld, gd, atol=TOLERANCE) and torch.allclose(lg, gg, atol=TOLERANCE)
    for name in ("generator", "discriminator"):
        ours = getattr(graph.experiment, name).state_dict()
        for key, value in getattr(eager.experiment, name).state_dict().items():
            assert torch.allclose(value.float(), ours[key].float(), atol=TOLERANCE), key
    ema = graph.experiment.ema.average.state_dict()
    for key, value in eager.experiment.ema.average.state_dict().items():
        assert torch.allclose(value.float(), ema[key].float(), atol=TOLERANCE), key
    for name, opt in eager.experiment.optimizers.items():
        theirs = graph.experiment.optimizers[name].state_dict()["state"]
        for index, state in opt.state_dict()["state"].items():
            assert float(state["step"]) == float(theirs[index]["step"]) == STEPS
            assert torch.allclose(state["exp_avg"], theirs[index]["exp_avg"], atol=TOLERANCE)
    assert torch.allclose(graph._sums, torch.stack([torch.stack(p) for _, p in losses]).sum(0))


def test_nothing_recompiles_after_warm_up(pair) -> None:
    _, graph, backend, _, reals = pair
    batches = iter(reals)
    with torch.compiler.set_stance("fail_on_recompile"):
        for s in range(STEPS + 1, STEPS + 3):
            graph(lambda: next(batches), s)
    assert len(backend.graphs) == 1


def test_a_divergence_is_caught_at_its_step(pair) -> None:
    _, graph, _, _, reals = pair
    batches = iter(reals)
    with torch.no_grad():
        next(graph.discriminator.parameters()).fill_(float("nan"))
    with torch.compiler.set_stance("fail_on_recompile"):
        graph(lambda: next(batches), 9)
    assert graph.watch.check() == ("discriminator", 9)


def test_resume_is_exact(plugins_once, tmp_path: Path, monkeypatch) -> None:
    """Four steps in one run against two, then a resume to four: the same checkpoint,
    bit for bit."""
    monkeypatch.setenv("GANFORGE_STEP_GRAPH_BACKEND", "aot_eager")
    recipe = tiny(plugins_once)
    full = Trainer(recipe, plugins_once, tmp_path / "full", progress=False)
    assert isinstance(full.train_step, StepGraph)
    full.fit()
    half = Trainer(recipe.with_overrides(["run.steps=2"], plugins_once.registry),
                   plugins_once, tmp_path / "half", progress=False)
    half.fit()
    resumed = Trainer(recipe, plugins_once, tmp_path / "half", progress=False)
    resumed.restore(half.dirs.checkpoint_path(2))
    resumed.fit()
    a, b = full.state()[0], resumed.state()[0]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


@pytest.mark.parametrize(("overrides", "named"), [
    (["regularizers.r1.use=r1"], "regularizers yet (r1"),
    (["augment.use=ada"], "[augment]"),
    (["run.precision=fp16"], "fp16 loss scaling"),
    (["run.compile=true"], "leave run.compile"),
    (["optimizer.discriminator.use=sgd"], "optimizer.discriminator (SGD)"),
    (["optimizer.generator.use=rmsprop"], "optimizer.generator (RMSprop)"),
])
def test_what_cannot_be_one_graph_yet_is_refused_in_one_line(
        plugins_once, overrides: list[str], named: str) -> None:
    x = assemble(tiny(plugins_once, *overrides), plugins_once.registry, "cpu")
    with pytest.raises(UsageError) as caught:
        build_step(x, torch.Generator())
    message = str(caught.value)
    assert named in message and "\n" not in message, message


def test_the_switch_is_checked_and_off_by_default(plugins_once) -> None:
    recipe = tiny(plugins_once, "run.graph=off")
    assert type(build_step(assemble(recipe, plugins_once.registry, "cpu"),
                           torch.Generator())) is GANStep
    with pytest.raises(RecipeError, match="run.graph"):
        tiny(plugins_once, "run.graph=whole")
