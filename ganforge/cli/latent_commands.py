"""``ganforge interpolate`` and ``ganforge arithmetic``: the DCGAN paper's latent-space
experiments (§6.1 latent walks, §6.3.2 vector arithmetic on averaged latents).

Each command parses its options, calls :mod:`ganforge.api.latent` (built on
:mod:`ganforge.evaluation.latent`) and prints what it wrote; the API is imported inside each
command so that ``ganforge --help`` stays fast (no torch).
"""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from .app import app, reports_errors, stderr
from .shared import CheckpointArgument, DeviceOption, NoEmaOption, load_plugins_or_warn

WalkClassOption = typer.Option(
    None, "--class", metavar="K|A:B|all", show_default=False,
    help="Conditional generators: K holds class K in every walk; A:B walks from class A to "
         "class B (the class weights go from one-hot A to one-hot B along with the latents); "
         "all, the default, gives each walk a class drawn from --seed.")
SheetClassOption = typer.Option(
    None, "--class", metavar="K", show_default=False,
    help="Conditional generators: the one class of the sheet and the figure (default 0). "
         "Step 2 reads it from the sheet's json.")


class WalkMode(enum.StrEnum):
    """How ``interpolate`` moves between two latents."""

    auto = "auto"
    slerp = "slerp"
    linear = "linear"


@app.command()
@reports_errors
def interpolate(
    checkpoint: Path = CheckpointArgument,
    rows: int = typer.Option(8, "--rows", "-r", min=1, help="Number of walks (grid rows)."),
    steps: int = typer.Option(8, "--steps", "-t", min=2,
                              help="Images per walk, both endpoints included (grid columns)."),
    out: str = typer.Option("walk.png", "--out", "-o",
                            help="Grid image to write (.png, .jpg, .webp, ...)."),
    seed: int = typer.Option(0, "--seed",
                             help="Seed of the walks' endpoint latents, 0 to 2**63 - 1."),
    mode: WalkMode = typer.Option(
        WalkMode.auto, "--mode", case_sensitive=False,
        help="slerp (spherical, best for a normal prior), linear (what the DCGAN paper "
             "used; stays inside the uniform prior's [-1, 1] cube, which slerp leaves) or "
             "auto: linear when the generator declares prior = 'uniform' (DCGAN's default), "
             "slerp otherwise."),
    gif: str | None = typer.Option(
        None, "--gif", help="Also write an animated GIF: one frame per step showing all "
                            "walks, going forth and back, looping forever."),
    frame_ms: int = typer.Option(100, "--frame-ms", min=10,
                                 help="GIF milliseconds per frame (at most 60000)."),
    class_: str | None = WalkClassOption,
    no_ema: bool = NoEmaOption,
    device: str = DeviceOption,
) -> None:
    """Latent walks (DCGAN §6.1): a grid of ROWS walks between random latents in STEPS steps.

    Smooth transitions along each row suggest the generator learnt the latent space rather
    than memorising images; sharp jumps suggest memorisation. A conditional generator holds
    one class per walk (--class K, or each walk's own class drawn from --seed) or walks from
    class A to class B (--class A:B).
    """
    from ..api.latent import interpolate as walk

    walked = walk(checkpoint, rows, steps, out=out, seed=seed, mode=mode.value, gif=gif,
                  frame_ms=frame_ms, class_=class_, ema=not no_ema, device=device,
                  registry=lambda: load_plugins_or_warn().registry)
    which = " (EMA)" if walked.is_ema else ""
    console = stderr()
    console.print(f"wrote {rows} {walked.mode} walks of {steps} steps{walked.what} from step "
                  f"{walked.step}{which} to {walked.path}", markup=False)
    if walked.gif is not None:
        console.print(f"wrote {walked.frames}-frame animation to {walked.gif}", markup=False)


@app.command()
@reports_errors
def arithmetic(
    checkpoint: Path = CheckpointArgument,
    sheet: str = typer.Option(
        ..., "--sheet", show_default=False,
        help="The numbered sample sheet PNG; its record is the .json beside it."),
    n: int | None = typer.Option(
        None, "--n", "-n", min=1, show_default=False,
        help="Samples on the sheet (default 64, at most 4096). Step 2 reads it from the "
             "sheet's json."),
    seed: int | None = typer.Option(
        None, "--seed", show_default=False,
        help="Seed of the sheet's latents (default 0, at most 2**63 - 1). Step 2 reads it "
             "from the json."),
    a: str | None = typer.Option(None, "--a", metavar="I,J,K", show_default=False,
                                 help="Three sheet indices of concept A (e.g. smiling woman)."),
    b: str | None = typer.Option(None, "--b", metavar="I,J,K", show_default=False,
                                 help="Three sheet indices of concept B (e.g. neutral woman)."),
    c: str | None = typer.Option(None, "--c", metavar="I,J,K", show_default=False,
                                 help="Three sheet indices of concept C (e.g. neutral man)."),
    out: str | None = typer.Option(None, "--out", "-o", show_default=False,
                                   help="Figure PNG to write in step 2 (default "
                                        "arithmetic.png)."),
    neighbours: int = typer.Option(8, "--neighbours", "--neighbors", min=0,
                                   help="Images of z + noise shown beside the result (at "
                                        "most 64)."),
    noise: float = typer.Option(
        0.25, "--noise", min=0.0,
        help="Noise scale of the neighbourhood: uniform on [-noise, noise] for a uniform "
             "prior (the paper: 0.25), noise * N(0, I) otherwise."),
    class_: str | None = SheetClassOption,
    no_ema: bool = NoEmaOption,
    device: str = DeviceOption,
) -> None:
    """Vector arithmetic on averaged latents (DCGAN §6.3.2): mean(A) - mean(B) + mean(C).

    Step 1, without --a/--b/--c: write a numbered sheet of N samples (--sheet) and its
    record (the .json beside it: seed, N, the checkpoint's sha256, the class and whether the
    EMA generator drew it). Step 2, with --a/--b/--c (three sheet indices each): redraw the
    sheet's latents, average each concept's exemplars, and write a figure (--out) with one
    row per concept (mean image and exemplars) and the result A - B + C with its noisy
    neighbourhood. A conditional generator draws one class throughout (--class K, default
    0); step 2 uses the sheet's and refuses another, and refuses a --no-ema that differs
    from the sheet's.
    """
    from ..api.latent import arithmetic as run_arithmetic

    done = run_arithmetic(checkpoint, sheet, a, b, c, n=n, seed=seed, out=out,
                          neighbours=neighbours, noise=noise, class_=class_, ema=not no_ema,
                          device=device, registry=lambda: load_plugins_or_warn().registry)
    which = " (EMA)" if done.is_ema else ""
    console = stderr()
    if done.stage == "figure":
        what = "" if done.label is None else f" of class {done.label}"
        console.print(f"wrote A - B + C{what} with {neighbours} neighbours (noise {noise}) "
                      f"from step {done.step}{which} to {done.path}", markup=False)
        return
    default = " (the default; --class K for another)" if class_ is None else ""
    what = "" if done.label is None else f" of class {done.label}{default}"
    console.print(f"wrote a sheet of {done.n} numbered samples{what} (seed {done.seed}, step "
                  f"{done.step}){which} to {done.path}", markup=False)
    console.print(f"record: {done.record}; now pick three indices per concept and run "
                  f"`ganforge arithmetic {checkpoint} --sheet {done.path}"
                  f"{' --no-ema' if no_ema else ''} --a I,J,K --b I,J,K --c I,J,K`",
                  markup=False)
