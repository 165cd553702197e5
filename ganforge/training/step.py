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
from typing import Any

import torch
from torch import nn

from ..core.errors import UsageError
from ..core.interfaces import Augment, is_conditional, loss_takes_labels, loss_takes_real
from ..recipe import RunParams
from .assembly import Experiment
from .distributed import DistributedContext
from .divergence import DivergenceWatch, gradient_norm
from .speed import SpeedSettings


def forward_module(module: nn.Module, run: RunParams, speed: SpeedSettings,
                   dist: DistributedContext, device: torch.device) -> nn.Module:
    """What forward passes of ``module`` go through: DDP under torchrun, compiled when
    asked (unless the network declares ``supports_compile = False``: it then runs eagerly,
    as the contract kit's compile check skips it), else the module itself."""
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
    if speed.compile and compiles(module):
        return torch.compile(module, mode=speed.compile_mode)  # type: ignore[return-value]
    return module


def compiles(module: nn.Module) -> bool:
    """False when the network (or the network inside a DDP wrapper) declares
    ``supports_compile = False``."""
    inner = getattr(module, "module", module)
    return getattr(inner, "supports_compile", True) is not False


#: What a real-batch source returns: images, or images and their class labels.
RealBatch = torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]


class LabelledCall(nn.Module):
    """What a loss (or a regularizer) receives as the discriminator: called as
    ``discriminator(images, labels)``, it passes the labels on to a conditional D and drops
    them for an unconditional one; ``discriminator(images)`` works as before labels existed.

    With an ``augment`` (``[augment]``), every image batch is augmented (with ``rng``)
    before D sees it. While a real batch is being watched (:meth:`watch`, during D's
    update), D's logits on exactly that tensor are handed to the augmentation
    (:meth:`~ganforge.core.interfaces.Augment.observe_real_logits`): every shipped loss passes
    the real batch it was given to D as it is."""

    def __init__(self, module: nn.Module, conditional: bool, name: str,
                 augment: Augment | None = None, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.module = module
        self.conditional = conditional
        self._name = name
        self._augment = augment if augment is not None and augment.changes_images else None
        self._rng = rng
        self._watched: torch.Tensor | None = None

    def watch(self, real: torch.Tensor | None) -> None:
        """Report D's logits on ``real`` to the augmentation (None: stop watching)."""
        self._watched = real

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        observed = self._augment is not None and images is self._watched
        if self._augment is not None:
            assert self._rng is not None
            images = self._augment(images, self._rng)
        if not self.conditional:
            out = self.module(images)
        elif labels is None:
            raise UsageError(f"the conditional discriminator {self._name!r} was called "
                             "without labels: the loss must pass them on")
        else:
            out = self.module(images, labels)
        if observed:
            assert self._augment is not None
            self._augment.observe_real_logits(
                (out if out.dim() == 1 else out[:, 0]).detach())
        return out


def call_generator(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
                   conditional: bool) -> torch.Tensor:
    """``G(z, labels)`` for a conditional generator, ``G(z)`` otherwise."""
    return generator(z, labels) if conditional else generator(z)


class GANStep:
    """One training step of an assembled experiment.

    ``forward_g``/``forward_d`` are what forward passes go through (see
    :func:`forward_module`; by default the plain networks). Latents (and the classes of
    fake images, in a labelled run) are drawn from ``latent_rng``. The discriminator is
    updated ``run.d_steps`` times, each on a new real batch; the fake batch of the last D
    update is reused by the G update, during which D's parameters are frozen (no gradients
    into D, no DDP all-reduce for it). Before the updates, every optimizer gets its
    scheduled learning rate; after them, the EMA of G (when kept) moves.

    Every D update adds the penalties of the recipe's regularizers that are due (``step %
    every == 0``), weighted by ``weight * every``, and lets each regularizer constrain D
    after the optimizer step (weight clipping). With an augmentation (``[augment]``), D sees
    every batch, real and fake, in both updates, through it.

    Under fp16 (``run.precision``), each update scales its loss with its own
    :class:`torch.amp.GradScaler`; a step whose gradients overflow is skipped by the
    scaler and counted in :attr:`skipped` (on the device), and only the losses are watched
    for divergence (overflowing gradients are the scaler's business).
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
        self.labelled = experiment.labelled
        self.classes = experiment.classes
        self.conditional_g = is_conditional(generator)
        self._loss_labels = loss_takes_labels(loss)
        self._loss_real = loss_takes_real(loss)
        #: Updates skipped by the fp16 loss scalers so far: [discriminator, generator].
        self.skipped = torch.zeros(2, dtype=torch.int64, device=experiment.device)
        #: The learning rates of the last step, by network.
        self.learning_rates: dict[str, float] = {}
        #: The last unweighted value of every regularizer's penalty, by label (device
        #: tensors; logged as ``reg/<label>``).
        self.penalties: dict[str, torch.Tensor] = {}
        self._regularizers = list(experiment.regularizers.items())
        # Penalties need double backward, which neither torch.compile nor DDP supports: they
        # go through the plain D (its gradients still reach DDP's hooks once, with the loss's).
        self._plain_d = LabelledCall(discriminator, is_conditional(discriminator),
                                     experiment.recipe["discriminator"].name,
                                     experiment.augment, latent_rng)

    @property
    def forward_d(self) -> nn.Module:
        """What D's forward passes go through (DDP, compiled, or D itself)."""
        return self._forward_d

    @forward_d.setter
    def forward_d(self, module: nn.Module) -> None:
        self._forward_d = module
        self._labelled_d = LabelledCall(module, is_conditional(self.discriminator),
                                        self.experiment.recipe["discriminator"].name,
                                        self.experiment.augment, self.latent_rng)

    def fake_labels(self, n: int, real_labels: torch.Tensor | None) -> torch.Tensor | None:
        """The classes of ``n`` fake images: drawn uniformly from ``latent_rng``, or the real
        batch's (``run.fake_labels``); None in an unlabelled run (no draw at all, so an
        unconditional run's random stream is what it always was)."""
        if not self.labelled:
            return None
        x = self.experiment
        if x.recipe.run.fake_labels == "real" and real_labels is not None:
            return real_labels
        return torch.randint(self.classes, (n,), generator=self.latent_rng, device=x.device)

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor, real_labels: torch.Tensor | None,
                fake_labels: torch.Tensor | None) -> torch.Tensor:
        self._labelled_d.watch(real)
        try:
            if self._loss_labels:
                return self.loss.discriminator_loss(  # type: ignore[call-arg]
                    self._labelled_d, real, fake, real_labels=real_labels,
                    fake_labels=fake_labels)
            return self.loss.discriminator_loss(self._labelled_d, real, fake)
        finally:
            self._labelled_d.watch(None)

    def _penalties(self, real: torch.Tensor, fake: torch.Tensor,
                   real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                   step: int) -> torch.Tensor | None:
        """The weighted sum of the penalties due at ``step`` (fp32, outside autocast), or
        None when none is due."""
        total: torch.Tensor | None = None
        for label, regularizer in self._regularizers:
            every = int(getattr(regularizer.params, "every", 1))
            if step % every:
                continue
            with torch.autocast(real.device.type, enabled=False):
                value = regularizer.penalty(self._plain_d, real, fake,
                                            real_labels=real_labels, fake_labels=fake_labels,
                                            generator=self.latent_rng)
            if value is None:
                continue
            self.penalties[label] = value.detach()
            weighted = float(getattr(regularizer.params, "weight", 1.0)) * every * value
            total = weighted if total is None else total + weighted
        return total

    def _g_loss(self, fake: torch.Tensor, fake_labels: torch.Tensor | None,
                real: torch.Tensor, real_labels: torch.Tensor | None,
                discriminator: nn.Module | None = None) -> torch.Tensor:
        """The loss's G term, given the keywords it takes; ``discriminator`` defaults to
        the step's labelled D (the whole-step graph passes its own)."""
        kwargs: dict[str, torch.Tensor | None] = {}
        if self._loss_labels:
            kwargs["fake_labels"] = fake_labels
        if self._loss_real:
            kwargs["real"] = real
            if self._loss_labels:
                kwargs["real_labels"] = real_labels
        d = self._labelled_d if discriminator is None else discriminator
        return self.loss.generator_loss(d, fake, **kwargs)

    def _update(self, network: str, loss: torch.Tensor, params: list[nn.Parameter],
                step: int) -> None:
        """Backward pass and optimizer step of one network (scaled under fp16)."""
        optimizer = self.experiment.optimizers[network]
        scaler = self.experiment.grad_scalers.get(network)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            self.watch.observe(network, step, loss, gradient_norm(params))
            optimizer.step()
            return
        scaler.scale(loss).backward()
        self.watch.observe(network, step, loss, torch.zeros((), device=loss.device))
        scaler.step(optimizer)
        # The scaler found inf/NaN gradients and skipped the step (a device tensor; torch
        # has no public accessor for it).
        found = sum(scaler._found_inf_per_device(optimizer).values())  # noqa: SLF001
        self.skipped[NETWORK_INDEX[network]] += torch.as_tensor(found).to(
            self.skipped.device, torch.int64)
        scaler.update()

    def __call__(self, next_real: Callable[[], RealBatch], step: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train step ``step`` (1-based) on real batches from ``next_real`` (images, or
        images and labels); returns the detached D and G losses, still on the device."""
        x = self.experiment
        G, D = self.forward_g, self.forward_d
        autocast, d_steps = x.speed.autocast, x.recipe.run.d_steps
        fake = loss_d = fake_labels = real = real_labels = None
        self.learning_rates = x.learning_rates(step)
        if x.speed.cuda_graphs:
            # A new training iteration: graph outputs of the previous step may be reused.
            torch.compiler.cudagraph_mark_step_begin()
        for i in range(d_steps):
            real, real_labels = as_labelled(next_real())
            z = self.generator.sample_latent(real.shape[0], self.latent_rng, x.device)
            fake_labels = self.fake_labels(real.shape[0], real_labels)
            with autocast(x.device):
                if i == d_steps - 1:  # kept with its graph: the G update reuses it
                    fake = call_generator(G, z, fake_labels, self.conditional_g)
                else:
                    with torch.no_grad():
                        fake = call_generator(G, z, fake_labels, self.conditional_g)
                loss_d = self._d_loss(real, fake.detach(), real_labels, fake_labels).float()
            penalty = self._penalties(real, fake.detach(), real_labels, fake_labels, step)
            self._update("discriminator", loss_d if penalty is None else loss_d + penalty,
                         self._params_d, step)
            for _label, regularizer in self._regularizers:
                regularizer.after_update(self.discriminator)
        assert fake is not None and loss_d is not None and real is not None
        self.discriminator.requires_grad_(False)  # no gradients into D during the G update
        # Under DDP, D's gradients are not all-reduced during the G update (it has none).
        no_sync = getattr(D, "no_sync", contextlib.nullcontext)
        try:
            with autocast(x.device), no_sync():
                loss_g = self._g_loss(fake, fake_labels, real, real_labels).float()
            self._update("generator", loss_g, self._params_g, step)
        finally:
            self.discriminator.requires_grad_(True)
        if x.ema is not None:
            x.ema.update(self.generator, step)
        return loss_d.detach(), loss_g.detach()

    def train(self, next_real: Callable[[], RealBatch], step: int, meter: Any) -> None:
        """Train step ``step`` and add its losses to ``meter`` (the trainer's
        :class:`~.callbacks.LossMeter`; the whole-step graph adds them in the graph)."""
        meter.add(*self(next_real, step))


#: Index of each network in :attr:`GANStep.skipped`.
NETWORK_INDEX = {"discriminator": 0, "generator": 1}


def as_labelled(batch: RealBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(images, labels or None)`` from what a real-batch source returned."""
    if isinstance(batch, tuple):
        return batch
    return batch, None
