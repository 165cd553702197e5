"""Latent walks and vector arithmetic (DCGAN §6.1, §6.3.2): the pure functions and the
``interpolate`` / ``arithmetic`` commands on a tiny trained checkpoint."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image, ImageSequence
from typer.testing import CliRunner

import ganforge.cli.latent_commands  # noqa: F401  (registers the commands on ``app``)
from ganforge import load_plugins
from ganforge.cli import app
from ganforge.errors import UsageError
from ganforge.evaluation.latent import (
    arithmetic_figure,
    arithmetic_figure_size,
    arithmetic_latent,
    concept_mean,
    file_sha256,
    interpolation_latents,
    label_sheet,
    lerp,
    neighbourhood,
    parse_indices,
    resolve_mode,
    sheet_latents,
    slerp,
    walk_endpoints,
    write_gif,
)
from ganforge.recipe import load_recipe
from ganforge.training import train
from ganforge.training.assembly import load_generator
from tests.conftest import TINY_RECIPE

TILE = 96  # 32 px images upscaled 3x on sheets and figures


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One tiny run with checkpoints at steps 6 and 12, plus its generator (step 12).

    The tiny recipe's G, evaluated with BatchNorm running statistics after a few steps at
    lr 2e-4, draws almost the same grey image for every z; a high G learning rate makes z
    visibly matter, so walk frames differ and GIF writers do not merge them.
    """
    root = tmp_path_factory.mktemp("latent")
    recipe_path = root / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE, encoding="utf-8")
    plugins = load_plugins()
    overrides = ["run.steps=12", "run.checkpoint_every=6", "run.sample_every=12",
                 "run.log_every=12", "optimizer.generator.lr=0.05"]
    result = train(load_recipe(recipe_path, plugins.registry, overrides), plugins,
                   root / "run", progress=False)
    earlier = root / "run" / "checkpoints" / "step-0000006.safetensors"
    assert result.checkpoint is not None and earlier.is_file()
    generator, _recipe, step = load_generator(result.checkpoint, plugins.registry)
    assert step == 12
    return SimpleNamespace(checkpoint=result.checkpoint, earlier=earlier, generator=generator,
                           root=root)


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: object):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


# -- interpolation ------------------------------------------------------------------------

def test_endpoints_are_exact() -> None:
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    for fn in (lerp, slerp):
        assert torch.equal(fn(a, b, 0.0), a) and torch.equal(fn(a, b, 1.0), b)
        assert fn(a, b, 0.3).shape == (5, 8)
        per_row = fn(a, b, torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5]))
        assert per_row.shape == (5, 8)
        assert torch.equal(per_row[0], a[0]) and torch.equal(per_row[1], b[1])


def test_slerp_keeps_the_norm_lerp_shrinks_it() -> None:
    a = torch.tensor([[3.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 3.0, 0.0]])
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid, torch.tensor([[3 / math.sqrt(2), 3 / math.sqrt(2), 0.0]]))
    assert lerp(a, b, 0.5).norm().item() == pytest.approx(3 / math.sqrt(2))
    # random equal-norm latents: slerp stays on the sphere all along the walk
    x = torch.randn(16, 64)
    y = torch.randn(16, 64)
    y = y / y.norm(dim=1, keepdim=True) * x.norm(dim=1, keepdim=True)
    for t in torch.linspace(0, 1, 7).tolist():
        assert torch.allclose(slerp(x, y, t).norm(dim=1), x.norm(dim=1), rtol=1e-5)
    assert (lerp(x, y, 0.5).norm(dim=1) < 0.9 * x.norm(dim=1)).all()


