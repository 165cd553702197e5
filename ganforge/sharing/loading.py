"""Loading an exported model folder (``config.json`` + ``model.safetensors``) back into a
generator, with nothing else: no run directory, no dataset, no network access.

The folder may come from anyone: ``config.json`` is validated strictly
(:func:`~ganforge.sharing.config.read_config`), its files are read only from inside it (a
symbolic link out of the folder is refused), the generator is built on the ``meta`` device
first, compared with the file's tensors and bounded in size
(:mod:`~ganforge.training.size_bounds`) before the real network is allocated, and every
weight is checked (keys, shapes, dtypes, finite values, variances) before any is loaded.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from ..core.errors import CheckpointError, RecipeError, UnknownComponentError
from ..core.interfaces import Generator, ImageSpec, is_conditional
from ..io.export_config import ExportConfig, read_config
from ..io.model_folder import CONFIG_NAME, WEIGHTS_NAME, read_weights
from ..io.refusals import problems_line, quoted, refusal
from ..training.checkpoint_checks import layout_problems, load_module_state
from ..training.run_dir import RunDirectory
from ..training.size_bounds import built_on_meta, check_network_size, check_sample_size

if TYPE_CHECKING:
    from ..core.registry import Registry


@attrs.frozen
class ExportedGenerator:
    """A generator loaded from an exported folder (eval mode), the folder's config, and
    whether it holds the EMA weights."""

    generator: Generator
    config: ExportConfig
    is_ema: bool
    folder: Path

    @property
    def classes(self) -> int:
        """The classes a conditional generator draws (0: unconditional)."""
        return self.config.image.classes

    @property
    def step(self) -> int:
        return self.config.step


def load_exported(folder: str | Path, registry: Registry, device: torch.device | str = "cpu",
                  *, ema: bool = True) -> ExportedGenerator:
    """The generator of a folder written by ``ganforge export`` on ``device``, in eval
    mode: its moving average when the folder holds one, unless ``ema`` is False."""
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder written by ganforge export")
    if not config_path.exists():
        hint = ("; to use a run directory, give one of its checkpoints"
                if RunDirectory(folder).checkpoints.is_dir() else "")
        raise CheckpointError(f"{folder}: not a folder written by ganforge export (it has no "
                              f"{CONFIG_NAME}){hint}")
    weights_path = folder / WEIGHTS_NAME
    refuse_outside_links(folder, (config_path, weights_path))
    config = read_config(config_path)
    params = _generator_params(config, registry, config_path)
    spec = ImageSpec(config.image.channels, config.image.size, config.image.classes,
                     config.image.width or config.image.size)
    prefixes = (config.weights.raw,) + ((config.weights.ema,) if config.weights.ema else ())
    sections = read_weights(weights_path, prefixes)
    # A small config that asks for a huge network is refused before it is allocated; a
    # network that cannot be checked on meta is refused too.
    on_meta = built_on_meta(lambda: _create(registry, config, params, spec, "meta",
                                            config_path), config_path, "its generator")
    _check_against_config(on_meta, config, config_path)
    for prefix in prefixes:
        _check_layout(on_meta, sections[prefix], prefix, weights_path)
    check_network_size(on_meta, "generator", config_path)
    check_sample_size(on_meta, config_path)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: not the caller's
        torch.manual_seed(0)
        generator = _create(registry, config, params, spec, None, config_path)
    _check_against_config(generator, config, config_path)
    use = config.weights.ema if ema and config.weights.ema else config.weights.raw
    # Every set of weights is checked and loaded, the one asked for last (each load sets
    # every tensor), so a folder is either wholly good or refused.
    for prefix in sorted(prefixes, key=lambda p: p == use):
        load_module_state(generator, sections[prefix], prefix, weights_path)
    generator = generator.to(device)
    generator.eval()
    return ExportedGenerator(generator, config, use == config.weights.ema, folder)


def refuse_outside_links(folder: Path, files: tuple[Path, ...]) -> None:
    """Refuse a file of the folder that is a symbolic link to a file outside it: what a
    folder holds is read from the folder, never from wherever a link points."""
    inside = folder.resolve()
    for path in files:
        if not path.is_symlink():
            continue
        target = path.resolve()
        if not target.is_relative_to(inside):
            raise refusal(path, f"a symbolic link to {target}, outside the folder; ganforge "
                                "reads an exported folder's files only from inside it "
                                "(copy the files into it)")


def _check_layout(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str,
                  source: Path) -> None:
    problems = layout_problems(module, {k: (v.shape, v.dtype) for k, v in state.items()})
    if problems:
        raise refusal(source, f"{what} does not match: {'; '.join(problems)}")


def _generator_params(config: ExportConfig, registry: Registry, source: Path) -> Any:
    """The generator's ``Params`` from ``config.generator``; a component that is not
    installed here names the distribution to install."""
    use = config.generator.use
    try:
        registry.entry("generator", use)
    except UnknownComponentError as exc:
        pin = config.plugins.get(config.plugin)
        hint = f"; pip install {pin.requirement()}" if pin is not None else ""
        raise refusal(source, f"generator {quoted(use)} is not available here: "
                              f"{str(exc).splitlines()[0]}{hint}") from None
    try:
        return registry.structure("generator", use, config.generator.params,
                                  "$.generator.params")
    except RecipeError as exc:
        raise refusal(source, problems_line(exc)) from None


def _create(registry: Registry, config: ExportConfig, params: Any, spec: ImageSpec,
            device: str | None, source: Path) -> Generator:
    with torch.device(device) if device is not None else contextlib.nullcontext():
        try:
            generator: Generator = registry.create("generator", config.generator.use, params,
                                                   image_spec=spec)
        except (ValueError, TypeError) as exc:
            raise refusal(source, f"generator {quoted(config.generator.use)} cannot be built "
                                  f"from it: {exc}") from None
    return generator


def _check_against_config(generator: Generator, config: ExportConfig, source: Path) -> None:
    """The built generator is what ``config.json`` says it is: image shape, latent size,
    prior and conditioning."""
    problems = []
    spec = generator.image_spec
    if spec.shape() != (config.image.channels, config.image.size,
                        config.image.width or config.image.size):
        problems.append(f"image is {config.image.channels}x{config.image.pixels}px, the "
                        f"generator draws {spec.channels}x{spec.pixels()}px")
    if generator.latent_dim != config.latent.dim:
        problems.append(f"latent.dim is {config.latent.dim}, the generator takes "
                        f"{generator.latent_dim}")
    prior = _prior(generator)
    if prior != config.latent.prior:
        problems.append(f"latent.prior is {quoted(config.latent.prior)}, the generator's is "
                        f"{quoted(prior)}")
    if is_conditional(generator) != config.conditional:
        problems.append(f"conditional is {str(config.conditional).lower()}, the generator is "
                        f"{'' if is_conditional(generator) else 'not '}conditional")
    if config.conditional and config.image.classes == 0:
        problems.append("conditional is true but image.classes is 0")
    if problems:
        raise refusal(source, "does not describe its generator: " + "; ".join(problems))


def _prior(generator: Generator) -> str | None:
    """The latent prior the generator's params name, if any."""
    prior = getattr(getattr(generator, "params", None), "prior", None)
    return prior if isinstance(prior, str) else None


def load_generator(path: str | Path, device: torch.device | str = "cpu", *, ema: bool = True,
                   registry: Registry | None = None) -> Generator:
    """The trained generator in eval mode on ``device``, from a folder written by
    ``ganforge export`` or from a ganforge checkpoint: its moving average when the run kept
    one, unless ``ema`` is False. ``registry`` defaults to the installed plugins'. For
    example::

        generator = ganforge.load_generator("exported/digits")
        z = generator.sample_latent(16, torch.Generator().manual_seed(0), "cpu")
        images = generator(z)  # (16, C, H, W) in [-1, 1]; G(z, labels) when conditional
    """
    from ..training import resolve_device
    from ..training.experiment_loading import load_experiment

    if registry is None:
        from ..plugins import load_plugins

        registry = load_plugins().registry
    dev = resolve_device(device, "device") if isinstance(device, str) else device
    generator = load_experiment(path, registry, dev, ema=ema).generator
    assert generator is not None  # the generator is always loaded
    return generator
