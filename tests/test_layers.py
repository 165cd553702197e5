"""ganforge.nn.layers: the spectral normalization networks share, against torch's, eager and
compiled."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.nn.layers import spectral


def _pair(make: type[nn.Module], *args: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    theirs = spectral_norm(make(*args))
    torch.manual_seed(0)
    ours = spectral(make(*args))
    return theirs, ours


@pytest.mark.parametrize(("make", "args", "shape"), [
    (nn.Conv2d, (3, 8, 3), (2, 3, 6, 6)),
    (nn.ConvTranspose2d, (8, 3, 4), (2, 8, 3, 3)),
    (nn.Linear, (5, 7), (2, 5)),
])
def test_spectral_is_torchs_spectral_norm(make: type[nn.Module], args: tuple[int, ...],
                                          shape: tuple[int, ...]) -> None:
    """Same state-dict keys and values after creation, same outputs, gradients and power
    iterations over training steps, same outputs in eval mode: checkpoints and published
    weights (mimicry's) load unchanged."""
    theirs, ours = _pair(make, *args)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    for _ in range(3):
        x = torch.randn(shape)
        a, b = theirs(x), ours(x)
        (a ** 2).sum().backward()
        (b ** 2).sum().backward()
        assert torch.equal(a, b)
    for key, value in theirs.state_dict().items():
        assert torch.equal(value, ours.state_dict()[key]), key
    for p, q in zip(theirs.parameters(), ours.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)
    theirs.eval()
    ours.eval()
    x = torch.randn(shape)
    assert torch.equal(theirs(x), ours(x))


def _critic(wrap) -> nn.Module:
    torch.manual_seed(0)
    # A 1x1 convolution of 3 channels: v has 3 entries, as in the resnet D's first shortcut.
    return nn.Sequential(wrap(nn.Conv2d(3, 8, 1)), nn.Flatten(), wrap(nn.Linear(8 * 16, 1)))


def test_compiled_d_called_twice_before_backward_trains() -> None:
    """A GAN step puts real and fake batches through one D before the backward pass.
    Compiled, torch's parametrization fails there ("modified by an inplace operation": found
    with the resnet D on an H100, torch 2.11, and here on the CPU); :func:`spectral` trains
    and computes what eager torch computes."""
    eager, compiled_module = _critic(spectral_norm), _critic(spectral)
    compiled = torch.compile(compiled_module)
    for _ in range(3):
        real, fake = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
        (compiled(real).mean() - compiled(fake).mean()).backward()
        (eager(real).mean() - eager(fake).mean()).backward()
    for key, value in eager.state_dict().items():
        assert torch.allclose(value, compiled_module.state_dict()[key], atol=1e-6), key
    for p, q in zip(eager.parameters(), compiled_module.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5)
