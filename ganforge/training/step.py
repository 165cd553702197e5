"""The training step, public and model-agnostic: D update(s), then the G update.

:class:`GANStep` is what ``ganforge run``, ``ganforge bench`` and the tests call. It reads
nothing back to the host: the losses come back as detached device tensors, and a
non-finite loss or gradient is recorded on the device (:class:`DivergenceWatch`) until the
trainer synchronises anyway. :func:`forward_module` prepares a network for the step (DDP
under torchrun, ``torch.compile`` when asked); state dicts always come from the plain
modules, so checkpoints depend on neither.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable

import torch
from torch import nn

from ..errors import UsageError
from ..recipe import RunParams
from .assembly import Experiment
from .distributed import DistributedContext
from .divergence import DivergenceWatch, gradient_norm
from .speed import SpeedSettings


def forward_module(module: nn.Module, run: RunParams, speed: SpeedSettings,
                   dist: DistributedContext, device: torch.device) -> nn.Module:
    """What forward passes of ``module`` go through: DDP under torchrun, compiled when
    asked, else the module itself."""
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if run.sync_batchnorm:
            if device.type != "cuda":
                raise UsageError("run.sync_batchnorm needs CUDA devices")
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        # BatchNorm buffers stay per process (as in the paper's single-GPU training);
        # newer torch names the switch forward_sync_buffers.
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers"
                          in params else {"broadcast_buffers": False})
        module = DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            **no_buffer_sync)  # type: ignore[arg-type]
    if speed.compile:
        return torch.compile(module, mode=speed.compile_mode)  # type: ignore[return-value]
    return module


class GANStep:
    """One training step of an assembled experiment.

    ``forward_g``/``forward_d`` are what forward passes go through (see
    :func:`forward_module`; by default the plain networks). Latents are drawn from
    ``latent_rng``. The discriminator is updated ``run.d_steps`` times, each on a new real
    batch; the fake batch of the last D update is reused by the G update, during which D's
    parameters are frozen (no gradients into D, no DDP all-reduce for it).
    """

    def __init__(self, experiment: Experiment, latent_rng: torch.Generator, *,
                 forward_g: nn.Module | None = None, forward_d: nn.Module | None = None,
                 watch: DivergenceWatch | None = None) -> None:
        generator, discriminator, loss = (experiment.generator, experiment.discriminator,
                                          experiment.loss)
        if generator is None or discriminator is None or loss is None \
                or len(experiment.optimizers) != 2:
            raise ValueError("GANStep needs an experiment assembled with G, D, the loss and "
                             "both optimizers")
        self.experiment = experiment
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.latent_rng = latent_rng
        self.forward_g: nn.Module = generator if forward_g is None else forward_g
        self.forward_d: nn.Module = discriminator if forward_d is None else forward_d
        self.watch = DivergenceWatch(experiment.device) if watch is None else watch
        self._params_g = list(generator.parameters())
        self._params_d = list(discriminator.parameters())

    def __call__(self, next_real: Callable[[], torch.Tensor], step: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train step ``step`` (1-based) on real batches from ``next_real``; returns the
        detached D and G losses, still on the device."""
        x = self.experiment
        G, D, loss = self.forward_g, self.forward_d, self.loss
        opt_g, opt_d = x.optimizers["generator"], x.optimizers["discriminator"]
        autocast, d_steps = x.speed.autocast, x.recipe.run.d_steps
        fake = loss_d = None
        if x.speed.cuda_graphs:
            # A new training iteration: graph outputs of the previous step may be reused.
            torch.compiler.cudagraph_mark_step_begin()
        for i in range(d_steps):
            real = next_real()
            z = self.generator.sample_latent(real.shape[0], self.latent_rng, x.device)
            with autocast(x.device):
                if i == d_steps - 1:
                    fake = G(z)  # kept with its graph: the G update reuses it
                else:
                    with torch.no_grad():
                        fake = G(z)
                loss_d = loss.discriminator_loss(D, real, fake.detach()).float()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.watch.observe("discriminator", step, loss_d, gradient_norm(self._params_d))
            opt_d.step()
        assert fake is not None and loss_d is not None
        self.discriminator.requires_grad_(False)  # no gradients into D during the G update
        # Under DDP, D's gradients are not all-reduced during the G update (it has none).
        no_sync = getattr(D, "no_sync", contextlib.nullcontext)
        try:
            with autocast(x.device), no_sync():
                loss_g = loss.generator_loss(D, fake).float()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.watch.observe("generator", step, loss_g, gradient_norm(self._params_g))
            opt_g.step()
        finally:
            self.discriminator.requires_grad_(True)
        return loss_d.detach(), loss_g.detach()
