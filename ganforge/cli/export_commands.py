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
    onnx: bool = typer.Option(False, "--onnx",
                              help="Also write generator.onnx (opset 17, dynamic batch; the "
                                   "EMA weights when kept), checked against PyTorch with ONNX "
                                   "Runtime; needs pip install 'ganforge[onnx]'."),
    device: str = DeviceOption,
) -> None:
    """Export a checkpoint's generator (and its EMA) as a self-contained model folder in
    the Hugging Face Hub layout, with a model card and a sample grid.

    ganforge sample DIR and ganforge.load_generator(DIR) use the folder with nothing else
    (no run directory, no dataset). With --onnx the folder also holds generator.onnx, for
    ONNX Runtime and other ONNX readers."""
    from ..api.export import export as export_folder
    from ..core.errors import UsageError
    from ..sampling import check_count, check_seed
    from ..sharing.onnx_export import require_onnx
    from ..training import resolve_device

    # Every option is checked (and named as typed) before anything is read or written.
    check_count(n, "--n")
    check_seed(seed)
    resolve_device(device, "--device")
    if private and push_to_hub is None:
        raise UsageError("--private is for --push-to-hub; add --push-to-hub OWNER/NAME")
    if onnx:
        require_onnx("--onnx")
    done = export_folder(checkpoint, out, n=n, seed=seed, force=force,
                         push_to_hub=push_to_hub, private=private, device=device,
                         onnx=onnx, plugins=load_plugins_or_warn())
    result, console = done.written, stderr()
    for note in result.notes:
        console.print(f"warning: {note}", markup=False)
    which = "and its EMA " if result.config.has_ema else ""
    scores = f", {len(result.scores)} score(s)" if result.scores else ", no scores recorded"
    console.print(f"exported the generator {which}of step {result.config.step} to {out} "
                  f"({', '.join(p.name for p in result.files)}{scores})", markup=False)
    if done.onnx is not None:
        check = done.onnx
        console.print(f"wrote {check.path.name} (opset {check.opset}, inputs "
                      f"{', '.join(check.inputs)}; the {check.weights} weights): ONNX Runtime "
                      f"matches PyTorch on {check.checked} latents, largest difference "
                      f"{check.max_abs_diff:.2g}", markup=False)
    if done.hub_url is not None:
        console.print(f"pushed to {push_to_hub}: {done.hub_url}", markup=False)