def test_slerp_falls_back_to_lerp_for_parallel_vectors() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = torch.tensor([[2.0, 4.0, 6.0], [-1.0, -2.0, -3.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    out = slerp(a, b, 0.25)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    # parallel, anti-parallel and zero rows are linear; the last row is still spherical
    assert torch.allclose(out[:3], lerp(a, b, 0.25)[:3])
    assert out[3].norm().item() == pytest.approx(1.0)
    nearly = a[:1] + 1e-9 * torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.isfinite(slerp(a[:1], nearly, 0.5)).all()


def test_mode_follows_the_prior(trained) -> None:
    assert trained.generator.params.prior == "uniform"
    assert resolve_mode(trained.generator) == "linear"
    assert resolve_mode(SimpleNamespace(params=SimpleNamespace(prior="normal"))) == "slerp"
    assert resolve_mode(SimpleNamespace()) == "slerp"
    assert resolve_mode(trained.generator, "slerp") == "slerp"
    with pytest.raises(UsageError, match="'cubic' is not one of auto, slerp, linear"):
        resolve_mode(trained.generator, "cubic")


def test_interpolation_latents_walk_between_the_seeded_endpoints(trained) -> None:
    generator = trained.generator
    rows, steps = 3, 5
    z = interpolation_latents(generator, rows, steps, seed=7, mode="slerp")
    assert z.shape == (rows * steps, generator.latent_dim)
    drawn = generator.sample_latent(2 * rows, torch.Generator().manual_seed(7), "cpu")
    start, end = walk_endpoints(generator, rows, 7)
    assert torch.equal(start, drawn[:rows]) and torch.equal(end, drawn[rows:])
    grid = z.reshape(rows, steps, -1)
    assert torch.equal(grid[:, 0], start) and torch.equal(grid[:, -1], end)
    assert torch.allclose(grid[:, 2], slerp(start, end, 0.5), atol=1e-6)
    linear = interpolation_latents(generator, rows, steps, seed=7, mode="linear")
    assert torch.allclose(linear.reshape(rows, steps, -1)[:, 1], lerp(start, end, 0.25))
    assert torch.equal(interpolation_latents(generator, rows, steps, 7), linear)  # auto
    assert not torch.equal(interpolation_latents(generator, rows, steps, 8), linear)
    with pytest.raises(UsageError, match="steps must be at least 2"):
        interpolation_latents(generator, rows, 1, 7)


def test_write_gif_goes_forth_and_back(tmp_path: Path) -> None:
    frames = [torch.full((3, 8, 8), i / 4) for i in range(5)]
    path = write_gif(frames, tmp_path / "walk.gif", ms_per_frame=80)
    with Image.open(path) as gif:
        levels = [frame.convert("L").getpixel((0, 0)) for frame in ImageSequence.Iterator(gif)]
        assert gif.info["loop"] == 0 and gif.info["duration"] == 80
    assert len(levels) == 8
    assert levels == [levels[i] for i in (0, 1, 2, 3, 4, 3, 2, 1)]
    assert levels[:5] == sorted(levels[:5])
    once = write_gif(frames, tmp_path / "once.gif", pingpong=False)
    with Image.open(once) as gif:
        assert gif.n_frames == 5


def test_cli_interpolate_writes_grid_and_gif(cli, trained, tmp_path: Path) -> None:
    out, gif = tmp_path / "walk.png", tmp_path / "walk.gif"
    result = cli("interpolate", trained.checkpoint, "--rows", 3, "--steps", 4, "--out", out,
                 "--gif", gif, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "3 linear walks of 4 steps from step 12" in result.output  # auto: uniform prior
    with Image.open(out) as image:
        assert image.size == (4 * 32 + 5 * 2, 3 * 32 + 4 * 2)  # 4 columns x 3 rows, 2px pad
    with Image.open(gif) as animation:
        frames = list(ImageSequence.Iterator(animation))
        assert len(frames) == 2 * 4 - 2 and animation.info["loop"] == 0
        assert frames[0].size == (2 * 32 + 3 * 2,) * 2  # 3 walks per frame on a 2x2 grid
    result = cli("interpolate", trained.checkpoint, "--rows", 1, "--steps", 2, "--out", out,
                 "--mode", "slerp")
    assert result.exit_code == 0 and "1 slerp walks" in result.output
    result = cli("interpolate", trained.checkpoint, "--steps", 1)
    assert result.exit_code == 2


# -- vector arithmetic --------------------------------------------------------------------

def test_concept_mean_and_arithmetic_are_exact() -> None:
    latents = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    a = concept_mean(latents, [0, 2, 4])
    assert torch.equal(a, torch.tensor([8.0, 9.0, 10.0, 11.0]))
    b = concept_mean(latents, [1, 3, 5])
    c = concept_mean(latents, [0, 1, 2])
    assert torch.equal(c, torch.tensor([4.0, 5.0, 6.0, 7.0]))
    assert torch.equal(arithmetic_latent(a, b, c), a - b + c)
    assert torch.equal(arithmetic_latent(a, b, c), torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(UsageError, match="index 6 is out of range; valid indices are 0..5"):
        concept_mean(latents, [0, 6, 1])


def test_sheet_latents_match_ganforge_sample(trained) -> None:
    z = sheet_latents(trained.generator, 10, 3)
    same = trained.generator.sample_latent(10, torch.Generator().manual_seed(3), "cpu")
    assert z.shape == (10, 8) and torch.equal(z, same)


def test_neighbourhood_follows_the_prior() -> None:
    z = torch.linspace(-1, 1, 8)
    near = neighbourhood(z, 500, 0.25, seed=0, prior="uniform")
    assert near.shape == (500, 8)
    noise = near - z
    assert noise.abs().max() <= 0.25 and noise.abs().max() > 0.24
    assert torch.equal(near, neighbourhood(z, 500, 0.25, seed=0, prior="uniform"))
    assert not torch.equal(near, neighbourhood(z, 500, 0.25, seed=1, prior="uniform"))
    # a derived stream: not the noise that sample_latent's uniform draws for the same seed
    uniform = torch.rand((500, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert not torch.allclose(noise, 0.25 * uniform)
    gaussian = neighbourhood(z, 2000, 0.25, seed=0, prior="normal") - z
    assert gaussian.std().item() == pytest.approx(0.25, rel=0.05)
    assert gaussian.abs().max() > 0.5
    assert neighbourhood(z, 0, 0.25, 0).shape == (0, 8)


def test_parse_indices_errors_name_the_option() -> None:
    assert parse_indices(" 3, 17,22 ", "--a", 64) == [3, 17, 22]
    with pytest.raises(UsageError, match=r"^--b: expected exactly 3 .* got 2"):
        parse_indices("3,17", "--b", 64)
    with pytest.raises(UsageError, match=r"^--c: index 64 is out of range; the sheet has "
                                         r"indices 0\.\.63$"):
        parse_indices("3,64,1", "--c", 64)
    with pytest.raises(UsageError, match="--a: 'x' is not a sheet index"):
        parse_indices("3,x,1", "--a", 64)
    with pytest.raises(UsageError, match="--a: index 3 is given more than once"):
        parse_indices("3,3,1", "--a", 64)


def test_label_sheet_and_figure_geometry() -> None:
    images = torch.rand(21, 3, 32, 32) * 2 - 1
    sheet = label_sheet(images[:20])
    assert sheet.size == (5 * TILE + 6 * 2, 4 * TILE + 5 * 2)  # 5 columns, upscaled 3x
    # each tile carries its index on a black tag in its top-left corner
    for index in (0, 7, 19):
        row, col = divmod(index, 5)
        assert sheet.getpixel((2 + col * (TILE + 2), 2 + row * (TILE + 2))) == (0, 0, 0)
    exemplars = [images[0:3], images[3:6], images[6:9]]
    figure = arithmetic_figure(exemplars, images[9:12], images[12], images[13:21])
    assert figure.size == arithmetic_figure_size(32, 3, 8, 3) == (1024, 444)
    small = arithmetic_figure(exemplars, images[9:12], images[12], images[:0])
    assert small.size == (2 * 8 + 100 + TILE + 16 + 3 * TILE + 2 * 4, 444)


def test_cli_arithmetic_sheet_then_figure(cli, trained, tmp_path: Path) -> None:
    sheet = tmp_path / "sheets" / "sheet.png"
    result = cli("arithmetic", trained.checkpoint, "--sheet", sheet, "--n", 20, "--seed", 5)
    assert result.exit_code == 0, result.output
    with Image.open(sheet) as image:
        sheet_image = image.convert("RGB")
    assert sheet_image.size == (5 * TILE + 6 * 2, 4 * TILE + 5 * 2)
    record = json.loads((tmp_path / "sheets" / "sheet.json").read_text())
    assert record["seed"] == 5 and record["n"] == 20 and record["step"] == 12
    assert record["checkpoint_sha256"] == file_sha256(trained.checkpoint)

    out = tmp_path / "figure.png"
    result = cli("arithmetic", trained.checkpoint, "--sheet", sheet, "--a", "3,17,0",
                 "--b", "5,9,11", "--c", "1,2,19", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote A - B + C with 8 neighbours" in result.output
    with Image.open(out) as image:
        figure = image.convert("RGB")
    assert figure.size == (1024, 444)
    # the figure's exemplars are exactly the sheet's images (away from the index tags)
    for row, indices in enumerate(((3, 17, 0), (5, 9, 11), (1, 2, 19))):
        for col, index in enumerate(indices):
            sr, sc = divmod(index, 5)
            sx, sy = 2 + sc * (TILE + 2), 2 + sr * (TILE + 2)
            fx, fy = 8 + 100 + TILE + 16 + col * (TILE + 4), 8 + 20 + row * (TILE + 4)
            box = (40, 40, TILE, TILE)
            assert (sheet_image.crop((sx + box[0], sy + box[1], sx + box[2], sy + box[3]))
                    .tobytes() == figure.crop((fx + box[0], fy + box[1], fx + box[2],
                                               fy + box[3])).tobytes())
    # a copy of the same checkpoint is recognised by content
    copy = tmp_path / "copy.safetensors"
    shutil.copyfile(trained.checkpoint, copy)
    result = cli("arithmetic", copy, "--sheet", sheet, "--a", "3,17,0", "--b", "5,9,11",
                 "--c", "1,2,19", "--out", out, "--neighbours", 2)
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == arithmetic_figure_size(32, 3, 2, 3)


def test_cli_arithmetic_errors(cli, trained, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    assert cli("arithmetic", trained.checkpoint, "--sheet", sheet, "--n", 16).exit_code == 0
    ck = trained.checkpoint

    def step2(*args: object):
        return cli("arithmetic", ck, "--sheet", sheet, "--out", tmp_path / "f.png", *args)

    line = one_error_line(step2("--a", "1,2", "--b", "3,4,5", "--c", "6,7,8"))
    assert line.startswith("error: --a: expected exactly 3")
    result = step2("--a", "1,2,3", "--b", "3,4,16", "--c", "6,7,8")
    assert result.exit_code == 2
    assert one_error_line(result) == ("error: --b: index 16 is out of range; the sheet has "
                                      "indices 0..15")
    result = step2("--a", "1,2,3", "--b", "3,4,5")
    assert result.exit_code == 2 and "--c missing" in one_error_line(result)
    result = step2("--a", "1,2,3", "--b", "3,4,5", "--c", "6,7,8", "--seed", 1)
    assert result.exit_code == 2 and "--seed 1 does not match the sheet" in one_error_line(result)
    result = cli("arithmetic", trained.earlier, "--sheet", sheet, "--a", "1,2,3",
                 "--b", "3,4,5", "--c", "6,7,8")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "the sheet was drawn from" in line and "(step 12), not from" in line
    assert "(step 6)" in line
    result = cli("arithmetic", ck, "--sheet", tmp_path / "none.png", "--a", "1,2,3",
                 "--b", "3,4,5", "--c", "6,7,8")
    assert result.exit_code == 2 and "no sheet record" in one_error_line(result)
    assert not (tmp_path / "f.png").exists()


def test_help_and_lazy_torch(cli) -> None:
    for command in ("interpolate", "arithmetic"):
        result = cli(command, "--help")
        assert result.exit_code == 0
    assert "uniform" in cli("interpolate", "--help").output
    code = ("import sys, ganforge.cli.latent_commands; from ganforge.cli import app; "
            "from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['interpolate', '--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
