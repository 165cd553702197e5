"""The peer every quality figure is measured beside: the training loop of the PyTorch DCGAN
example (``examples/dcgan/main.py``), written out here as the example writes it and
independent of ganforge's components.

- :class:`PlainGenerator`, :class:`PlainDiscriminator`, :func:`weights_init`: the example's
  networks (64x64: exactly its layers; other sizes add or drop blocks) and initialisation.
- :func:`train_plain`: its loop on a ganforge dataset (shuffled ``DataLoader``, Sigmoid +
  ``nn.BCELoss``, real and fake batches through D separately, the fake batch reused for the
  G update, Adam 2e-4 with beta1 0.5, normal latents, ``.item()`` on both losses every
  step), with a hook every ``every`` steps so a benchmark can judge it while it trains.
- :class:`PlainAsGenerator`: its generator seen as a ganforge ``Generator``, so the same
  :class:`~ganforge.evaluation.evaluator.Evaluator` judges both with the same metrics.

Speed comparisons (:mod:`ganforge.benchmarking`) time the same networks on images held on
the device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .core.errors import UsageError
from .core.interfaces import Generator, ImageSpec


def weights_init(m: nn.Module) -> None:
    """The example's initialisation: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales."""
    name = m.__class__.__name__
    weight: Any = getattr(m, "weight", None)
    bias: Any = getattr(m, "bias", None)
    if name.find("Conv") != -1:
        nn.init.normal_(weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(weight.data, 1.0, 0.02)
        nn.init.constant_(bias.data, 0)


class PlainGenerator(nn.Module):
    """The example's netG (64x64: exactly its layers; other sizes add or drop blocks)."""

    def __init__(self, nz: int, ngf: int, nc: int, image_size: int = 64) -> None:
        super().__init__()
        blocks = int(math.log2(image_size // 4))
        mult = 2 ** (blocks - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
        while mult > 1:
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
            mult //= 2
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class PlainDiscriminator(nn.Module):
    """The example's netD, with its Sigmoid (64x64: exactly its layers)."""

    def __init__(self, ndf: int, nc: int, image_size: int = 64) -> None:
        super().__init__()
        blocks = int(math.log2(image_size // 4))
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for _ in range(blocks - 1):
            layers += [nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ndf * mult * 2), nn.LeakyReLU(0.2, inplace=True)]
            mult *= 2
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class PlainAsGenerator(Generator):
    """The example's netG as a ganforge generator (normal latents ``(N, nz)``), for the
    evaluator and sample grids; it adds no weights and changes no output."""

    def __init__(self, net: PlainGenerator, nz: int, spec: ImageSpec) -> None:
        nn.Module.__init__(self)
        self.params = None
        self.net = net
        self._nz = nz
        self._spec = spec

    @property
    def latent_dim(self) -> int:
        return self._nz

    @property
    def image_spec(self) -> ImageSpec:
        return self._spec

    def sample_latent(self, n: int, generator: torch.Generator,
                      device: torch.device | str | None = "cpu") -> torch.Tensor:
        return torch.randn(n, self._nz, generator=generator).to(device or "cpu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self._nz, 1, 1))


class PlainLoop:
    """The example's two networks, loss and optimizers, and its training step."""

    def __init__(self, nz: int, width: int, nc: int, image_size: int,
                 device: torch.device) -> None:
        self.nz, self.device = nz, device
        self.netG = PlainGenerator(nz, width, nc, image_size).to(device)
        self.netD = PlainDiscriminator(width, nc, image_size).to(device)
        self.netG.apply(weights_init)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4,
                                           betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4,
                                           betas=(0.5, 0.999))

    def step(self, real_cpu: torch.Tensor) -> None:
        """One step of the example's loop on a batch of real images in [-1, 1]."""
        netD, netG, criterion, device = self.netD, self.netG, self.criterion, self.device
        real_label, fake_label = 1.0, 0.0
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        b_size = real_cpu.size(0)
        label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
        output = netD(real_cpu).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        noise = torch.randn(b_size, self.nz, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        self.optimizerG.step()
        errD.item(), errG.item()  # the example prints these every step


#: What :func:`train_plain` calls every ``every`` steps: (step, generator as ganforge
#: sees it, seconds spent training so far).
PlainHook = Callable[[int, PlainAsGenerator, float], None]


def train_plain(dataset: Any, *, steps: int, batch_size: int, width: int, seed: int,
                nz: int = 100, device: torch.device | str = "cpu", every: int = 0,
                hook: PlainHook | None = None) -> PlainAsGenerator:
    """Train the example's DCGAN on ``dataset`` (a ganforge dataset: ``(image, label)``
    items or images, in [-1, 1]) for ``steps`` batches, reshuffling every epoch as the
    example's ``DataLoader(shuffle=True)`` does; ``hook`` is called every ``every`` steps
    and at the end with the time spent training (the hook's own time excluded)."""
    device = torch.device(device)
    torch.manual_seed(seed)
    spec = dataset.image_spec
    if not spec.square:
        raise UsageError(f"the plain loop builds the example's square DCGAN, not "
                         f"{spec.pixels()} images (height x width)")
    loop = PlainLoop(nz, width, spec.channels, spec.size, device)
    generator = PlainAsGenerator(loop.netG, nz, spec)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    step, trained = 0, 0.0
    while step < steps:
        for data in loader:
            started = time.perf_counter()
            loop.step((data[0] if isinstance(data, list | tuple) else data).to(device))
            trained += time.perf_counter() - started
            step += 1
            if hook is not None and every and (step % every == 0 or step == steps):
                hook(step, generator, trained)
            if step == steps:
                break
    return generator
