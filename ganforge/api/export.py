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
    from ..sharing.onnx_export import OnnxExport


@attrs.frozen
class ExportOutcome:
    """What :func:`export` did: what it wrote (:class:`~ganforge.sharing.export.
    ExportResult`: the folder, its files, config, scores and notes), with ``onnx`` the
    ONNX file and its check (:class:`~ganforge.sharing.onnx_export.OnnxExport`), and, with
    ``push_to_hub``, the URL of the Hub repository."""

    written: ExportResult
    hub_url: str | None = None
    onnx: OnnxExport | None = None


def export(checkpoint: str | Path, out: str | Path, *, n: int = 64, seed: int = 0,
           force: bool = False, push_to_hub: str | None = None, private: bool = False,
           device: str = "auto", onnx: bool = False,
           plugins: Plugins | None = None) -> ExportOutcome:
    """Write the generator of ``checkpoint`` (and its EMA) to the folder ``out`` in the
    Hugging Face Hub layout: model.safetensors, config.json, a model card (README.md) with
    the scores recorded for the checkpoint, and samples.png (``n`` images from ``seed``).
    ``out`` must be new or empty unless ``force`` (its exported files are then replaced,
    nothing else touched). ``onnx`` also writes generator.onnx, checked against PyTorch
    with ONNX Runtime (:mod:`ganforge.sharing.onnx_export`; needs onnx and onnxruntime):
    when that fails the error is one line and the folder stays as written. Without
    ``onnx``, a generator.onnx left in ``out`` by an earlier export is removed (it would no
    longer match the weights). ``push_to_hub="owner/name"`` then uploads the folder (needs
    huggingface_hub and a token; ``private`` creates the repository private). Every
    argument is checked before the checkpoint is read or anything is written."""
    from ..core.errors import UsageError
    from ..sampling import check_count, check_seed
    from ..sharing import EXPORTED_FILES, export_checkpoint
    from ..sharing.export import check_out_folder
    from ..sharing.hub import check_repo_id, hub_api
    from ..sharing.hub import push_to_hub as push
    from ..sharing.onnx_export import ONNX_NAME, export_onnx, remove_stale, require_onnx
    from ..training.building import resolve_device

    checkpoint, out = Path(checkpoint), Path(out)
    check_count(n, "n")
    check_seed(seed, "seed")
    dev = resolve_device(device, "device")
    if private and push_to_hub is None:
        raise UsageError("private is for push_to_hub; give push_to_hub='OWNER/NAME'")
    if onnx:
        require_onnx("onnx")
    api = None
    if push_to_hub is not None:
        check_repo_id(push_to_hub)
        api = hub_api()
    check_out_folder(out, force)
    loaded = plugins_or_installed(plugins)
    written = export_checkpoint(checkpoint, out, loaded, device=dev, n=n, seed=seed,
                                force=force)
    stale = remove_stale(out)  # an earlier export's: it no longer matches the weights
    onnx_file = export_onnx(out, loaded.registry) if onnx else None
    if stale and not onnx:
        written = attrs.evolve(written, notes=[*written.notes, f"removed the {ONNX_NAME} of "
                                               "an earlier export (add --onnx to write it anew)"])
    url = None
    if push_to_hub is not None:
        files = (*EXPORTED_FILES, ONNX_NAME) if onnx else EXPORTED_FILES
        url = push(out, push_to_hub, files, private=private, api=api,
                   commit_message=f"ganforge export of {checkpoint.name} "
                                  f"(step {written.config.step})")
    return ExportOutcome(written, url, onnx_file)
