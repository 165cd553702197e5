"""``config.json`` of an exported model folder: what rebuilds the generator, as attrs
classes, written by :func:`config_json` and read back without trusting the file by
:func:`read_config`.

The file is untrusted (it may come from the Hub): it is read by
:func:`ganforge.io.model_folder.read_config_json` (a regular file under
:data:`MAX_CONFIG_BYTES`, UTF-8 JSON with no key given twice and no ``NaN``), and structured
here through the project's strict cattrs converter (unknown keys, missing keys, wrong types
and values out of range are refused, every problem with its path). Each refusal is one
:class:`~ganforge.core.errors.CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import attrs

from ..core.errors import RecipeError
from ..core.structuring import converter, key_path, structure_params, unknown_key_problems
from .limits import MAX_CONFIG_BYTES
from .model_folder import (
    CARD_NAME,
    CONFIG_NAME,
    EMA_WEIGHTS,
    EXPORTED_FILES,
    RAW_PREFIX,
    SAMPLES_NAME,
    WEIGHTS_NAME,
    read_config_json,
)
from .refusals import problems_line, quoted, refusal

__all__ = [
    "CARD_NAME", "CONFIG_NAME", "EMA_WEIGHTS", "EXPORTED_FILES", "FORMAT", "FORMAT_VERSION",
    "MAX_CONFIG_BYTES", "RAW_PREFIX", "SAMPLES_NAME", "WEIGHTS_NAME", "ExportConfig",
    "GeneratorConfig", "ImageConfig", "LatentConfig", "PluginPin", "WeightsConfig",
    "config_json", "decode_config", "problems_line", "read_config",
]

#: What ``config.json``'s ``format`` says: a ganforge generator export.
FORMAT = "ganforge-generator"
#: The version of the folder layout this ganforge writes and reads.
FORMAT_VERSION = 1

_QUALIFIED = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}:[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
_DIST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,59}")


def _matches(pattern: re.Pattern[str], what: str) -> Any:
    def check(_instance: Any, attribute: Any, value: str | None) -> None:
        if value is not None and not pattern.fullmatch(value):
            raise ValueError(f"'{attribute.name}' {quoted(value, 40)} is not {what}")
    return check


def _between(low: int, high: int) -> Any:
    def check(_instance: Any, attribute: Any, value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"'{attribute.name}' must be in [{low}, {high}]: "
                             f"{quoted(value, 40)}")
    return check


def _one_of(*allowed: str | None) -> Any:
    def check(_instance: Any, attribute: Any, value: str | None) -> None:
        if value not in allowed:
            raise ValueError(f"'{attribute.name}' must be one of {quoted(list(allowed))}: "
                             f"{quoted(value, 40)}")
    return check


def _version_map(_instance: Any, attribute: Any, value: dict[str, str]) -> None:
    for key, version in value.items():
        if not (_TOKEN.fullmatch(key) and isinstance(version, str)
                and _VERSION.fullmatch(version)):
            raise ValueError(f"'{attribute.name}' holds {quoted(key, 40)}: "
                             f"{quoted(version, 40)}, not a name and a version")


def _plugin_names(_instance: Any, attribute: Any, value: dict[str, Any]) -> None:
    for key in value:
        if not _TOKEN.fullmatch(key):
            raise ValueError(f"'{attribute.name}' holds {quoted(key, 40)}, not a plugin name")


def _an_object(_instance: Any, attribute: Any, value: Any) -> None:
    # (typed ``Any`` for the converter, which would take a string for a mapping)
    if not isinstance(value, dict):
        raise TypeError(f"'{attribute.name}' must be an object, got {type(value).__name__}")


@attrs.frozen
class GeneratorConfig:
    """The generator component: its qualified name (``plugin:name``) and its params."""

    use: str = attrs.field(validator=_matches(_QUALIFIED, "a qualified component name "
                                                          "(plugin:name)"))
    #: A JSON object; structured by the component's own ``Params`` when the folder is loaded.
    params: Any = attrs.field(validator=_an_object)


@attrs.frozen
class ImageConfig:
    """The images G draws, and the classes a conditional G is built for (0: none).
    ``size`` is the height, and the width too unless ``width`` is set (non-square images
    only: square ones have no ``width`` key in ``config.json``)."""

    channels: int = attrs.field(validator=_between(1, 1024))
    size: int = attrs.field(validator=_between(1, 65536))
    classes: int = attrs.field(validator=_between(0, 2**20))
    width: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        _between(1, 65536)))

    @property
    def pixels(self) -> str:
        """``"64x64"``, or ``"32x64"`` (height x width) for non-square images."""
        return f"{self.size}x{self.width or self.size}"


@attrs.frozen
class LatentConfig:
    """The latents G takes: their size and, where the generator has one, its prior."""

    dim: int = attrs.field(validator=_between(1, 2**24))
    prior: str | None = attrs.field(validator=_matches(_TOKEN, "a prior name"))


@attrs.frozen
class WeightsConfig:
    """Which tensors of ``model.safetensors`` hold which weights: ``raw`` the generator
    as trained, ``ema`` its moving average (``None``: the run kept none). The EMA is what
    loading gives by default."""

    raw: str = attrs.field(validator=_one_of(RAW_PREFIX))
    ema: str | None = attrs.field(validator=_one_of(EMA_WEIGHTS, None))


@attrs.frozen
class PluginPin:
    """The distribution (and its version) that provides a plugin's components."""

    distribution: str = attrs.field(validator=_matches(_DIST, "a distribution name"))
    version: str = attrs.field(validator=_matches(_VERSION, "a version"))

    def requirement(self) -> str:
        """``dist==version``, what ``pip install`` takes."""
        return f"{self.distribution}=={self.version}"


