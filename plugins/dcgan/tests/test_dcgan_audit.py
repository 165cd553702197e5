"""The DCGAN architecture-guidelines audit (ganforge_dcgan.audit) on hand-built networks."""

from __future__ import annotations

import pytest
import torch
from ganforge_dcgan.audit import (
    AUDITOR,
    GUIDELINES,
    GuidelineResult,
    audit,
    audit_discriminator,
    audit_generator,
)
from torch import nn

from ganforge import AuditResult

NZ, NGF, NDF, NC, SIZE, BATCH = 16, 8, 8, 3, 64, 2


class Net(nn.Module):
    """A network holding its layers in an ``nn.Sequential`` called ``main``."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def dcgan_init(module: nn.Module) -> None:
    """Apply the PyTorch DCGAN example's ``weights_init``, extended to Linear layers."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def g_layers() -> list[nn.Module]:
    """Layers of the PyTorch DCGAN example generator (64x64 output)."""
    return [
        nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False),  # main.0
        nn.BatchNorm2d(NGF * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),  # main.3
        nn.BatchNorm2d(NGF * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),  # main.6
        nn.BatchNorm2d(NGF * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),  # main.9
        nn.BatchNorm2d(NGF),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False),  # main.12
        nn.Tanh(),  # main.13
    ]


def d_layers() -> list[nn.Module]:
    """Layers of the PyTorch DCGAN example discriminator, emitting raw logits."""
    return [
        nn.Conv2d(NC, NDF, 4, 2, 1, bias=False),  # main.0
        nn.LeakyReLU(0.2, inplace=True),  # main.1
        nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),  # main.2
        nn.BatchNorm2d(NDF * 2),
        nn.LeakyReLU(0.2, inplace=True),  # main.4
        nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),  # main.5
        nn.BatchNorm2d(NDF * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False),  # main.8
        nn.BatchNorm2d(NDF * 8),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False),  # main.11
        nn.Flatten(),  # main.12
    ]


def build(layers: list[nn.Module], *, init: bool = True) -> Net:
    torch.manual_seed(0)
    net = Net(layers)
    if init:
        net.apply(dcgan_init)
    return net


def z_batch() -> torch.Tensor:
    return torch.randn(BATCH, NZ, 1, 1, generator=torch.Generator().manual_seed(1))


def image_batch() -> torch.Tensor:
    return torch.randn(BATCH, NC, SIZE, SIZE, generator=torch.Generator().manual_seed(2))


def by_guideline(results: list[AuditResult]) -> dict[str, AuditResult]:
    assert [r.guideline for r in results] == list(GUIDELINES)
    return {r.guideline: r for r in results}


def failed(results: list[AuditResult]) -> set[str]:
    return {r.guideline for r in results if not r.passed}


# --------------------------------------------------------------------------- references


def test_reference_generator_passes_every_check() -> None:
    results = audit_generator(build(g_layers()), z_batch())
    assert len(results) == len(GUIDELINES)
    assert all(r.network == "generator" for r in results)
    assert failed(results) == set(), [r.detail for r in results if not r.passed]
    checks = by_guideline(results)
    assert "4 of 4" in checks["batchnorm"].detail
    assert "upsamples with 4 strided ConvTranspose" in checks["strided convolutions"].detail


def test_reference_discriminator_passes_every_check() -> None:
    results = audit_discriminator(build(d_layers()), image_batch())
    assert all(r.network == "discriminator" for r in results)
    assert failed(results) == set(), [r.detail for r in results if not r.passed]
    checks = by_guideline(results)
    assert "3 of 3 hidden layers" in checks["batchnorm"].detail
    assert "downsamples with 4 strided" in checks["strided convolutions"].detail


def test_audit_reports_generator_first_then_discriminator() -> None:
    results = audit(build(g_layers()), build(d_layers()), z_batch(), image_batch())
    assert [r.network for r in results] == ["generator"] * 6 + ["discriminator"] * 6
    assert [r.guideline for r in results] == list(GUIDELINES) * 2
    assert all(r.passed for r in results)


