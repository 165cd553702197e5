"""``README.md`` of an exported model folder: a Hugging Face model card (YAML front matter,
then Markdown) with what the model is, how to use it, the sample grid, the training data,
the recorded scores with their protocols, and the resolved recipe it was trained with."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..io.export_config import ExportConfig
from ..io.model_folder import SAMPLES_NAME
from .scores import Score


@attrs.frozen
class CardInputs:
    """What the card says beyond ``config.json``."""

    recipe_toml: str
    dataset: dict[str, Any]
    scores: list[Score]
    samples_count: int
    samples_seed: int
    #: Where the weights came from (the checkpoint's file name).
    checkpoint_name: str


def model_card(config: ExportConfig, inputs: CardInputs) -> str:
    """The whole ``README.md``."""
    short = config.generator.use.rpartition(":")[2]
    pin = config.plugins.get(config.plugin)
    install = "ganforge" + (f" {pin.requirement()}" if pin and pin.distribution != "ganforge"
                            else "")
    weights = ("the moving average of G (EMA; `ema=False` / `--no-ema` for the raw G)"
               if config.has_ema else "the generator as trained (the run kept no EMA)")
    kind = (f"a class-conditional ({config.image.classes} classes)" if config.conditional
            else "an unconditional")
    lines = [
        _front_matter(config, short),
        f"# {short} generator ({config.image.pixels}, ganforge)",
        "",
        f"{kind[0].upper()}{kind[1:]} `{_code(config.generator.use)}` generator trained with "
        f"[ganforge](https://pypi.org/project/ganforge/) for {config.step} steps, exported "
        f"from `{_code(inputs.checkpoint_name)}`. It maps latents of size {config.latent.dim}"
        + (f" (prior: {config.latent.prior})" if config.latent.prior else "")
        + f" to {config.image.channels}-channel {config.image.pixels} "
        f"images in [-1, 1]. Weights loaded by default: {weights}.",
        "",
        "## Usage",
        "",
        "```bash",
        f"pip install {install}",
        "ganforge sample path/to/this/folder --n 64 --seed 0 --out grid.png",
        "```",
        "",
        "```python",
        "import torch",
        "import ganforge",
        "",
        "# a local copy of this folder (huggingface_hub.snapshot_download(repo_id) fetches one)",
        'generator = ganforge.load_generator("path/to/this/folder", device="cpu")',
        "z = generator.sample_latent(16, torch.Generator().manual_seed(0), \"cpu\")",
        ("labels = torch.arange(16) % " + str(config.image.classes) + "\n"
         "images = generator(z, labels)  # (16, C, H, W) in [-1, 1]") if config.conditional
        else "images = generator(z)  # (16, C, H, W) in [-1, 1]",
        "```",
        "",
        "## Samples",
        "",
        f"![{inputs.samples_count} samples]({SAMPLES_NAME})",
        "",
        f"{inputs.samples_count} images"
        + (" (one row per class)" if config.conditional else "")
        + f", seed {inputs.samples_seed}, {'EMA' if config.has_ema else 'raw'} weights: "
        f"`ganforge sample . --n {inputs.samples_count} --seed {inputs.samples_seed}` "
        "draws the same grid from this folder.",
        "",
        "## Training data",
        "",
        _table(["key", "value"], [[key, _value(value)] for key, value in inputs.dataset.items()]),
        "",
        f"Images: {config.image.channels} channel(s), {config.image.pixels}"
        + (f", {config.image.classes} classes." if config.image.classes else
           ", no class labels."),
        "",
        "## Evaluation",
        "",
        *_scores(inputs.scores),
        "",
        "## Training recipe",
        "",
        "The resolved recipe (every default filled in) that the checkpoint embeds; saved "
        "as a `.toml` file, `ganforge run` trains it again.",
        "",
        *_fenced("toml", inputs.recipe_toml),
        "",
        "## Versions",
        "",
        _table(["package", "version"],
               [[name, version] for name, version in sorted(config.trained_with.items())]
               + [[f"{pin.distribution} (plugin {name})", pin.version]
                  for name, pin in sorted(config.plugins.items())]),
        "",
        f"Exported with ganforge {config.ganforge_version}; folder format "
        f"{config.format_version} (`config.json`, `model.safetensors`: tensors "
        "`generator.*`" + (" and `generator_ema.*`" if config.has_ema else "") + ").",
        "",
    ]
    return "\n".join(lines)


def _front_matter(config: ExportConfig, short: str) -> str:
    tags = ["gan", "ganforge", "image-generation", short,
            "class-conditional" if config.conditional else "unconditional-image-generation"]
    lines = ["---", "library_name: ganforge"]
    if not config.conditional:
        lines.append("pipeline_tag: unconditional-image-generation")
    lines.append("tags:")
    # JSON strings are valid YAML scalars: a name from the checkpoint cannot break the YAML.
    lines += [f"- {json.dumps(tag)}" for tag in dict.fromkeys(tags)]
    lines += ["---", ""]
    return "\n".join(lines)


def _scores(scores: list[Score]) -> list[str]:
    if not scores:
        return ["No scores recorded: the run evaluated no metric at this checkpoint's step "
                "(`ganforge eval CHECKPOINT` scores one, prints its protocol and records it "
                "beside the checkpoint for the card)."]
    rows = []
    for score in scores:
        protocol = _shown_protocol(score.protocol)
        rows.append([score.label, score.metric, f"{score.value:.4f}", str(score.step),
                     ", ".join(f"{k}={_value(v)}" for k, v in protocol.items()),
                     score.source])
    dataset = scores[0].protocol.get("dataset")
    note = [f"Real images from the training data above ({_value(dataset)}); the generator "
            "scored is the EMA of G when the run kept one, as during training."] \
        if dataset is not None else []
    note += [f"**Not comparable:** {warning}" for score in scores for warning in score.warnings]
    return [_table(["label", "metric", "value", "step", "protocol", "from"], rows), "", *note]


#: Protocol entries a card leaves out: the dataset (its own section), the full params
#: (the recipe section), timings, and the step (a column).
_NOT_SHOWN = frozenset({"dataset", "params", "seconds", "step"})


def _shown_protocol(protocol: Mapping[str, Any]) -> dict[str, Any]:
    """What a card's score row shows of a protocol; a reference is named by its cache key
    or its file's name and SHA-256 prefix (never a local path)."""
    shown = {k: _no_path(k, v) for k, v in protocol.items() if k not in _NOT_SHOWN
             and v not in (None, {}, [])}
    reference = shown.get("reference")
    if isinstance(reference, Mapping):
        if "key" in reference:
            shown["reference"] = f"real features {reference['key']}"
        elif "file" in reference:
            shown["reference"] = (f"{Path(str(reference['file'])).name} "
                                  f"(sha256 {str(reference.get('sha256', ''))[:16]})")
    return shown


#: Protocol and params entries that hold a local path: a card shows the file's name only.
_PATH_KEYS = frozenset({"weights", "inception_weights", "reference_stats"})


def _no_path(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _no_path(k, v) for k, v in value.items()}
    if key in _PATH_KEYS and isinstance(value, str):
        return Path(value).name
    return value


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return json.dumps(value)


def _code(text: str) -> str:
    """Text shown inside backticks (a backtick in it would end the span)."""
    return " ".join(text.split()).replace("`", "'")


def _fenced(language: str, text: str) -> list[str]:
    """``text`` in a fenced block longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text.rstrip("\n"), fence]
