"""ganforge.nn: the old module names are the new modules, and the shared network bases and
image-size checks behave as the shipped plugins' own copies did."""

from __future__ import annotations

import attrs
import pytest
import torch

from ganforge import ImageSpec, RecipeError
from ganforge.errors import UsageError
from ganforge.nn.network import ImageSizes, NetworkDiscriminator, NetworkGenerator


def test_old_names_are_the_same_modules(monkeypatch) -> None:
    import ganforge.conditioning
    import ganforge.layers
    import ganforge.nn.conditioning
    import ganforge.nn.layers

    assert ganforge.layers is ganforge.nn.layers
    assert ganforge.conditioning is ganforge.nn.conditioning
    from ganforge.layers import NORMS, _store, spectral  # private names too

    assert spectral is ganforge.nn.layers.spectral and callable(_store) and "batch" in NORMS
    monkeypatch.setattr(ganforge.layers, "NORMS", ("batch",))
    assert ganforge.nn.layers.NORMS == ("batch",)


def test_image_sizes_refuse_in_the_plugins_words() -> None:
    sizes = ImageSizes("toy", (32, 64))

    @attrs.frozen
    class Params:
        image_size: int | None = attrs.field(default=None, validator=sizes.validator)

    assert Params(32).image_size == 32 and Params().image_size is None
    with pytest.raises(ValueError, match=r"'image_size' must be one of \[32, 64\]: 48"):
        Params(48)
    with pytest.raises(RecipeError, match="the toy generator builds images of size 32, 64 "
                                          "only, not 16"):
        sizes.check_dataset_size("generator", 16)


@attrs.frozen
class _Params:
    latent_dim: int = 8
    prior: str = "normal"
    image_size: int | None = None
    channels: int | None = None
    conditional: bool = False


class _G(NetworkGenerator):
    def __init__(self, params: _Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.setup_network(params, image_spec, ImageSizes("toy", (8,)))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return z.new_zeros(z.shape[0], *self.image_spec.shape())


class _D(NetworkDiscriminator):
    def __init__(self, params: _Params, image_spec: ImageSpec | None = None) -> None:
        super().__init__()
        self.setup_network(params, image_spec)

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return images.flatten(1).mean(1)


def test_network_bases_give_the_repeated_properties() -> None:
    spec = ImageSpec(channels=1, size=8, classes=3)
    g = _G(_Params(), spec)
    assert (g.latent_dim, g.image_spec, g.conditional, g.classes) == (8, spec, False, 0)
    draw = g.sample_latent(4, torch.Generator().manual_seed(0))
    assert torch.equal(draw, torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    cg = _G(_Params(conditional=True), spec)
    assert cg.conditional and cg.classes == 3 and not g.conditional  # per instance
    d = _D(_Params(conditional=True), spec)
    assert d.conditional and d.classes == 3 and d.image_spec == spec
    assert list(g.state_dict()) == [] and list(d.state_dict()) == []  # nothing added
    with pytest.raises(RecipeError, match="the toy generator builds images of size 8"):
        _G(_Params(), ImageSpec(channels=1, size=16))
    with pytest.raises(UsageError, match="conditional = true needs a dataset with classes"):
        _D(_Params(conditional=True), ImageSpec(channels=1, size=8))


def test_tracer_groups_layers_and_leaves_the_network_as_found() -> None:
    from torch import nn

    from ganforge.nn.layers import spectral
    from ganforge.nn.tracing import group, is_spectral, trace

    net = nn.Sequential(spectral(nn.Conv2d(1, 4, 3)), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 1))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    structure = group(trace(net, torch.randn(2, 1, 8, 8)))
    assert [layer.label for layer in structure.layers] == ["0 (Conv2d)", "5 (Linear)"]
    first = structure.layers[0]
    assert len(first.batchnorms) == 1 and len(first.activations) == 1
    assert [call.label for call in structure.resamplers] == ["3 (MaxPool2d)"]
    assert is_spectral(first.weight.module) and not is_spectral(structure.layers[1].weight.module)
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