def test_results_are_the_core_audit_result_named_by_the_auditor() -> None:
    results = audit(build(g_layers()), build(d_layers()), z_batch(), image_batch())
    assert all(type(r) is AuditResult and r.auditor == AUDITOR for r in results)
    assert AUDITOR == "DCGAN guidelines"


def test_guideline_result_is_the_frozen_core_type_and_validates_network() -> None:
    assert GuidelineResult is AuditResult  # the old name still imports
    result = GuidelineResult("generator", "batchnorm", True, "ok")
    assert result.auditor == ""
    with pytest.raises(AttributeError):
        result.passed = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="network"):
        GuidelineResult("critic", "batchnorm", True, "ok")


# ------------------------------------------------------------------ generator variants


def test_generator_without_hidden_batchnorm_fails_batchnorm() -> None:
    layers = g_layers()
    del layers[7]  # BN after main.6
    del layers[4]  # BN after main.3
    results = audit_generator(build(layers), z_batch())
    assert failed(results) == {"batchnorm"}
    detail = by_guideline(results)["batchnorm"].detail
    assert "main.3 (ConvTranspose2d) has no BatchNorm" in detail
    assert "main.5 (ConvTranspose2d) has no BatchNorm" in detail
    assert detail.count("; ") == 1


def test_generator_with_batchnorm_on_output_fails_batchnorm() -> None:
    layers = g_layers()
    layers.insert(13, nn.BatchNorm2d(NC))
    results = audit_generator(build(layers), z_batch())
    assert failed(results) == {"batchnorm"}
    detail = by_guideline(results)["batchnorm"].detail
    assert "main.13 (BatchNorm2d)" in detail
    assert "output layer main.12 (ConvTranspose2d)" in detail


def test_generator_with_upsample_conv_fails_pooling_and_strides() -> None:
    layers = g_layers()
    layers[3:4] = [nn.Upsample(scale_factor=2), nn.Conv2d(NGF * 8, NGF * 4, 3, 1, 1, bias=False)]
    results = audit_generator(build(layers), z_batch())
    assert failed(results) == {"no pooling", "strided convolutions"}
    checks = by_guideline(results)
    assert "main.3 (Upsample)" in checks["no pooling"].detail
    assert "main.3 (Upsample)" in checks["strided convolutions"].detail
    assert "ConvTranspose" in checks["strided convolutions"].detail


def test_generator_upsampling_only_by_interpolation_names_missing_transpose() -> None:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(NZ, NGF * 2, 4, 1, 0, bias=False),
        nn.BatchNorm2d(NGF * 2),
        nn.ReLU(),
        nn.UpsamplingNearest2d(scale_factor=2),
        nn.Conv2d(NGF * 2, NC, 3, 1, 1, bias=False),
        nn.Tanh(),
    ]
    results = audit_generator(build(layers), z_batch())
    assert failed(results) == {"no pooling", "strided convolutions"}
    detail = by_guideline(results)["strided convolutions"].detail
    assert "no ConvTranspose with stride > 1" in detail
    assert "main.3 (UpsamplingNearest2d)" in detail


def test_generator_without_final_tanh_fails_activations() -> None:
    layers = g_layers()
    del layers[13]
    results = audit_generator(build(layers), z_batch())
    assert failed(results) == {"activations"}
    detail = by_guideline(results)["activations"].detail
    assert "main.12 (ConvTranspose2d)" in detail
    assert "expected Tanh" in detail


def test_generator_with_leaky_relu_fails_activations() -> None:
    layers = g_layers()
    layers[5] = nn.LeakyReLU(0.2)
    results = audit_generator(build(layers), z_batch())
    assert failed(results) == {"activations"}
    detail = by_guideline(results)["activations"].detail
    assert detail == "main.5 (LeakyReLU) after main.3 (ConvTranspose2d) should be ReLU"


