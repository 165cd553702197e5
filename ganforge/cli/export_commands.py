"""``ganforge export``: a checkpoint's generator as a shareable model folder (and, with
``--push-to-hub``, on the Hugging Face Hub). Heavy imports happen inside the command."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, reports_errors, stderr
from .shared import CheckpointArgument, DeviceOption, load_plugins_or_warn


@app.command()
@reports_errors
def export(
    checkpoint: Path = CheckpointArgument,
    out: Path = typer.Option(..., "--out", "-o", show_default=False,
                             help="Folder to write (new or empty): model.safetensors, "
                                  "config.json, README.md, samples.png."),
    n: int = typer.Option(64, "--n", "-n", help="Images in samples.png (at most 4096)."),
    seed: int = typer.Option(0, "--seed", help="Seed of samples.png's latents."),
    force: bool = typer.Option(False, "--force",
                               help="Export into a folder that is not empty: its exported "
                                    "files are replaced, nothing else is touched."),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", metavar="OWNER/NAME",
        help="Then upload the folder to this Hugging Face Hub model repository (created if "
             "needed; needs huggingface_hub and a token, e.g. HF_TOKEN)."),
    private: bool = typer.Option(False, "--private",
                                 help="With --push-to-hub: create the repository private."),
    device: str = DeviceOption,
) -> None:
    """Export a checkpoint's generator (and its EMA) as a self-contained model folder in
    the Hugging Face Hub layout, with a model card and a sample grid.

    ganforge sample DIR and ganforge.load_generator(DIR) use the folder with nothing else
    (no run directory, no dataset)."""
    from ..errors import UsageError
    from ..sampling import check_count, check_seed
    from ..sharing import EXPORTED_FILES, export_checkpoint
    from ..sharing.export import check_out_folder
    from ..sharing.hub import check_repo_id, hub_api
    from ..sharing.hub import push_to_hub as push
    from ..training import resolve_device

    # Every option is checked before the checkpoint is read or anything is written.
    check_count(n, "--n")
    check_seed(seed)
    dev = resolve_device(device, "--device")
    if private and push_to_hub is None:
        raise UsageError("--private is for --push-to-hub; add --push-to-hub OWNER/NAME")
    api = None
    if push_to_hub is not None:
        check_repo_id(push_to_hub)
        api = hub_api()
    check_out_folder(out, force)
    plugins = load_plugins_or_warn()
    result = export_checkpoint(checkpoint, out, plugins, device=dev, n=n, seed=seed,
                               force=force)
    console = stderr()
    for note in result.notes:
        console.print(f"warning: {note}", markup=False)
    which = "and its EMA " if result.config.has_ema else ""
    scores = f", {len(result.scores)} score(s)" if result.scores else ", no scores recorded"
    console.print(f"exported the generator {which}of step {result.config.step} to {out} "
                  f"({', '.join(p.name for p in result.files)}{scores})", markup=False)
    if push_to_hub is not None:
        url = push(out, push_to_hub, EXPORTED_FILES, private=private, api=api,
                   commit_message=f"ganforge export of {checkpoint.name} "
                                  f"(step {result.config.step})")
        console.print(f"pushed to {push_to_hub}: {url}", markup=False)
