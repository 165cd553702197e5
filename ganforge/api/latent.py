"""``ganforge.interpolate`` and ``ganforge.arithmetic``: the DCGAN paper's latent-space
experiments (§6.1 latent walks, §6.3.2 vector arithmetic on averaged latents) on a
checkpoint's generator, what ``ganforge interpolate`` and ``ganforge arithmetic`` do.

The pieces are :mod:`ganforge.evaluation.latent`'s. Every argument is checked before the
registry is loaded or the checkpoint read; errors are ganforge's
(:class:`~ganforge.core.errors.UsageError`, ...), and their messages name the options of the
commands (``--rows``, ``--sheet``), which the arguments mirror.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..core.errors import UsageError
from .evaluate import registry_of

if TYPE_CHECKING:
    import torch

    from ..core.registry import Registry
    from ..training.experiment import Experiment

#: Longest GIF frame: Pillow stores durations in 16 bits of 10 ms.
MAX_FRAME_MS = 60_000
#: Most noisy neighbours one arithmetic figure shows (one row of tiles).
MAX_NEIGHBOURS = 64
#: Most row classes a walk's description names.
SHOWN_CLASSES = 8
#: Samples on a new arithmetic sheet, and its seed, when not given.
SHEET_N, SHEET_SEED = 64, 0


@attrs.frozen
class WalkResult:
    """Latent walks written: the grid file (and the GIF, with its frame count), ``rows``
    walks of ``steps`` images in ``mode`` (``"slerp"`` or ``"linear"``), the images
    (``(rows * steps, C, H, W)`` in [-1, 1], on the CPU), the checkpoint's step, whether
    the EMA generator drew them, and the walks' classes in words (``""``: unconditional)."""

    path: Path
    rows: int
    steps: int
    mode: str
    images: torch.Tensor
    step: int
    is_ema: bool
    what: str = ""
    gif: Path | None = None
    frames: int = 0


@attrs.frozen
class ArithmeticResult:
    """One step of the vector arithmetic. ``stage`` ``"sheet"`` (step 1): ``path`` is the
    numbered sheet of ``n`` samples drawn with ``seed`` and ``record`` its JSON record.
    ``stage`` ``"figure"`` (step 2): ``path`` is the figure of ``A - B + C`` from the
    exemplar ``indices`` of the sheet, with ``neighbours`` noisy copies (``noise``). Both
    give the checkpoint's step, the class drawn (None: unconditional) and whether the EMA
    generator drew the images."""

    stage: str
    path: Path
    n: int
    seed: int
    step: int
    is_ema: bool
    label: int | None = None
    record: Path | None = None
    indices: tuple[tuple[int, ...], ...] = ()
    neighbours: int = 0
    noise: float = 0.0