def test_generator_linear_z_projection_is_allowed() -> None:
    layers: list[nn.Module] = [
        nn.Linear(NZ, NGF * 8 * 4 * 4, bias=False),
        nn.BatchNorm1d(NGF * 8 * 4 * 4),
        nn.ReLU(),
        nn.Unflatten(1, (NGF * 8, 4, 4)),
        *g_layers()[3:],
    ]
    results = audit_generator(build(layers), torch.randn(BATCH, NZ))
    assert failed(results) == set(), [r.detail for r in results if not r.passed]
    assert "z projection" in by_guideline(results)["no fully connected hidden layers"].detail


def test_generator_linear_hidden_layer_fails_fc() -> None:
    layers: list[nn.Module] = [
        nn.Linear(NZ, 32, bias=False),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, NGF * 4 * 8 * 8, bias=False),  # main.3
        nn.BatchNorm1d(NGF * 4 * 8 * 8),
        nn.ReLU(),
        nn.Unflatten(1, (NGF * 4, 8, 8)),
        *g_layers()[6:],
    ]
    results = audit_generator(build(layers), torch.randn(BATCH, NZ))
    assert failed(results) == {"no fully connected hidden layers"}
    detail = by_guideline(results)["no fully connected hidden layers"].detail
    assert detail.startswith("main.3 (Linear) is a fully connected hidden layer")
    assert "main.0" not in detail


def test_generator_with_default_init_fails_init_only() -> None:
    results = audit_generator(build(g_layers(), init=False), z_batch())
    assert failed(results) == {"init N(0, 0.02)"}
    detail = by_guideline(results)["init N(0, 0.02)"].detail
    assert "main.12 (ConvTranspose2d): weight std" in detail
    assert "outside [0.015, 0.025]" in detail


def test_init_check_flags_batchnorm_bias() -> None:
    net = build(g_layers())
    with torch.no_grad():
        net.main[4].bias.fill_(0.5)
    detail = by_guideline(audit_generator(net, z_batch()))["init N(0, 0.02)"].detail
    assert detail.startswith("main.4 (BatchNorm2d): bias not zero")


# -------------------------------------------------------------- discriminator variants


def test_discriminator_batchnorm_after_input_fails_batchnorm() -> None:
    layers = d_layers()
    layers.insert(1, nn.BatchNorm2d(NDF))
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"batchnorm"}
    detail = by_guideline(results)["batchnorm"].detail
    assert "main.1 (BatchNorm2d)" in detail
    assert "input layer main.0 (Conv2d)" in detail


def test_discriminator_hidden_instance_norm_is_not_batchnorm() -> None:
    layers = d_layers()
    layers[3] = nn.InstanceNorm2d(NDF * 2)
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"batchnorm"}
    detail = by_guideline(results)["batchnorm"].detail
    assert detail == ("main.2 (Conv2d) has no BatchNorm (main.3 (InstanceNorm2d) is not BatchNorm)")


def test_discriminator_maxpool_fails_pooling_and_strides() -> None:
    layers = d_layers()
    layers[2:3] = [nn.Conv2d(NDF, NDF * 2, 3, 1, 1, bias=False), nn.MaxPool2d(2)]
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"no pooling", "strided convolutions"}
    checks = by_guideline(results)
    assert checks["no pooling"].detail == "main.3 (MaxPool2d) is a pooling layer"
    assert "main.3 (MaxPool2d) pools" in checks["strided convolutions"].detail


def test_discriminator_linear_hidden_layer_fails_fc() -> None:
    layers = d_layers()
    layers[11:] = [
        nn.Flatten(),
        nn.Linear(NDF * 8 * 4 * 4, 32, bias=False),  # main.12
        nn.BatchNorm1d(32),
        nn.LeakyReLU(0.2),
        nn.Linear(32, 1),  # main.15, the logit: allowed
    ]
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"no fully connected hidden layers"}
    detail = by_guideline(results)["no fully connected hidden layers"].detail
    assert detail.startswith("main.12 (Linear) is a fully connected hidden layer")
    assert "main.15" not in detail


def test_discriminator_leaky_slope_0_1_fails_activations() -> None:
    layers = d_layers()
    layers[4] = nn.LeakyReLU(0.1)
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"activations"}
    detail = by_guideline(results)["activations"].detail
    assert "main.4 (LeakyReLU)" in detail
    assert "negative_slope=0.1" in detail
    assert "main.2 (Conv2d)" in detail


