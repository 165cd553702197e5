"""``ganforge.export``: a checkpoint's generator as a shareable model folder (what
``ganforge export`` does), optionally pushed to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .common import plugins_or_installed

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..sharing.export import ExportResult


@attrs.frozen
class ExportOutcome:
    """What :func:`export` did: what it wrote (:class:`~ganforge.sharing.export.
    ExportResult`: the folder, its files, config, scores and notes) and, with
    ``push_to_hub``, the URL of the Hub repository."""

    written: ExportResult
    hub_url: str | None = None


def export(checkpoint: str | Path, out: str | Path, *, n: int = 64, seed: int = 0,
           force: bool = False, push_to_hub: str | None = None, private: bool = False,
           device: str = "auto", plugins: Plugins | None = None) -> ExportOutcome:
    """Write the generator of ``checkpoint`` (and its EMA) to the folder ``out`` in the
    Hugging Face Hub layout: model.safetensors, config.json, a model card (README.md) with
    the scores recorded for the checkpoint, and samples.png (``n`` images from ``seed``).
    ``out`` must be new or empty unless ``force`` (its exported files are then replaced,
    nothing else touched). ``push_to_hub="owner/name"`` then uploads the folder (needs
    huggingface_hub and a token; ``private`` creates the repository private). Every
    argument is checked before the checkpoint is read or anything is written."""
    from ..core.errors import UsageError
    from ..sampling import check_count, check_seed
    from ..sharing import EXPORTED_FILES, export_checkpoint
    from ..sharing.export import check_out_folder
    from ..sharing.hub import check_repo_id, hub_api
    from ..sharing.hub import push_to_hub as push
    from ..training.building import resolve_device

    checkpoint, out = Path(checkpoint), Path(out)
    check_count(n, "n")
    check_seed(seed, "seed")
    dev = resolve_device(device, "device")
    if private and push_to_hub is None:
        raise UsageError("private is for push_to_hub; give push_to_hub='OWNER/NAME'")
    api = None
    if push_to_hub is not None:
        check_repo_id(push_to_hub)
        api = hub_api()
    check_out_folder(out, force)
    written = export_checkpoint(checkpoint, out, plugins_or_installed(plugins), device=dev,
                                n=n, seed=seed, force=force)
    url = None
    if push_to_hub is not None:
        url = push(out, push_to_hub, EXPORTED_FILES, private=private, api=api,
                   commit_message=f"ganforge export of {checkpoint.name} "
                                  f"(step {written.config.step})")
    return ExportOutcome(written, url)
