"""Classes and the EMA generator in ``ganforge interpolate`` and ``ganforge arithmetic``:
walks that hold a class or go from class A to class B, arithmetic sheets that keep their
class (and which generator drew them) in their record, ``--no-ema``, and the one-line
refusals for an unconditional generator given a class."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from typer.testing import CliRunner

import ganforge.cli.latent_commands  # noqa: F401  (registers the commands on ``app``)
from ganforge import load_plugins
from ganforge.cli import app
from ganforge.errors import UsageError
from ganforge.evaluation.latent import (
    interpolation_latents,
    label_sheet,
    parse_walk_classes,
    recorded_class,
    sheet_class,
    sheet_latents,
    walk_labels,
    walk_row_classes,
)
from ganforge.recipe import load_recipe
from ganforge.sampling import class_labels, generate
from ganforge.training import train
from ganforge.training.assembly import load_experiment

from .conftest import TINY_RECIPE

CLASSES = 3
ROWS, STEPS = 2, 4
TILE = 32  # walk grids: 32 px tiles, 2 px padding

# The tiny recipe on ``synthetic`` with three classes, conditional G and D, and an EMA of G.
CONDITIONAL_EMA = (
    TINY_RECIPE.replace("channels = 3\n", f"channels = 3\nclasses = {CLASSES}\n", 1)
    .replace("latent_dim = 8\nwidth = 4\n", "latent_dim = 8\nwidth = 4\nconditional = true\n")
    .replace('[discriminator]\nuse = "dcgan"\nwidth = 4\n',
             '[discriminator]\nuse = "dcgan"\nwidth = 4\nconditional = true\n')
    + "\n[ema]\nenabled = true\n"
)
#: A high G learning rate makes the latents (and classes) visibly matter after 6 steps.
OVERRIDES = ["run.checkpoint_every=6", "run.sample_every=6", "run.log_every=6",
             "optimizer.generator.lr=0.05"]


def _train(root: Path, text: str) -> Path:
    recipe_path = root / "recipe.toml"
    recipe_path.write_text(text, encoding="utf-8")
    plugins = load_plugins()
    result = train(load_recipe(recipe_path, plugins.registry, OVERRIDES), plugins,
                   root / "run", progress=False)
    assert result.checkpoint is not None
    return result.checkpoint


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A conditional checkpoint with an EMA of G and an unconditional one without."""
    conditional = _train(tmp_path_factory.mktemp("conditional"), CONDITIONAL_EMA)
    plain = _train(tmp_path_factory.mktemp("plain"), TINY_RECIPE)
    registry = load_plugins().registry
    ema = load_experiment(conditional, registry)
    raw = load_experiment(conditional, registry, ema=False)
    assert ema.generator_is_ema and not raw.generator_is_ema and ema.classes == CLASSES
    assert ema.generator.conditional
    return SimpleNamespace(conditional=conditional, plain=plain, ema=ema.generator,
                           raw=raw.generator, registry=registry)


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args] + ["--device", "cpu"])


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def one_error_line(result, *pieces: str) -> str:
    """Exit 2 (a usage error) and one ``error:`` line holding every piece."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and "internal error" not in lines[0]
    for piece in pieces:
        assert piece in lines[0], lines[0]
    return lines[0]


def png(path: Path) -> torch.Tensor:
    """An image file as a uint8 CHW tensor."""
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def as_png(images: torch.Tensor) -> torch.Tensor:
    """Generator images in [-1, 1] as the uint8 RGB tiles ``walk_grid``/``save_image`` write."""
    tiles = images.clamp(-1, 1).sub(-1.0).div(2.0).mul(255).add_(0.5).clamp_(0, 255)
    tiles = tiles.to(torch.uint8)
    return tiles.expand(-1, 3, -1, -1) if tiles.shape[1] == 1 else tiles


def tile(grid: torch.Tensor, row: int, col: int) -> torch.Tensor:
    x, y = 2 + col * (TILE + 2), 2 + row * (TILE + 2)
    return grid[:, y:y + TILE, x:x + TILE]


def walk(tmp_path: Path, checkpoint: Path, *args: object, name: str = "walk.png"):
    out = tmp_path / name
    result = cli("interpolate", checkpoint, "--rows", ROWS, "--steps", STEPS, "--seed", 4,
                 "--out", out, *args)
    return result, out


# -- the pure helpers -----------------------------------------------------------------------

def test_parse_walk_classes() -> None:
    assert parse_walk_classes(None, 3, True) is None
    assert parse_walk_classes("all", 3, True) is None
    assert parse_walk_classes("2", 3, True) == (2, 2)
    assert parse_walk_classes("0:2", 3, True) == (0, 2)
    assert parse_walk_classes("1:1", 3, True) == (1, 1)
    for bad, part in (("0:3", "'3'"), ("x:1", "'x'"), ("1:", "''"), ("0:1:2", "'1:2'"),
                      ("-1:0", "'-1'")):
        with pytest.raises(UsageError, match=f"--class '{bad}': {part} is not a class: use K "
                                             "or A:B with classes 0 to 2, or all"):
            parse_walk_classes(bad, 3, True)
    with pytest.raises(UsageError, match=r"--class '3' is not a class: use 0 to 2 or all"):
        parse_walk_classes("3", 3, True)
    for text in ("0", "0:1", "all"):
        with pytest.raises(UsageError, match=f"--class {text}: this checkpoint's generator is "
                                             "unconditional"):
            parse_walk_classes(text, 0, False)
    assert parse_walk_classes(None, 0, False) is None


def test_walk_labels_go_from_one_hot_a_to_one_hot_b() -> None:
    fixed = walk_labels(torch.tensor([1, 2]), torch.tensor([1, 2]), 3, 4)
    assert fixed.dtype == torch.int64 and fixed.tolist() == [1, 1, 1, 2, 2, 2]
    weights = walk_labels(torch.tensor([0, 3]), torch.tensor([2, 3]), 5, 4)
    assert weights.dtype == torch.float32 and weights.shape == (10, 4)
    t = torch.linspace(0, 1, 5)
    assert torch.equal(weights[:5, 0], 1 - t) and torch.equal(weights[:5, 2], t)
    assert torch.equal(weights[0], torch.tensor([1.0, 0, 0, 0]))  # exactly one-hot ends
    assert torch.equal(weights[4], torch.tensor([0.0, 0, 1, 0]))
    assert torch.equal(weights[5:], torch.tensor([[0.0, 0, 0, 1]] * 5))
    assert torch.allclose(weights.sum(dim=1), torch.ones(10))


def test_walk_row_classes_are_seeded() -> None:
    first = walk_row_classes(10, 64, 5)
    assert first.dtype == torch.int64 and first.shape == (64,)
    assert torch.equal(first, walk_row_classes(10, 64, 5))
    assert not torch.equal(first, walk_row_classes(10, 64, 6))
    assert set(first.tolist()) == set(range(10))
    # its own stream: not the latents' uniform draws for the same seed
    assert not torch.equal(first, torch.randint(10, (64,),
                                                generator=torch.Generator().manual_seed(5)))


def test_sheet_class_and_recorded_class() -> None:
    assert sheet_class(None, 3, True) == 0 and sheet_class("2", 3, True) == 2
    assert sheet_class(None, 0, False) is None
    with pytest.raises(UsageError, match="--class all: the arithmetic holds one class"):
        sheet_class("all", 3, True)
    with pytest.raises(UsageError, match="unconditional"):
        sheet_class("1", 0, False)
    assert recorded_class({"class": 2}, None, 3, True, "s.json") == 2
    assert recorded_class({"class": 2}, "2", 3, True, "s.json") == 2
    assert recorded_class({}, None, 0, False, "s.json") is None  # an older record
    with pytest.raises(UsageError, match=r"--class 1 does not match the sheet \(s.json says "
                                         r"2\); leave --class out in step 2"):
        recorded_class({"class": 2}, "1", 3, True, "s.json")
    with pytest.raises(UsageError, match="s.json: records no class, but this checkpoint's "
                                         "generator is conditional"):
        recorded_class({}, None, 3, True, "s.json")
    for edited in (3, -1, "1", True, 1.0):
        with pytest.raises(UsageError, match="s.json: class is .*, not an integer from 0 to 2"):
            recorded_class({"class": edited}, None, 3, True, "s.json")
    with pytest.raises(UsageError, match="s.json: records class 1, but this checkpoint's "
                                         "generator is unconditional"):
        recorded_class({"class": 1}, None, 0, False, "s.json")


# -- interpolate ----------------------------------------------------------------------------

def test_interpolate_class_k_draws_class_k(runs, tmp_path: Path) -> None:
    result, out = walk(tmp_path, runs.conditional, "--class", 2)
    assert (f"wrote {ROWS} linear walks of {STEPS} steps of class 2 from step 6 (EMA) to"
            in ok(result))
    z = interpolation_latents(runs.ema, ROWS, STEPS, 4)
    expected = as_png(generate(runs.ema, z, class_labels(ROWS * STEPS, 2, "cpu")))
    grid = png(out)
    for row in range(ROWS):
        for col in range(STEPS):
            assert torch.equal(tile(grid, row, col), expected[row * STEPS + col])
    # the endpoints are the class-2 images of the seeded endpoint latents
    other = as_png(generate(runs.ema, z, class_labels(ROWS * STEPS, 0, "cpu")))
    assert not torch.equal(other, expected)


def test_interpolate_walks_from_class_a_to_class_b(runs, tmp_path: Path) -> None:
    gif = tmp_path / "walk.gif"
    result, out = walk(tmp_path, runs.conditional, "--class", "0:2", "--gif", gif)
    assert "walks of 4 steps from class 0 to class 2 from step 6 (EMA)" in ok(result)
    z = interpolation_latents(runs.ema, ROWS, STEPS, 4)
    # every endpoint column drawn in one batch, as the command does: column 0 in class 0,
    # the last column in class 2
    columns = torch.arange(ROWS * STEPS) % STEPS
    ends = torch.where(columns == 0, 0, 2)
    expected = as_png(generate(runs.ema, z, ends))
    grid = png(out)
    for row in range(ROWS):
        assert torch.equal(tile(grid, row, 0), expected[row * STEPS])
        assert torch.equal(tile(grid, row, STEPS - 1), expected[row * STEPS + STEPS - 1])
    # the walk's class weights: exactly what walk_labels gives (mixtures in between)
    weights = walk_labels(torch.zeros(ROWS, dtype=torch.int64),
                          torch.full((ROWS,), 2, dtype=torch.int64), STEPS, CLASSES)
    assert torch.equal(as_png(generate(runs.ema, z, weights)).reshape(ROWS, STEPS, 3, TILE,
                                                                       TILE)[:, 1],
                       torch.stack([tile(grid, row, 1) for row in range(ROWS)]))
    with Image.open(gif) as animation:
        # one frame per step, forth and back (GIF writers merge identical neighbours): all
        # walks side by side on a near-square grid, here 2 x 1
        frames = list(ImageSequence.Iterator(animation))
        assert 1 <= len(frames) <= 2 * STEPS - 2 and animation.info["loop"] == 0
        assert frames[0].size == (2 * TILE + 3 * 2, TILE + 2 * 2)


def test_interpolate_without_class_draws_each_rows_class_from_the_seed(runs,
                                                                      tmp_path: Path) -> None:
    result, out = walk(tmp_path, runs.conditional)
    classes = walk_row_classes(CLASSES, ROWS, 4)
    shown = ", ".join(map(str, classes.tolist()))
    assert f"(classes {shown}, drawn from the seed)" in ok(result)
    z = interpolation_latents(runs.ema, ROWS, STEPS, 4)
    expected = as_png(generate(runs.ema, z, classes.repeat_interleave(STEPS)))
    grid = png(out)
    for row in range(ROWS):
        for col in range(STEPS):
            assert torch.equal(tile(grid, row, col), expected[row * STEPS + col])
    same, again = walk(tmp_path, runs.conditional, "--class", "all", name="all.png")
    ok(same)
    assert torch.equal(png(again), grid)


def test_interpolate_no_ema(runs, tmp_path: Path) -> None:
    result, default = walk(tmp_path, runs.conditional, "--class", 1)
    assert "(EMA)" in ok(result)
    result, raw = walk(tmp_path, runs.conditional, "--class", 1, "--no-ema", name="raw.png")
    assert "(EMA)" not in ok(result)
    assert not torch.equal(png(default), png(raw))
    z = interpolation_latents(runs.raw, ROWS, STEPS, 4)
    expected = as_png(generate(runs.raw, z, class_labels(ROWS * STEPS, 1, "cpu")))
    assert torch.equal(tile(png(raw), 1, 0), expected[STEPS])
    # without an EMA in the checkpoint, --no-ema changes nothing
    result, plain = walk(tmp_path, runs.plain, name="plain.png")
    assert "(EMA)" not in ok(result)
    result, plain_raw = walk(tmp_path, runs.plain, "--no-ema", name="plain-raw.png")
    ok(result)
    assert plain.read_bytes() == plain_raw.read_bytes()


@pytest.mark.parametrize("text", ["0", "0:1", "all"])
def test_interpolate_unconditional_with_class_is_one_line(runs, tmp_path: Path,
                                                          text: str) -> None:
    result, out = walk(tmp_path, runs.plain, "--class", text)
    one_error_line(result, f"--class {text}: this checkpoint's generator is unconditional")
    assert not out.exists()


@pytest.mark.parametrize(("text", "piece"), [
    ("3", "--class '3' is not a class: use 0 to 2 or all"),
    ("0:3", "--class '0:3': '3' is not a class"),
    ("a:b", "--class 'a:b': 'a' is not a class"),
])
def test_interpolate_bad_class_is_one_line(runs, tmp_path: Path, text: str, piece: str) -> None:
    result, out = walk(tmp_path, runs.conditional, "--class", text)
    one_error_line(result, piece)
    assert not out.exists()


# -- arithmetic -----------------------------------------------------------------------------

CONCEPTS = ("--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8")


def test_arithmetic_records_and_keeps_the_class(runs, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    output = ok(cli("arithmetic", runs.conditional, "--sheet", sheet, "--n", 9, "--seed", 3,
                    "--class", 2))
    assert "sheet of 9 numbered samples of class 2 (seed 3, step 6) (EMA)" in output
    record = json.loads(sheet.with_suffix(".json").read_text())
    assert record["class"] == 2 and record["ema"] is True
    # the sheet is class 2's images of the seeded latents
    z = sheet_latents(runs.ema, 9, 3)
    expected = label_sheet(generate(runs.ema, z, class_labels(9, 2, "cpu")))
    with Image.open(sheet) as image:
        assert image.convert("RGB").tobytes() == expected.tobytes()

    out = tmp_path / "figure.png"
    output = ok(cli("arithmetic", runs.conditional, "--sheet", sheet, *CONCEPTS, "--out", out))
    assert "wrote A - B + C of class 2 with 8 neighbours" in output and "(EMA)" in output
    # the figure's exemplars are the sheet's class-2 images (away from the index tags)
    tile_px, box = 96, (40, 40, 96, 96)
    with Image.open(sheet) as a, Image.open(out) as b:
        sheet_image, figure = a.convert("RGB"), b.convert("RGB")
    for row, indices in enumerate(((0, 1, 2), (3, 4, 5), (6, 7, 8))):
        for col, index in enumerate(indices):
            sr, sc = divmod(index, 3)
            sx, sy = 2 + sc * (tile_px + 2), 2 + sr * (tile_px + 2)
            fx, fy = 8 + 100 + tile_px + 16 + col * (tile_px + 4), 8 + 20 + row * (tile_px + 4)
            assert (sheet_image.crop((sx + box[0], sy + box[1], sx + box[2], sy + box[3]))
                    .tobytes() == figure.crop((fx + box[0], fy + box[1], fx + box[2],
                                               fy + box[3])).tobytes())
    ok(cli("arithmetic", runs.conditional, "--sheet", sheet, *CONCEPTS, "--out", out,
           "--class", 2))
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", sheet, *CONCEPTS, "--out",
                       tmp_path / "other.png", "--class", 1),
                   "--class 1 does not match the sheet", "says 2); leave --class out")
    assert not (tmp_path / "other.png").exists()


def test_arithmetic_defaults_to_class_0_and_refuses_all(runs, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    output = ok(cli("arithmetic", runs.conditional, "--sheet", sheet, "--n", 9))
    assert "of class 0 (the default; --class K for another)" in output
    assert json.loads(sheet.with_suffix(".json").read_text())["class"] == 0
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", tmp_path / "all.png",
                       "--class", "all"), "--class all: the arithmetic holds one class")
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", tmp_path / "big.png",
                       "--class", 3), "--class '3' is not a class: use 0 to 2")
    assert not (tmp_path / "all.png").exists() and not (tmp_path / "big.png").exists()
    # a conditional sheet record that lost its class is refused
    record_path = sheet.with_suffix(".json")
    record = json.loads(record_path.read_text())
    del record["class"]
    record_path.write_text(json.dumps(record))
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", sheet, *CONCEPTS,
                       "--out", tmp_path / "f.png"),
                   "records no class, but this checkpoint's generator is conditional")


def test_arithmetic_no_ema_must_match_the_sheet(runs, tmp_path: Path) -> None:
    raw_sheet, ema_sheet = tmp_path / "raw.png", tmp_path / "ema.png"
    output = ok(cli("arithmetic", runs.conditional, "--sheet", raw_sheet, "--n", 9, "--class",
                    1, "--no-ema"))
    assert "(EMA)" not in output and "--sheet " + str(raw_sheet) + " --no-ema" in output
    assert json.loads(raw_sheet.with_suffix(".json").read_text())["ema"] is False
    ok(cli("arithmetic", runs.conditional, "--sheet", ema_sheet, "--n", 9, "--class", 1))
    with Image.open(raw_sheet) as a, Image.open(ema_sheet) as b:
        assert a.tobytes() != b.tobytes()
    out = tmp_path / "f.png"
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", raw_sheet, *CONCEPTS,
                       "--out", out),
                   "the sheet was drawn with --no-ema", "give --no-ema in step 2 as well")
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", ema_sheet, *CONCEPTS,
                       "--out", out, "--no-ema"),
                   "--no-ema does not match the sheet", "drawn with the EMA generator")
    assert not out.exists()
    assert "(EMA)" not in ok(cli("arithmetic", runs.conditional, "--sheet", raw_sheet,
                                 *CONCEPTS, "--out", out, "--no-ema"))
    # a record from before --no-ema existed was drawn with the default: the EMA generator
    record_path = ema_sheet.with_suffix(".json")
    record = json.loads(record_path.read_text())
    del record["ema"]
    record_path.write_text(json.dumps(record))
    ok(cli("arithmetic", runs.conditional, "--sheet", ema_sheet, *CONCEPTS, "--out", out))
    one_error_line(cli("arithmetic", runs.conditional, "--sheet", ema_sheet, *CONCEPTS,
                       "--out", out, "--no-ema"), "--no-ema does not match the sheet")


def test_arithmetic_unconditional(runs, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    one_error_line(cli("arithmetic", runs.plain, "--sheet", sheet, "--class", 0),
                   "--class 0: this checkpoint's generator is unconditional")
    assert not sheet.exists()
    output = ok(cli("arithmetic", runs.plain, "--sheet", sheet, "--n", 9))
    assert "of class" not in output and "(EMA)" not in output
    record_path = sheet.with_suffix(".json")
    record = json.loads(record_path.read_text())
    assert "class" not in record and record["ema"] is False
    out = tmp_path / "f.png"
    one_error_line(cli("arithmetic", runs.plain, "--sheet", sheet, *CONCEPTS, "--out", out,
                       "--class", 0), "--class 0: this checkpoint's generator is unconditional")
    # --no-ema changes nothing without an EMA in the checkpoint
    ok(cli("arithmetic", runs.plain, "--sheet", sheet, *CONCEPTS, "--out", out, "--no-ema"))
    figure = out.read_bytes()
    # an older record (no class, no ema) stays valid and draws the same figure
    del record["ema"]
    record_path.write_text(json.dumps(record))
    ok(cli("arithmetic", runs.plain, "--sheet", sheet, *CONCEPTS, "--out", out))
    assert out.read_bytes() == figure
