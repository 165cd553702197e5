"""``ganforge interpolate`` and ``ganforge arithmetic``: the DCGAN paper's latent-space
experiments (§6.1 latent walks, §6.3.2 vector arithmetic on averaged latents).

The logic lives in :mod:`ganforge.evaluation.latent`; torch is imported inside each command
so that ``ganforge --help`` stays fast.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Any

import typer

from ..errors import UsageError
from ..files import writing
from .app import app, reports_errors, stderr
from .shared import CheckpointArgument, DeviceOption, load_plugins_or_warn

#: Longest GIF frame: Pillow stores durations in 16 bits of 10 ms.
MAX_FRAME_MS = 60_000
#: Most noisy neighbours one arithmetic figure shows (one row of tiles).
MAX_NEIGHBOURS = 64


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
    device: str = DeviceOption,
) -> None:
    """Latent walks (DCGAN §6.1): a grid of ROWS walks between random latents in STEPS steps.

    Smooth transitions along each row suggest the generator learnt the latent space rather
    than memorising images; sharp jumps suggest memorisation.
    """
    from ..evaluation.latent import (
        interpolation_latents,
        resolve_mode,
        walk_frames,
        walk_grid,
        write_gif,
    )
    from ..sampling import (
        MAX_IMAGES,
        check_count,
        check_output_path,
        check_seed,
        generate,
        write_grid,
    )
    from ..training import resolve_device
    from ..training.assembly import load_generator

    # Every option is checked before plugins, checkpoint or network are touched.
    target = check_output_path(out, "--out")
    gif_path = None if gif is None else check_output_path(gif, "--gif", image=False)
    check_count(rows, "--rows", MAX_IMAGES // 2)
    check_count(steps, "--steps", MAX_IMAGES // 2, low=2)
    if rows * steps > MAX_IMAGES:
        raise UsageError(f"--rows {rows} x --steps {steps} = {rows * steps} images, over the "
                         f"limit of {MAX_IMAGES}")
    check_seed(seed)
    check_count(frame_ms, "--frame-ms", MAX_FRAME_MS, low=10)
    dev = resolve_device(device, "--device")
    loaded = load_plugins_or_warn()
    generator, _recipe, step = load_generator(checkpoint, loaded.registry, dev)
    chosen = resolve_mode(generator, mode.value)
    z = interpolation_latents(generator, rows, steps, seed, chosen)
    images = generate(generator, z.to(dev)).cpu()
    write_grid(walk_grid(images, steps), target)
    console = stderr()
    console.print(f"wrote {rows} {chosen} walks of {steps} steps from step {step} to {target}",
                  markup=False)
    if gif_path is not None:
        frames = walk_frames(images, rows, steps)
        write_gif(frames, gif_path, frame_ms)
        console.print(f"wrote {2 * steps - 2}-frame animation to {gif_path}", markup=False)


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
    device: str = DeviceOption,
) -> None:
    """Vector arithmetic on averaged latents (DCGAN §6.3.2): mean(A) - mean(B) + mean(C).

    Step 1, without --a/--b/--c: write a numbered sheet of N samples (--sheet) and its
    record (the .json beside it: seed, N and the checkpoint's sha256). Step 2, with
    --a/--b/--c (three sheet indices each): redraw the sheet's latents, average each
    concept's exemplars, and write a figure (--out) with one row per concept (mean image and
    exemplars) and the result A - B + C with its noisy neighbourhood.
    """
    from ..sampling import check_count, check_output_path, check_seed

    # Every option is checked before plugins, checkpoint or network are touched.
    if n is not None:
        check_count(n, "--n")
    if seed is not None:
        check_seed(seed)
    check_count(neighbours, "--neighbours", MAX_NEIGHBOURS, low=0)
    if not math.isfinite(noise):
        raise UsageError(f"--noise {noise} is not a finite number")
    concepts = {"--a": a, "--b": b, "--c": c}
    given = [name for name, value in concepts.items() if value is not None]
    if not given:
        if out is not None:
            raise UsageError("--out is for step 2: give --a, --b and --c as well (without "
                             "them the command writes the numbered sheet)")
        _write_sheet(checkpoint, check_output_path(sheet, "--sheet", image=False),
                     64 if n is None else n, 0 if seed is None else seed, device)
        return
    missing = [name for name in concepts if name not in given]
    if missing:
        raise UsageError(f"{', '.join(missing)} missing: give --a, --b and --c together "
                         "(three sheet indices each)")
    target = None if out is None else check_output_path(out, "--out", image=False)
    _write_figure(checkpoint, Path(sheet), n, seed, [a or "", b or "", c or ""], target,
                  neighbours, noise, device)


def _write_sheet(checkpoint: Path, sheet: Path, n: int, seed: int, device: str) -> None:
    """Step 1: the numbered sheet and its JSON record."""
    from ..evaluation.latent import (
        label_sheet,
        sheet_latents,
        sheet_record,
        sheet_record_path,
        write_sheet_record,
    )
    from ..sampling import generate
    from ..training import resolve_device
    from ..training.assembly import load_generator

    dev = resolve_device(device, "--device")
    loaded = load_plugins_or_warn()
    generator, _recipe, step = load_generator(checkpoint, loaded.registry, dev)
    z = sheet_latents(generator, n, seed)
    image = label_sheet(generate(generator, z.to(dev)))
    with writing(sheet):
        sheet.parent.mkdir(parents=True, exist_ok=True)
        image.save(sheet, format="PNG")
    record = write_sheet_record(sheet_record_path(sheet),
                                sheet_record(checkpoint, step, seed, n, generator))
    console = stderr()
    console.print(f"wrote a sheet of {n} numbered samples (seed {seed}, step {step}) to "
                  f"{sheet}", markup=False)
    console.print(f"record: {record}; now pick three indices per concept and run "
                  f"`ganforge arithmetic {checkpoint} --sheet {sheet} --a I,J,K --b I,J,K "
                  "--c I,J,K`", markup=False)


def _write_figure(checkpoint: Path, sheet: Path, n: int | None, seed: int | None,
                  concepts: list[str], out: Path | None, neighbours: int, noise: float,
                  device: str) -> None:
    """Step 2: the arithmetic on the sheet's latents and its figure."""
    import torch

    from ..evaluation.latent import (
        arithmetic_figure,
        arithmetic_latent,
        check_sheet_record,
        concept_mean,
        latent_prior,
        neighbourhood,
        parse_indices,
        read_sheet_record,
        sheet_latents,
        sheet_record_path,
    )
    from ..sampling import MAX_IMAGES, SEED_LIMIT, generate
    from ..training import resolve_device
    from ..training.assembly import load_generator

    record_path = sheet_record_path(sheet)
    record = read_sheet_record(sheet)
    sheet_n = _recorded_int(record, "n", record_path, 1, MAX_IMAGES)
    sheet_seed = _recorded_int(record, "seed", record_path, 0, SEED_LIMIT - 1)
    for option, value, recorded in (("--n", n, sheet_n), ("--seed", seed, sheet_seed)):
        if value is not None and value != recorded:
            raise UsageError(f"{option} {value} does not match the sheet ({record_path} says "
                             f"{recorded}); leave {option} out in step 2")
    indices = [parse_indices(text, option, sheet_n)
               for option, text in zip(("--a", "--b", "--c"), concepts, strict=True)]

    dev = resolve_device(device, "--device")
    loaded = load_plugins_or_warn()
    generator, _recipe, step = load_generator(checkpoint, loaded.registry, dev)
    check_sheet_record(record, checkpoint, step, record_path)
    latents = sheet_latents(generator, sheet_n, sheet_seed)
    means = torch.stack([concept_mean(latents, chosen) for chosen in indices])
    result = arithmetic_latent(means[0], means[1], means[2])
    noisy = neighbourhood(result, neighbours, noise, sheet_seed, latent_prior(generator))
    chosen_latents = latents[torch.as_tensor([i for row in indices for i in row])]
    batch = torch.cat([chosen_latents, means, result.unsqueeze(0), noisy])
    images = generate(generator, batch.to(dev)).cpu()
    per_concept = len(indices[0])
    exemplar_images = list(images[: 3 * per_concept].split(per_concept))
    rest = images[3 * per_concept:]
    figure = arithmetic_figure(exemplar_images, rest[:3], rest[3], rest[4:], indices=indices)
    target = out or Path("arithmetic.png")
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.save(target, format="PNG")
    stderr().print(f"wrote A - B + C with {neighbours} neighbours (noise {noise}) from step "
                   f"{step} to {target}", markup=False)


def _recorded_int(record: dict[str, Any], key: str, record_path: Path, low: int,
                  high: int) -> int:
    """An integer of a sheet record, in ``[low, high]``; anything else is a UsageError
    naming the record (it is a file the user may have edited)."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise UsageError(f"{record_path}: {key} is {shown}, not an integer from {low} to "
                         f"{high}; write the sheet again")
    return value
