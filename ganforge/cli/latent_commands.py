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
from .shared import CheckpointArgument, DeviceOption, NoEmaOption, load_plugins_or_warn

#: Longest GIF frame: Pillow stores durations in 16 bits of 10 ms.
MAX_FRAME_MS = 60_000
#: Most noisy neighbours one arithmetic figure shows (one row of tiles).
MAX_NEIGHBOURS = 64
#: Most row classes ``interpolate`` names in its output line.
SHOWN_CLASSES = 8

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
    import torch

    from ..evaluation.latent import (
        interpolation_latents,
        parse_walk_classes,
        resolve_mode,
        walk_frames,
        walk_grid,
        walk_labels,
        walk_row_classes,
        write_gif,
    )
    from ..interfaces import is_conditional
    from ..sampling import (
        MAX_IMAGES,
        check_count,
        check_output_path,
        check_seed,
        generate,
        write_grid,
    )
    from ..training import resolve_device
    from ..training.assembly import load_experiment

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
    experiment = load_experiment(checkpoint, loaded.registry, dev, ema=not no_ema)
    generator, step = experiment.generator, experiment.step
    assert generator is not None
    conditional = is_conditional(generator)
    ends = parse_walk_classes(class_, experiment.classes, conditional)
    chosen = resolve_mode(generator, mode.value)
    z = interpolation_latents(generator, rows, steps, seed, chosen)
    labels = None
    what = ""
    if conditional:
        if ends is None:
            start = end = walk_row_classes(experiment.classes, rows, seed)
            shown = ", ".join(str(k) for k in start[:SHOWN_CLASSES].tolist())
            more = ", ..." if rows > SHOWN_CLASSES else ""
            what = f" (classes {shown}{more}, drawn from the seed)"
        else:
            start = torch.full((rows,), ends[0], dtype=torch.int64)
            end = torch.full((rows,), ends[1], dtype=torch.int64)
            what = (f" of class {ends[0]}" if ends[0] == ends[1] else
                    f" from class {ends[0]} to class {ends[1]}")
        labels = walk_labels(start, end, steps, experiment.classes).to(dev)
    images = generate(generator, z.to(dev), labels).cpu()
    write_grid(walk_grid(images, steps), target)
    which = " (EMA)" if experiment.generator_is_ema else ""
    console = stderr()
    console.print(f"wrote {rows} {chosen} walks of {steps} steps{what} from step {step}{which} "
                  f"to {target}", markup=False)
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
                     64 if n is None else n, 0 if seed is None else seed, class_, no_ema,
                     device)
        return
    missing = [name for name in concepts if name not in given]
    if missing:
        raise UsageError(f"{', '.join(missing)} missing: give --a, --b and --c together "
                         "(three sheet indices each)")
    target = None if out is None else check_output_path(out, "--out", image=False)
    _write_figure(checkpoint, Path(sheet), n, seed, [a or "", b or "", c or ""], target,
                  neighbours, noise, class_, no_ema, device)


def _write_sheet(checkpoint: Path, sheet: Path, n: int, seed: int, class_: str | None,
                 no_ema: bool, device: str) -> None:
    """Step 1: the numbered sheet and its JSON record."""
    from ..evaluation.latent import (
        label_sheet,
        sheet_class,
        sheet_latents,
        sheet_record,
        sheet_record_path,
        write_sheet_record,
    )
    from ..interfaces import is_conditional
    from ..sampling import class_labels, generate
    from ..training import resolve_device
    from ..training.assembly import load_experiment

    dev = resolve_device(device, "--device")
    loaded = load_plugins_or_warn()
    experiment = load_experiment(checkpoint, loaded.registry, dev, ema=not no_ema)
    generator, step = experiment.generator, experiment.step
    assert generator is not None
    label = sheet_class(class_, experiment.classes, is_conditional(generator))
    z = sheet_latents(generator, n, seed)
    labels = None if label is None else class_labels(n, label, dev)
    image = label_sheet(generate(generator, z.to(dev), labels))
    with writing(sheet):
        sheet.parent.mkdir(parents=True, exist_ok=True)
        image.save(sheet, format="PNG")
    record = write_sheet_record(
        sheet_record_path(sheet),
        sheet_record(checkpoint, step, seed, n, generator, label=label,
                     ema=experiment.generator_is_ema))
    what = ("" if label is None else
            f" of class {label}{' (the default; --class K for another)' if class_ is None else ''}")
    which = " (EMA)" if experiment.generator_is_ema else ""
    again = " --no-ema" if no_ema else ""
    console = stderr()
    console.print(f"wrote a sheet of {n} numbered samples{what} (seed {seed}, step {step})"
                  f"{which} to {sheet}", markup=False)
    console.print(f"record: {record}; now pick three indices per concept and run "
                  f"`ganforge arithmetic {checkpoint} --sheet {sheet}{again} --a I,J,K "
                  "--b I,J,K --c I,J,K`", markup=False)


def _write_figure(checkpoint: Path, sheet: Path, n: int | None, seed: int | None,
                  concepts: list[str], out: Path | None, neighbours: int, noise: float,
                  class_: str | None, no_ema: bool, device: str) -> None:
    """Step 2: the arithmetic on the sheet's latents and its figure."""
    import torch

    from ..evaluation.latent import (
        arithmetic_figure,
        arithmetic_latent,
        check_sheet_ema,
        check_sheet_record,
        checkpoint_has_ema,
        concept_mean,
        latent_prior,
        neighbourhood,
        parse_indices,
        read_sheet_record,
        recorded_class,
        sheet_latents,
        sheet_record_path,
    )
    from ..interfaces import is_conditional
    from ..sampling import MAX_IMAGES, SEED_LIMIT, class_labels, generate
    from ..training import resolve_device
    from ..training.assembly import load_experiment

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
    experiment = load_experiment(checkpoint, loaded.registry, dev, ema=not no_ema)
    generator, step = experiment.generator, experiment.step
    assert generator is not None
    check_sheet_record(record, checkpoint, step, record_path)
    used_ema = experiment.generator_is_ema
    check_sheet_ema(record, used_ema,
                    used_ema or ("ema" not in record and checkpoint_has_ema(checkpoint)),
                    record_path)
    label = recorded_class(record, class_, experiment.classes, is_conditional(generator),
                           record_path)
    latents = sheet_latents(generator, sheet_n, sheet_seed)
    means = torch.stack([concept_mean(latents, chosen) for chosen in indices])
    result = arithmetic_latent(means[0], means[1], means[2])
    noisy = neighbourhood(result, neighbours, noise, sheet_seed, latent_prior(generator))
    chosen_latents = latents[torch.as_tensor([i for row in indices for i in row])]
    batch = torch.cat([chosen_latents, means, result.unsqueeze(0), noisy])
    labels = None if label is None else class_labels(batch.shape[0], label, dev)
    images = generate(generator, batch.to(dev), labels).cpu()
    per_concept = len(indices[0])
    exemplar_images = list(images[: 3 * per_concept].split(per_concept))
    rest = images[3 * per_concept:]
    figure = arithmetic_figure(exemplar_images, rest[:3], rest[3], rest[4:], indices=indices)
    target = out or Path("arithmetic.png")
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.save(target, format="PNG")
    what = "" if label is None else f" of class {label}"
    which = " (EMA)" if used_ema else ""
    stderr().print(f"wrote A - B + C{what} with {neighbours} neighbours (noise {noise}) from "
                   f"step {step}{which} to {target}", markup=False)


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