def test_discriminator_relu_instead_of_leaky_fails_activations() -> None:
    layers = d_layers()
    layers[1] = nn.ReLU()
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"activations"}
    detail = by_guideline(results)["activations"].detail
    assert detail == "main.1 (ReLU) after main.0 (Conv2d) should be LeakyReLU(0.2)"


def test_discriminator_sigmoid_at_end_fails_activations() -> None:
    layers = d_layers()
    layers.append(nn.Sigmoid())  # main.13
    results = audit_discriminator(build(layers), image_batch())
    assert failed(results) == {"activations"}
    detail = by_guideline(results)["activations"].detail
    assert "main.13 (Sigmoid)" in detail
    assert "sigmoid belongs to the loss" in detail


def test_discriminator_with_default_init_fails_init_only() -> None:
    results = audit_discriminator(build(d_layers(), init=False), image_batch())
    assert failed(results) == {"init N(0, 0.02)"}
    assert "main.0 (Conv2d): weight std" in by_guideline(results)["init N(0, 0.02)"].detail


# ------------------------------------------------------------ structure and side effects


class FunctionalStyleD(nn.Module):
    """A non-Sequential D that reuses one LeakyReLU module after every layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(NC, NDF, 4, 2, 1, bias=False)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {"conv": nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), "bn": nn.BatchNorm2d(2 * c)}
            )
            for c in (NDF, NDF * 2, NDF * 4)
        )
        self.act = nn.LeakyReLU(0.2)
        self.head = nn.Linear(NDF * 8 * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        for block in self.blocks:
            x = self.act(block["bn"](block["conv"](x)))
        return self.head(x.flatten(1))


def test_audit_follows_execution_order_of_any_module_tree() -> None:
    torch.manual_seed(0)
    net = FunctionalStyleD()
    net.apply(dcgan_init)
    results = audit_discriminator(net, image_batch())
    assert failed(results) == set(), [r.detail for r in results if not r.passed]

    # Swap the shared activation: every layer before the logit must be named.
    net.act = nn.LeakyReLU(0.3)
    detail = by_guideline(audit_discriminator(net, image_batch()))["activations"].detail
    for layer in ("stem (Conv2d)", "blocks.0.conv (Conv2d)", "blocks.2.conv (Conv2d)"):
        assert f"act (LeakyReLU) after {layer} has negative_slope=0.3" in detail
    assert detail.count("; ") == 3


def test_audit_leaves_no_trace() -> None:
    gen, disc = build(g_layers()), build(d_layers())
    gen.train()
    disc.train()
    disc.main[6].eval()  # mixed flags must be restored module by module
    # Give the BatchNorm buffers non-default values so a silent update would show.
    gen(z_batch())
    disc(image_batch())
    nets = (gen, disc)
    states = [{k: v.clone() for k, v in net.state_dict().items()} for net in nets]
    flags = [[m.training for m in net.modules()] for net in nets]

    audit(gen, disc, z_batch(), image_batch())

    for net, state, flag in zip(nets, states, flags, strict=True):
        assert [m.training for m in net.modules()] == flag
        after = net.state_dict()
        assert after.keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(after[key], value), key
        assert all(not m._forward_hooks for m in net.modules())
    assert disc.main[6].training is False
    assert disc.main[3].training is True


def test_audit_restores_state_even_if_forward_fails() -> None:
    gen = build(g_layers())
    gen.train()
    with pytest.raises(RuntimeError):
        audit_generator(gen, torch.randn(BATCH, NZ + 1, 1, 1))
    assert all(m.training for m in gen.modules())
    assert all(not m._forward_hooks for m in gen.modules())


def test_single_weight_layer_fails_with_detail_instead_of_raising() -> None:
    gen = build([nn.ConvTranspose2d(NZ, NC, 4, 2, 1, bias=False), nn.Tanh()])
    checks = by_guideline(audit_generator(gen, z_batch()))
    for name in ("batchnorm", "no fully connected hidden layers", "activations"):
        assert checks[name].passed is False
        assert "found 1 weight layer(s)" in checks[name].detail
    assert checks["no pooling"].passed is True
    assert checks["init N(0, 0.02)"].passed is True

    disc = build([nn.Conv2d(NC, 1, 4, 2, 1, bias=False), nn.Flatten()])
    checks = by_guideline(audit_discriminator(disc, image_batch()))
    assert checks["batchnorm"].passed is False
    assert "found 1 weight layer(s)" in checks["batchnorm"].detail


def test_network_without_weight_layers_fails_with_detail() -> None:
    checks = by_guideline(audit_discriminator(nn.Sequential(nn.Tanh()), image_batch()))
    assert not checks["strided convolutions"].passed
    assert "no Conv with stride > 1" in checks["strided convolutions"].detail
    assert "found 0 weight layer(s)" in checks["activations"].detail
    assert not checks["init N(0, 0.02)"].passed
    assert "no weight layers" in checks["init N(0, 0.02)"].detail


# -------------------------------------------------------------- spectral normalization


def spectral_normed(net: Net, indices: list[int], *, hook: bool = False) -> Net:
    """``net`` with spectral normalization of the layers at ``indices`` of ``main``, after
    their initialisation: torch's parametrization, or the older forward pre-hook."""
    from torch.nn.utils import spectral_norm
    from torch.nn.utils.parametrizations import spectral_norm as parametrized_spectral_norm

    wrap = spectral_norm if hook else parametrized_spectral_norm
    for index in indices:
        net.main[index] = wrap(net.main[index])
    return net


