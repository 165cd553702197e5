"""The whole training step as one graph (``run.graph = "step"``).

:class:`StepGraph` computes what :class:`~.step.GANStep` computes (every D update, the G
update, the Adam steps, the EMA of G, the running loss sums and the divergence watch) in
one function that ``torch.compile(fullgraph=True)`` captures as one graph: a graph break is
an error, not a silent split. On CUDA the graph is compiled in ``reduce-overhead`` mode, so
it replays as one CUDA graph (unmeasured until a GPU session runs ``benchmarks/
gpu_checks.sh``).

What stays outside the graph, on the host, in the same order as the eager step: drawing the
real batches (the data source, the dataset's augmentation), the latents and the fake
classes from ``latent_rng`` (so the random stream is the eager step's), the learning rates
of the schedules and the EMA's beta (numbers written into one small device tensor).

Backward passes are ``torch.autograd.grad`` calls traced by Dynamo
(``trace_autograd_ops``); the optimizer update is written out here (Adam and AdamW, torch's
formulas) on the optimizers' own state tensors (``step``, ``exp_avg``, ``exp_avg_sq``), so
checkpoints, exact resume and an eager continuation read and write the same state:
``torch.optim``'s ``step()`` breaks the graph on purpose, and Dynamo refuses an optimizer
step after a backward pass in the same graph.

What cannot go into one graph yet is refused with one line (:func:`graph_refusal`):
regularizers (double backward, lazy ``every``), an image-changing ``[augment]`` (ADA's
``p`` update reads D's logits on the host; DiffAugment draws from a host generator), fp16
loss scaling (the scaler decides on the host), DDP (per-backward all-reduce hooks),
``run.compile`` (per network: the two do not combine), networks that declare
``supports_compile = False`` and optimizers other than Adam/AdamW.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.errors import UsageError
from ..core.interfaces import is_conditional
from .assembly import Experiment
from .distributed import DistributedContext
from .divergence import DivergenceWatch
from .ema import ema_beta
from .step import GANStep, LabelledCall, RealBatch, as_labelled, call_generator, compiles


# torch.compile's backend for the step graph: Inductor, unless
# GANFORGE_STEP_GRAPH_BACKEND names another (``aot_eager`` checks graph capture where no
# C++ compiler is at hand, or quickly, as the tests and ``gpu_checks.sh --dry-run`` do).
def default_backend() -> str:
    return os.environ.get("GANFORGE_STEP_GRAPH_BACKEND", "inductor")


#: Adam-family optimizers the graph updates itself: torch's formulas, torch's state keys.
GRAPH_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


def graph_refusal(experiment: Experiment, dist: DistributedContext | None = None
                  ) -> str | None:
    """Why ``run.graph = "step"`` cannot capture this experiment's step yet (one line), or
    None when it can."""
    x, why = experiment, "run.graph = 'step' cannot capture"
    run = x.recipe.run
    if not hasattr(torch._dynamo.config, "trace_autograd_ops"):
        return (f"{why} backward passes with torch {torch.__version__} (no "
                "torch._dynamo.config.trace_autograd_ops); use run.graph = 'off'")
    if run.compile:
        return ("run.graph = 'step' compiles the whole step itself: leave run.compile "
                "(per network) off")
    if x.speed.fp16:
        return (f"{why} fp16 loss scaling (the GradScaler skips steps on the host); use "
                "precision 'bf16' or 'fp32'")
    if dist is not None and dist.enabled:
        return f"{why} DDP under torchrun (its all-reduce hooks run per backward pass)"
    if x.regularizers:
        return (f"{why} regularizers yet ({', '.join(sorted(x.regularizers))}: double "
                "backward, lazy 'every' steps); remove them or use run.graph = 'off'")
    if x.augment is not None and x.augment.changes_images:
        return (f"{why} [augment] {x.recipe['augment'].name!r} yet (ADA's p update reads "
                "D's logits on the host; its random draws come from a host generator)")
    for name, module in (("generator", x.generator), ("discriminator", x.discriminator)):
        if module is not None and not compiles(module):
            return f"{why} the {name}: it declares supports_compile = False"
    for name, opt in x.optimizers.items():
        group = opt.param_groups[0]
        if type(opt) not in GRAPH_OPTIMIZERS or len(opt.param_groups) != 1 or any(
                group.get(k) for k in ("amsgrad", "maximize", "differentiable")):
            return (f"{why} optimizer.{name} ({type(opt).__name__}{_flags(group)}): the "
                    "graph updates plain Adam and AdamW only")
    return None


def _flags(group: dict[str, Any]) -> str:
    on = [k for k in ("amsgrad", "maximize", "differentiable") if group.get(k)]
    return f" with {', '.join(on)}" if on else ""


def build_step(experiment: Experiment, latent_rng: torch.Generator, *,
               forward_g: nn.Module | None = None, forward_d: nn.Module | None = None,
               watch: DivergenceWatch | None = None,
               dist: DistributedContext | None = None) -> GANStep:
    """The training step the recipe asks for: :class:`StepGraph` with ``run.graph =
    "step"`` (refused with a :class:`UsageError` where it cannot work), else
    :class:`GANStep` with the given forward modules."""
    if experiment.recipe.run.graph != "step":
        return GANStep(experiment, latent_rng, forward_g=forward_g, forward_d=forward_d,
                       watch=watch)
    refusal = graph_refusal(experiment, dist)
    if refusal is not None:
        raise UsageError(refusal)
    return StepGraph(experiment, latent_rng, watch=watch)


class StepGraph(GANStep):
    """:class:`GANStep` as one compiled graph. ``backend`` is ``torch.compile``'s
    (tests use ``"aot_eager"`` or a counting backend); ``mode`` defaults to
    ``reduce-overhead`` on CUDA (CUDA graphs), Inductor's default elsewhere."""

    def __init__(self, experiment: Experiment, latent_rng: torch.Generator, *,
                 watch: DivergenceWatch | None = None,
                 backend: str | Callable[..., Any] | None = None,
                 mode: str | None = None) -> None:
        super().__init__(experiment, latent_rng, watch=watch)
        x = experiment
        backend = default_backend() if backend is None else backend
        self.cuda_graphs = x.device.type == "cuda" and backend == "inductor"
        if mode is None and self.cuda_graphs:
            mode = "reduce-overhead"
        self._graph_d = LabelledCall(self.discriminator, is_conditional(self.discriminator),
                                     x.recipe["discriminator"].name)
        # [step, lr of D, lr of G, weight of G in the EMA's lerp]
        self.scalars = torch.zeros(4, device=x.device)
        self._sums = torch.zeros(2, device=x.device)
        self._hyper = {name: adam_hyper(opt) for name, opt in x.optimizers.items()}
        for module, name in ((self.discriminator, "discriminator"), (self.generator,
                                                                     "generator")):
            if list(module.parameters()) != x.optimizers[name].param_groups[0]["params"]:
                raise UsageError(f"run.graph = 'step': optimizer.{name} must update every "
                                 f"parameter of the {name}, in order")
        self.compiled = torch.compile(self._graph, fullgraph=True, backend=backend,
                                      mode=mode)

    def _scalars(self, step: int) -> torch.Tensor:
        x = self.experiment
        self.learning_rates = x.learning_rates(step)
        ema = x.ema
        weight = 1.0 - ema_beta(ema.params, step, ema.batch_size) if ema is not None else 0.0
        values = [float(step), self.learning_rates["discriminator"],
                  self.learning_rates["generator"], weight]
        self.scalars.copy_(torch.tensor(values, dtype=self.scalars.dtype))
        return self.scalars

    def _draw(self, next_real: Callable[[], RealBatch]) -> list[tuple[Any, ...]]:
        """The inputs of every D update, drawn in the eager step's order."""
        drawn = []
        for _ in range(self.experiment.recipe.run.d_steps):
            real, real_labels = as_labelled(next_real())
            z = self.generator.sample_latent(real.shape[0], self.latent_rng,
                                             self.experiment.device)
            drawn.append((real, real_labels, z, self.fake_labels(real.shape[0],
                                                                 real_labels)))
        return drawn

    def __call__(self, next_real: Callable[[], RealBatch], step: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run(next_real, step, self._sums)

    def train(self, next_real: Callable[[], RealBatch], step: int, meter: Any) -> None:
        """One step whose losses are added to ``meter``'s sums inside the graph."""
        self.run(next_real, step, meter.sums)
        meter.count += 1

    def run(self, next_real: Callable[[], RealBatch], step: int, sums: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train step ``step``: draw its inputs, then replay the graph; the detached D and
        G losses come back (on CUDA, valid until the next step's replay)."""
        drawn = self._draw(next_real)
        scalars = self._scalars(step)
        states = [adam_state(self.experiment.optimizers[n])
                  for n in ("discriminator", "generator")]
        watched = [self.watch._first[n] for n in ("discriminator", "generator")]  # noqa: SLF001
        if self.cuda_graphs:
            for t in [*watched, sums] + [s for state in states for s in state]:
                torch._dynamo.mark_static_address(t)
            torch.compiler.cudagraph_mark_step_begin()
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            loss_d, loss_g = self.compiled(drawn, scalars, sums, watched, states)
        return loss_d, loss_g

    def _graph(self, drawn: list[tuple[Any, ...]], scalars: torch.Tensor,
               sums: torch.Tensor, watched: list[torch.Tensor],
               states: list[list[list[torch.Tensor]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything one training step computes on the device (the compiled function)."""
        x = self.experiment
        autocast, G = x.speed.autocast, self.generator
        params_d, params_g = list(self.discriminator.parameters()), list(G.parameters())
        step = scalars[0]
        loss_d = fake = fake_labels = real = real_labels = None
        for i, (real, real_labels, z, fake_labels) in enumerate(drawn):
            with autocast(x.device):
                if i == len(drawn) - 1:
                    fake = call_generator(G, z, fake_labels, self.conditional_g)
                else:
                    with torch.no_grad():
                        fake = call_generator(G, z, fake_labels, self.conditional_g)
                loss_d, grads = _value_and_grads(self._graph_loss_d(
                    real, fake.detach(), real_labels, fake_labels), params_d)
            _observe(watched[0], step, loss_d, grads)
            adam_update(self._hyper["discriminator"], params_d, grads, states[0], scalars[1])
        assert loss_d is not None and fake is not None and real is not None
        with autocast(x.device):
            # Gradients of G's parameters only: none for D's weights (D is "frozen").
            loss_g, grads = _value_and_grads(self._g_loss(
                fake, fake_labels, real, real_labels, self._graph_d).float(), params_g)
        _observe(watched[1], step, loss_g, grads)
        adam_update(self._hyper["generator"], params_g, grads, states[1], scalars[2])
        if x.ema is not None:
            with torch.no_grad():
                for mine, theirs in zip(x.ema.average.parameters(), params_g, strict=True):
                    mine.lerp_(theirs.detach(), scalars[3])
                for buffer, source in zip(x.ema.average.buffers(), G.buffers(), strict=True):
                    buffer.copy_(source)
        sums.add_(torch.stack((loss_d, loss_g)))
        return loss_d, loss_g

    def _graph_loss_d(self, real: torch.Tensor, fake: torch.Tensor,
                      real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None
                      ) -> torch.Tensor:
        if self._loss_labels:
            return self.loss.discriminator_loss(  # type: ignore[call-arg]
                self._graph_d, real, fake, real_labels=real_labels,
                fake_labels=fake_labels).float()
        return self.loss.discriminator_loss(self._graph_d, real, fake).float()


def _value_and_grads(loss: torch.Tensor, params: list[nn.Parameter]
                     ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The detached loss and its gradients (the loss is an argument, not a local of the
    caller: Dynamo refuses a traced backward whose graph a live local still needs)."""
    grads = torch.autograd.grad(loss, params)
    return loss.detach(), grads


def _observe(first: torch.Tensor, step: torch.Tensor, loss: torch.Tensor,
             grads: tuple[torch.Tensor, ...]) -> None:
    """:meth:`DivergenceWatch.observe` in the graph: the first step whose loss or gradient
    norm is not finite, written in place into the watch's tensor."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float())
                                                 for g in grads]))
    bad = ~(torch.isfinite(loss) & torch.isfinite(norm))
    first.copy_(torch.where(bad & (first < 0), step.to(first.dtype), first))


def adam_state(optimizer: torch.optim.Optimizer) -> list[list[torch.Tensor]]:
    """``[steps, exp_avgs, exp_avg_sqs]`` of the optimizer's (single) param group, created
    as torch creates them on its first step where they are missing (zero moments, step 0
    on the parameter's device), so an eager optimizer continues from them exactly."""
    steps, exp_avgs, exp_avg_sqs = [], [], []
    for p in optimizer.param_groups[0]["params"]:
        state = optimizer.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        steps.append(state["step"])
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
    return [steps, exp_avgs, exp_avg_sqs]


def adam_hyper(optimizer: torch.optim.Optimizer) -> tuple[float, float, float, float, bool]:
    """``(beta1, beta2, eps, weight_decay, decoupled)`` of the optimizer's param group, read
    once on the host (the graph never touches the optimizer object)."""
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    decoupled = isinstance(optimizer, torch.optim.AdamW) or bool(
        group.get("decoupled_weight_decay", False))
    return float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]), \
        decoupled


def adam_update(hyper: tuple[float, float, float, float, bool], params: list[nn.Parameter],
                grads: tuple[torch.Tensor, ...], state: list[list[torch.Tensor]],
                lr: torch.Tensor) -> None:
    """One Adam (AdamW: decoupled weight decay) step, torch's formulas with the learning
    rate and step count as tensors (as torch's ``capturable`` path computes them)."""
    beta1, beta2, eps, decay, decoupled = hyper
    with torch.no_grad():
        for p, g, step, m, v in zip(params, grads, *state, strict=True):
            step.add_(1)
            if decay and decoupled:
                p.mul_(1 - lr * decay)
            elif decay:
                g = g.add(p, alpha=decay)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step_size = lr / (1 - beta1 ** step)
            denom = (v.sqrt() / (1 - beta2 ** step).sqrt()).add_(eps)
            p.sub_(step_size * m / denom)