@attrs.frozen
class ExportConfig:
    """Everything ``config.json`` holds; see ``docs/sharing.md`` for each key."""

    format: str = attrs.field(validator=_one_of(FORMAT))
    format_version: int = attrs.field(validator=_between(FORMAT_VERSION, FORMAT_VERSION))
    #: The ganforge that exported the folder.
    ganforge_version: str = attrs.field(validator=_matches(_VERSION, "a version"))
    #: The training step of the checkpoint it was exported from.
    step: int = attrs.field(validator=_between(0, 2**62))
    generator: GeneratorConfig
    image: ImageConfig
    latent: LatentConfig
    conditional: bool
    weights: WeightsConfig
    #: The plugin the generator needs, by plugin name (the qualifier of ``generator.use``):
    #: at most that one entry.
    plugins: dict[str, PluginPin] = attrs.field(validator=_plugin_names)
    #: Versions of ganforge and torch that trained it (as the checkpoint recorded them).
    trained_with: dict[str, Any] = attrs.field(validator=_version_map)

    @property
    def plugin(self) -> str:
        """The plugin of the generator (``dcgan`` for ``dcgan:dcgan``)."""
        return self.generator.use.rpartition(":")[0]

    @property
    def has_ema(self) -> bool:
        return self.weights.ema is not None


def config_json(config: ExportConfig) -> str:
    """The text of ``config.json`` (sorted keys, two-space indent, a final newline)."""
    # (the converter itself, not ``unstructure_params``: a ``null`` is kept, so that every
    # key is always present and a missing one can be refused; ``image.width`` alone is
    # written only for non-square images, so a square export reads as before it existed)
    data = converter().unstructure(config)
    if data["image"]["width"] is None:
        del data["image"]["width"]
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def decode_config(data: Any, source: Path | str) -> ExportConfig:
    """``data`` (parsed ``config.json``) as an :class:`ExportConfig`, or one
    :class:`~ganforge.core.errors.CheckpointError` line naming ``source`` with every problem."""
    if not isinstance(data, dict):
        raise refusal(source, f"not a ganforge export config: the file holds "
                              f"{type(data).__name__}, not a JSON object")
    if data.get("format") != FORMAT:
        raise refusal(source, f"not a ganforge export config (format "
                              f"{quoted(data.get('format'), 40)}, expected {quoted(FORMAT)})")
    version = data.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) \
            and version > FORMAT_VERSION
        hint = "; it was written by a newer ganforge: upgrade ganforge" if newer else ""
        raise refusal(source, f"format_version {quoted(version, 20)} is not one this ganforge "
                              f"reads ({FORMAT_VERSION}){hint}")
    try:
        return _structure_config(data)
    except RecipeError as exc:
        raise refusal(source, problems_line(exc)) from None


def _structure_config(data: dict[str, Any]) -> ExportConfig:
    """:func:`~ganforge.core.structuring.structure_params` for each part on its own, so that every
    problem of the file (an unknown key in ``image`` as much as a wrong ``step``) is
    reported at once with its path."""
    attrs.resolve_types(ExportConfig)
    problems = unknown_key_problems(ExportConfig, data, "$")
    values: dict[str, Any] = {}
    for field in attrs.fields(ExportConfig):
        where = key_path("$", field.name)
        if field.name not in data:
            problems.append((where, "required key is missing"))
            continue
        value = data[field.name]
        try:
            if isinstance(field.type, type) and attrs.has(field.type):
                values[field.name] = structure_params(field.type, value, where)
                continue
            if typing.get_origin(field.type) is dict and not isinstance(value, dict):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            if field.name == "plugins":
                value = {name: structure_params(PluginPin, pin, key_path(where, name))
                         for name, pin in value.items()}
            else:
                value = converter().structure(value, field.type)  # type: ignore[arg-type]
            if field.validator is not None:
                field.validator(None, field, value)
        except RecipeError as exc:
            problems.extend(exc.problems)
            continue
        except (TypeError, ValueError) as exc:
            problems.append((where, (str(exc).splitlines() or [type(exc).__name__])[0]))
            continue
        values[field.name] = value
    if "plugins" in values and "generator" in values:
        needed = values["generator"].use.rpartition(":")[0]
        problems += [(key_path("$.plugins", name), f"the generator's plugin is {needed!r}")
                     for name in values["plugins"] if name != needed]
    if problems:
        raise RecipeError(problems)
    return ExportConfig(**values)


def read_config(path: str | Path) -> ExportConfig:
    """Read and validate an exported folder's ``config.json``; see the module docstring."""
    path = Path(path)
    return decode_config(read_config_json(path), path)