@pytest.mark.parametrize("hook", [False, True], ids=["parametrization", "hook"])
def test_spectral_norm_beside_batchnorm_is_a_deviation(hook: bool) -> None:
    # SN-GAN's way: spectral normalization of every D layer; BatchNorm kept in the hidden ones.
    net = spectral_normed(build(d_layers()), [0, 2, 5, 8, 11], hook=hook)
    results = audit_discriminator(net, image_batch())
    assert failed(results) == {"batchnorm"}
    detail = by_guideline(results)["batchnorm"].detail
    for path in ("main.0", "main.2", "main.5", "main.8", "main.11"):
        assert f"{path} (Conv2d) has spectral normalization, which the paper does not use" \
            in detail
    assert "Parametrized" not in detail
    # The weights before normalization are the ones drawn from N(0, 0.02).
    init = by_guideline(results)["init N(0, 0.02)"]
    assert init.passed, init.detail
    assert "5 weight tensor(s) ~ N(0, 0.02) (5 before spectral normalization)" in init.detail


def test_spectral_norm_instead_of_batchnorm_is_named() -> None:
    layers = g_layers()
    layers[4] = nn.Identity()  # main.3's BatchNorm
    net = spectral_normed(build(layers), [3])
    detail = by_guideline(audit_generator(net, z_batch()))["batchnorm"].detail
    assert detail == "main.3 (ConvTranspose2d) has no BatchNorm (spectral normalization instead)"


def test_spectral_norm_with_default_init_fails_init_on_the_original_weight() -> None:
    net = spectral_normed(build(d_layers(), init=False), [0])
    detail = by_guideline(audit_discriminator(net, image_batch()))["init N(0, 0.02)"].detail
    assert detail.startswith("main.0 (Conv2d): weight std 0.08")


def test_init_check_judges_affine_norms_like_batchnorm() -> None:
    layers = d_layers()
    layers[3] = nn.GroupNorm(1, NDF * 2)
    net = build(layers)  # the example's weights_init leaves GroupNorm at weight 1, bias 0
    init = by_guideline(audit_discriminator(net, image_batch()))["init N(0, 0.02)"]
    assert init.passed and "2 BatchNorm, 1 GroupNorm layer(s)" in init.detail
    with torch.no_grad():
        net.main[3].bias.fill_(0.5)
    init = by_guideline(audit_discriminator(net, image_batch()))["init N(0, 0.02)"]
    assert not init.passed and init.detail.startswith("main.3 (GroupNorm): bias not zero")
