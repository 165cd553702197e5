"""``ganforge export``: a checkpoint's generator as a self-contained model folder in the
Hugging Face Hub layout (``model.safetensors``, ``config.json``, ``README.md``,
``samples.png``), which ``ganforge sample DIR`` and :func:`ganforge.load_generator` use
with nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import torch

from .._version import __version__
from ..core.errors import UsageError
from ..core.interfaces import Generator, is_conditional
from ..core.structuring import unstructure_params
from ..io.checkpoint_files import read_header
from ..io.checkpoint_schema import EMA_PREFIX, CheckpointHeader
from ..io.export_config import (
    CARD_NAME,
    CONFIG_NAME,
    EXPORTED_FILES,
    FORMAT,
    FORMAT_VERSION,
    RAW_PREFIX,
    SAMPLES_NAME,
    WEIGHTS_NAME,
    ExportConfig,
    GeneratorConfig,
    ImageConfig,
    LatentConfig,
    PluginPin,
    WeightsConfig,
    config_json,
    decode_config,
)
from ..io.files import write_bytes_atomic, write_text_atomic, writing
from ..io.model_folder import weights_bytes
from ..plugins import Plugins
from ..training.assembly import load_experiment
from .grid import png_bytes, sample_grid
from .model_card import CardInputs, model_card
from .scores import Score, recorded_scores

_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,99}) ([A-Za-z0-9][A-Za-z0-9.+!_-]{0,59})")


@attrs.frozen
class ExportResult:
    """What :func:`export_checkpoint` wrote: the folder, its files (in the order written)
    and its config, the scores put in the card and notes for the user."""

    folder: Path
    files: tuple[Path, ...]
    config: ExportConfig
    scores: list[Score]
    notes: list[str]


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse (one line) an ``--out`` that is a file, or a folder that holds anything
    (``force``: any folder; the exported files in it are replaced, nothing else is
    touched)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder to export into")
    if out.is_dir() and not force:
        try:
            busy = next(out.iterdir(), None) is not None
        except OSError as exc:
            raise UsageError(f"--out {str(out)!r}: cannot list it: "
                             f"{exc.strerror or exc}") from None
        if busy:
            raise UsageError(f"--out {str(out)!r} is not empty; give a new folder, or add "
                             f"--force to replace the exported files in it "
                             f"({', '.join(EXPORTED_FILES)}; nothing else is touched)")


def export_checkpoint(checkpoint: str | Path, out: str | Path, plugins: Plugins, *,
                      device: torch.device | str = "cpu", n: int = 64, seed: int = 0,
                      force: bool = False) -> ExportResult:
    """Write the generator of ``checkpoint`` (and its EMA, when the run kept one) to the
    folder ``out``, with its config, a model card and a grid of ``n`` samples drawn with
    ``seed`` by the weights loaded by default. ``out`` must not exist or be empty, unless
    ``force``. The checkpoint is read and checked as every command reads one."""
    checkpoint, out = Path(checkpoint), Path(out)
    check_out_folder(out, force)
    header = read_header(checkpoint)
    raw = load_experiment(checkpoint, plugins.registry, device, parts={"generator"}, ema=False)
    generators: dict[str, Generator] = {}
    assert raw.generator is not None
    generators[RAW_PREFIX] = raw.generator
    if header.section(EMA_PREFIX):
        averaged = load_experiment(checkpoint, plugins.registry, device, parts={"generator"})
        assert averaged.generator is not None and averaged.generator_is_ema
        generators[EMA_PREFIX] = averaged.generator
    recipe = raw.recipe
    config = _config(header, raw.recipe["generator"].name,
                     unstructure_params(recipe["generator"].params), raw.generator,
                     (raw.spec.channels, raw.spec.size, raw.classes,
                      None if raw.spec.square else raw.spec.width), EMA_PREFIX in generators,
                     plugins)
    shown = generators.get(EMA_PREFIX, raw.generator)
    grid = sample_grid(shown, n, seed, raw.classes, device=device)
    scores, notes = recorded_scores(checkpoint, header, recipe)
    card = model_card(config, CardInputs(
        recipe_toml=header.recipe_toml, dataset=recipe["dataset"].to_table(), scores=scores,
        samples_count=grid.count, samples_seed=seed, checkpoint_name=checkpoint.name))
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    # config.json last: a folder without it is not an export, so an interrupted export is
    # never mistaken for a complete one.
    contents = {
        WEIGHTS_NAME: weights_bytes({k: g.state_dict() for k, g in generators.items()}),
        SAMPLES_NAME: png_bytes(grid.grid),
    }
    written = [write_bytes_atomic(out / name, data) for name, data in contents.items()]
    written.append(write_text_atomic(out / CARD_NAME, card))
    written.append(write_text_atomic(out / CONFIG_NAME, config_json(config)))
    return ExportResult(out, tuple(written), config, scores, notes)


def _config(header: CheckpointHeader, use: str, params: dict[str, object],
            generator: Generator, image: tuple[int, int, int, int | None], ema: bool,
            plugins: Plugins) -> ExportConfig:
    """The config of the export, checked the way a reader checks it (so a folder ganforge
    writes always reads back)."""
    prior = getattr(getattr(generator, "params", None), "prior", None)
    plugin = use.rpartition(":")[0]
    pin = _plugin_pin(plugin, header, plugins)
    pins = {plugin: pin} if pin is not None else {}
    trained_with: dict[str, Any] = {name: header.versions[name] for name in ("ganforge", "torch")
                    if name in header.versions}
    config = ExportConfig(
        format=FORMAT, format_version=FORMAT_VERSION, ganforge_version=__version__,
        step=header.step, generator=GeneratorConfig(use, params),
        image=ImageConfig(*image), latent=LatentConfig(
            generator.latent_dim, prior if isinstance(prior, str) else None),
        conditional=is_conditional(generator),
        weights=WeightsConfig(RAW_PREFIX, EMA_PREFIX if ema else None),
        plugins=pins, trained_with=trained_with)
    return decode_config(json.loads(config_json(config)), f"the config of {use}")


def _plugin_pin(plugin: str, header: CheckpointHeader, plugins: Plugins) -> PluginPin | None:
    """The distribution and version of ``plugin``: as the checkpoint recorded it, else the
    one loaded here (ganforge's own components: ganforge)."""
    recorded = header.versions.get(f"plugin:{plugin}")
    match = _PIN.fullmatch(recorded) if recorded else None
    if match:
        return PluginPin(match.group(1), match.group(2))
    name = "builtins" if plugin == "ganforge" else plugin
    record = next((r for r in plugins.records if r.name == name and r.version), None)
    if record is None:
        return None
    if plugin == "ganforge" and "ganforge" in header.versions:
        return PluginPin("ganforge", header.versions["ganforge"])
    return PluginPin(record.distribution, record.version)