def interpolate(source: str | Path, rows: int = 8, steps: int = 8, *,
                out: str | Path = "walk.png", seed: int = 0, mode: str = "auto",
                gif: str | Path | None = None, frame_ms: int = 100,
                class_: str | int | None = None, ema: bool = True, device: str = "auto",
                registry: Registry | Callable[[], Registry] | None = None) -> WalkResult:
    """``rows`` latent walks of ``steps`` images each (both endpoints included) between
    latents drawn with ``seed``, written as a grid to ``out`` and, with ``gif``, as an
    animation (``frame_ms`` per frame, forth and back). ``mode``: ``"slerp"``,
    ``"linear"`` or ``"auto"`` (linear for a uniform prior). A conditional generator holds
    class ``K`` in every walk (``class_`` ``"K"``), walks from class A to B (``"A:B"``) or
    draws each walk's class from the seed (None or ``"all"``)."""
    import torch

    from ..core.interfaces import is_conditional
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
    from ..sampling import (
        MAX_IMAGES,
        check_count,
        check_output_path,
        check_seed,
        generate,
        write_grid,
    )

    # Every argument is checked before plugins, checkpoint or network are touched.
    target = check_output_path(str(out), "--out")
    gif_path = None if gif is None else check_output_path(str(gif), "--gif", image=False)
    check_count(rows, "--rows", MAX_IMAGES // 2)
    check_count(steps, "--steps", MAX_IMAGES // 2, low=2)
    if rows * steps > MAX_IMAGES:
        raise UsageError(f"--rows {rows} x --steps {steps} = {rows * steps} images, over the "
                         f"limit of {MAX_IMAGES}")
    check_seed(seed)
    check_count(frame_ms, "--frame-ms", MAX_FRAME_MS, low=10)
    experiment, dev = _load(source, device, ema, registry)
    generator = experiment.generator
    assert generator is not None
    conditional = is_conditional(generator)
    ends = parse_walk_classes(None if class_ is None else str(class_), experiment.classes,
                              conditional)
    chosen = resolve_mode(generator, mode)
    z = interpolation_latents(generator, rows, steps, seed, chosen)
    labels, what = None, ""
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
    frames = 0
    if gif_path is not None:
        write_gif(walk_frames(images, rows, steps), gif_path, frame_ms)
        frames = 2 * steps - 2
    return WalkResult(Path(target), rows, steps, chosen, images, experiment.step,
                      experiment.generator_is_ema, what, gif_path, frames)


def arithmetic(source: str | Path, sheet: str | Path, a: str | Sequence[int] | None = None,
               b: str | Sequence[int] | None = None, c: str | Sequence[int] | None = None,
               *, n: int | None = None, seed: int | None = None,
               out: str | Path | None = None, neighbours: int = 8, noise: float = 0.25,
               class_: str | int | None = None, ema: bool = True, device: str = "auto",
               registry: Registry | Callable[[], Registry] | None = None) -> ArithmeticResult:
    """Vector arithmetic on averaged latents: ``mean(A) - mean(B) + mean(C)``.

    Step 1, without ``a``/``b``/``c``: write a numbered sheet of ``n`` samples (default
    64, seed default 0) to ``sheet`` and its record (the .json beside it). Step 2, with
    ``a``, ``b`` and ``c`` (three sheet indices each, ``"3,17,22"`` or a sequence): redraw
    the sheet's latents, average each concept's exemplars, and write the figure to ``out``
    (default ``arithmetic.png``) with ``neighbours`` noisy copies of the result (``noise``:
    uniform on [-noise, noise] for a uniform prior, else noise * N(0, I)). A conditional
    generator draws one class throughout (``class_``, default 0); step 2 takes the sheet's
    and refuses another, and refuses an ``ema`` other than the sheet's."""
    from ..sampling import check_count, check_output_path, check_seed

    # Every argument is checked before plugins, checkpoint or network are touched.
    if n is not None:
        check_count(n, "--n")
    if seed is not None:
        check_seed(seed)
    check_count(neighbours, "--neighbours", MAX_NEIGHBOURS, low=0)
    if not math.isfinite(noise):
        raise UsageError(f"--noise {noise} is not a finite number")
    concepts = {"--a": a, "--b": b, "--c": c}
    given = [name for name, value in concepts.items() if value is not None]
    label = None if class_ is None else str(class_)
    if not given:
        if out is not None:
            raise UsageError("--out is for step 2: give --a, --b and --c as well (without "
                             "them the command writes the numbered sheet)")
        return _write_sheet(source, check_output_path(str(sheet), "--sheet", image=False),
                            SHEET_N if n is None else n, SHEET_SEED if seed is None else seed,
                            label, ema, device, registry)
    missing = [name for name in concepts if name not in given]
    if missing:
        raise UsageError(f"{', '.join(missing)} missing: give --a, --b and --c together "
                         "(three sheet indices each)")
    target = None if out is None else check_output_path(str(out), "--out", image=False)
    texts = [v if isinstance(v, str) else ",".join(str(i) for i in v or ()) for v in (a, b, c)]
    return _write_figure(source, Path(sheet), n, seed, texts, target, neighbours, noise,
                         label, ema, device, registry)


def _load(source: str | Path, device: str, ema: bool,
          registry: Registry | Callable[[], Registry] | None
          ) -> tuple[Experiment, torch.device]:
    """The checkpoint's generator on ``device`` (the registry loaded after the checks), and
    the device."""
    from ..training.building import resolve_device
    from ..training.experiment_loading import load_experiment

    dev = resolve_device(device, "--device")
    return load_experiment(Path(source), registry_of(registry), dev, ema=ema), dev


def _write_sheet(source: str | Path, sheet: Path, n: int, seed: int, class_: str | None,
                 ema: bool, device: str,
                 registry: Registry | Callable[[], Registry] | None) -> ArithmeticResult:
    """Step 1: the numbered sheet and its JSON record."""
    from ..core.interfaces import is_conditional
    from ..evaluation.latent import (
        label_sheet,
        sheet_class,
        sheet_latents,
        sheet_record,
        sheet_record_path,
        write_sheet_record,
    )
    from ..io.files import writing
    from ..sampling import class_labels, generate

    experiment, dev = _load(source, device, ema, registry)
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
        sheet_record(Path(source), step, seed, n, generator, label=label,
                     ema=experiment.generator_is_ema))
    return ArithmeticResult("sheet", sheet, n, seed, step, experiment.generator_is_ema,
                            label, record)


def _write_figure(source: str | Path, sheet: Path, n: int | None, seed: int | None,
                  concepts: list[str], out: Path | None, neighbours: int, noise: float,
                  class_: str | None, ema: bool, device: str,
                  registry: Registry | Callable[[], Registry] | None) -> ArithmeticResult:
    """Step 2: the arithmetic on the sheet's latents and its figure."""
    import torch

    from ..core.interfaces import is_conditional
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
    from ..io.files import writing
    from ..sampling import MAX_IMAGES, SEED_LIMIT, class_labels, generate

    checkpoint = Path(source)
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
    experiment, dev = _load(checkpoint, device, ema, registry)
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
    return ArithmeticResult("figure", target, sheet_n, sheet_seed, step, used_ema, label,
                            indices=tuple(tuple(row) for row in indices),
                            neighbours=neighbours, noise=noise)


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
