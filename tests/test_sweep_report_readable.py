"""A crossed sweep's report stays readable: heat maps of the final metric over two axes
(small multiples for more), short display names, distinct colours, the legend outside the
panels, and sample labels wrapped instead of cut. The sweeps are faked on disk (a plan,
metrics.jsonl and sample grids), nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageFont

from ganforge.sweep.heatmap import (
    cell_text,
    crossed_axes,
    facets,
    heatmap_figure,
    heatmap_plots,
    layout,
    metric_grid,
)
from ganforge.sweep.labels import display_names, short_keys, wrap_label
from ganforge.sweep.plan import PlannedRun, SweepPlan, plan_sweep
from ganforge.sweep.report import curves_figure, samples_sheet, variant_styles
from ganforge.sweep.results import collect

CROSSED = """
[sweep]
seeds = [0, 1]

[sweep.axes]
"loss.use" = ["bce", "hinge"]
"discriminator.norm" = ["batch", "spectral", "layer", "none"]
"regularizers.penalty.use" = ["none", "gradient_penalty"]
"""


def _plan(plugins, tiny_recipe: Path, tmp_path: Path, text: str = CROSSED) -> SweepPlan:
    path = tmp_path / "crossed.toml"
    path.write_text(f'extends = "{tiny_recipe.name}"\n{text}')
    return plan_sweep(path, plugins.registry, out=tmp_path / "sweep")


def _fid(run: PlannedRun) -> float:
    """A known final FID per run: loss adds 0/10, norm 0/1/2/3, penalty 0/100, seed 0/2."""
    loss = {"bce": 0, "hinge": 10}[run.overrides["loss.use"]]
    norm = ["batch", "spectral", "layer", "none"].index(run.overrides["discriminator.norm"])
    penalty = 100 if run.overrides["regularizers.penalty.use"] != "none" else 0
    return loss + norm + penalty + 2 * run.seed


def _fake_runs(plan: SweepPlan, skip: tuple[str, int] | None = None) -> None:
    """metrics.jsonl (two evaluations, the last one :func:`_fid`) and a sample grid for
    every run but ``skip`` (variant, seed)."""
    for run in plan.runs:
        if (run.variant, run.seed) == skip:
            continue
        run.run_dir.mkdir(parents=True)
        lines = [{"step": 2, "loss_d": 1.0, "loss_g": 2.0},
                 {"step": 3, "eval/fid": 500.0, "eval/seconds": 1.0},
                 {"step": 6, "loss_d": 0.5, "loss_g": 1.5, "images_per_s": 10.0,
                  "elapsed_s": 1.0},
                 {"step": 6, "eval/fid": _fid(run), "eval/seconds": 1.0}]
        (run.run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n"
                                                           for x in lines))
        (run.run_dir / "samples").mkdir()
        Image.new("RGB", (34, 34), "gray").save(run.run_dir / "samples" / "step-0000006.png")


def test_display_names_are_short_and_run_dirs_keep_their_ids(plugins, tiny_recipe: Path,
                                                               tmp_path: Path) -> None:
    plan = _plan(plugins, tiny_recipe, tmp_path)
    names = display_names(plan)
    assert len(names) == 16 and len(set(names.values())) == 16
    vid = "loss.use=bce_norm=batch_penalty.use=none"
    assert names[vid] == "loss=bce norm=batch penalty=none"
    assert names["loss.use=hinge_norm=spectral_penalty.use=gradient_penalty"] == \
        "loss=hinge norm=spectral penalty=gradient_penalty"
    # The run directories are still named by the ids, so existing sweeps resume.
    assert plan.runs[0].run_dir == tmp_path / "sweep" / vid / "seed-0"
    assert all(r.run_dir.parent.name == r.variant for r in plan.runs)


def test_short_keys_drop_use_and_tell_tables_apart() -> None:
    assert short_keys(["loss.use", "cr.use"]) == {"loss.use": "loss", "cr.use": "cr"}
    assert short_keys(["generator.norm", "discriminator.norm"],
                      [{"generator.norm": "batch", "discriminator.norm": "none"}]) == {
        "generator.norm": "G.norm", "discriminator.norm": "D.norm"}
    lrs = ["optimizer.generator.lr", "optimizer.discriminator.lr"]
    assert short_keys(lrs, [{p: 0.001 for p in lrs}, {p: 0.0002 for p in lrs}]) == {
        p: "lr" for p in lrs}  # zipped to the same values: one key says it all


def test_display_names_of_the_issue_ids_and_named_variants(plugins, tiny_recipe: Path,
                                                            tmp_path: Path) -> None:
    plan = _plan(plugins, tiny_recipe, tmp_path, """
[sweep]
[sweep.axes]
"loss.use" = ["bce", "hinge"]
[sweep.variants.no_bn]
"generator.batchnorm" = false
""")
    assert sorted(display_names(plan).values()) == [
        "base loss=bce", "base loss=hinge", "no_bn loss=bce", "no_bn loss=hinge"]
    assert crossed_axes(plan) == {"variant": ["base", "no_bn"], "loss.use": ["bce", "hinge"]}
    overrides = {"loss.use": "condmlp-soft_hinge", "cr.use": "condmlp-consistency"}
    run = PlannedRun("loss.use=condmlp-soft_hinge_cr.use=condmlp-consistency", 0, overrides,
                     plan.base, tmp_path / "x")
    fake = SweepPlan(plan.source, plan.out, plan.params, plan.base, [run],
                     {"loss.use": ["condmlp-soft_hinge"], "cr.use": ["condmlp-consistency"]})
    assert display_names(fake) == {run.variant: "loss=condmlp-soft_hinge cr=condmlp-consistency"}


def test_metric_grid_means_and_stds_of_known_numbers() -> None:
    coordinates = {"a": {"loss": "bce", "norm": "batch", "pen": "none"},
                   "b": {"loss": "bce", "norm": "none", "pen": "none"},
                   "c": {"loss": "hinge", "norm": "batch", "pen": "none"},
                   "d": {"loss": "bce", "norm": "batch", "pen": "gp"}}
    values = {"a": [1.0, 3.0], "b": [5.0], "c": [2.0, 4.0, 6.0], "d": [100.0]}
    grid = metric_grid(coordinates, values, "norm", "loss", ["batch", "none"],
                       ["bce", "hinge"], {"pen": "none"})
    assert grid.mean == [[2.0, 4.0], [5.0, None]]
    assert grid.std[0] == [pytest.approx(2 ** 0.5), pytest.approx(2.0)]
    assert grid.std[1] == [0.0, None]
    assert grid.count == [[2, 3], [1, 0]]
    assert cell_text(2.0, 2 ** 0.5, 2, 3) == "2\n± 1.4\nn=2"
    assert cell_text(None, None, 0, 3) == "-"
    axes = {"loss": ["bce", "hinge"], "norm": ["batch", "spectral", "layer", "none"],
            "pen": ["none", "gp"], "aug": ["off", "on"]}
    assert layout(axes) == ("norm", "loss", ["pen", "aug"])
    assert facets(axes, ["pen", "aug"]) == [
        [{"pen": "none", "aug": "off"}, {"pen": "gp", "aug": "off"}],
        [{"pen": "none", "aug": "on"}, {"pen": "gp", "aug": "on"}]]


def test_heatmap_written_with_the_grid_of_the_sweep(plugins, tiny_recipe: Path,
                                                    tmp_path: Path) -> None:
    plan = _plan(plugins, tiny_recipe, tmp_path)
    _fake_runs(plan, skip=("loss.use=hinge_norm=none_penalty.use=none", 1))
    written = heatmap_plots(plan, plan.out)
    assert written == [plan.out / "heatmap-fid.png"]
    with Image.open(written[0]) as image:
        assert image.width > 400 and image.height > 200
    from ganforge.sweep.heatmap import final_values

    fig = heatmap_figure(plan, "fid", final_values(plan)["fid"])
    assert fig is not None
    panels = [ax for ax in fig.axes if ax.images]  # the colour bar has no image
    assert len(panels) == 2  # one per penalty: norm (4) down, loss (2) across
    assert [ax.get_title() for ax in panels] == ["penalty=none", "penalty=gradient_penalty"]
    assert panels[0].get_ylabel() == "norm" and panels[0].get_xlabel() == "loss"
    data = panels[0].images[0].get_array()
    assert data.shape == (4, 2)
    # norm 'layer' (row 2) with hinge (column 1): 10 + 2 and 2 more for seed 1 -> 13 ± 1.41
    assert data[2, 1] == pytest.approx(13.0)
    assert data[3, 1] == pytest.approx(13.0)  # hinge/none: only seed 0 finished
    texts = [t.get_text() for t in panels[0].texts]
    assert "13\n± 1.4" in texts and "13\n± 0\nn=1" in texts
    assert panels[1].images[0].get_array()[0, 0] == pytest.approx(101.0)
    import matplotlib.pyplot as plt

    plt.close(fig)
    # summary.md names the variants by their display names
    collect(plan, plugins.registry)
    table = (plan.out / "summary.md").read_text().splitlines()
    assert table[2].startswith("| loss=bce norm=batch penalty=none | 2 | 1 ± 1.4 |")


def test_no_heatmap_for_one_axis_or_zipped_axes(plugins, tiny_recipe: Path,
                                                tmp_path: Path) -> None:
    one = _plan(plugins, tiny_recipe, tmp_path, '[sweep]\n[sweep.axes]\n"loss.use" = '
                                                '["bce", "hinge"]\n')
    assert crossed_axes(one) == {} and heatmap_plots(one, tmp_path) == []
    zipped = _plan(plugins, tiny_recipe, tmp_path, """
[sweep]
mode = "zip"
[sweep.axes]
"loss.use" = ["bce", "hinge"]
"discriminator.norm" = ["batch", "none"]
""")
    assert crossed_axes(zipped) == {}


def test_sixteen_variants_get_distinct_colours_and_more_distinct_styles() -> None:
    colours = [c for c, _ in variant_styles(16)]
    assert len(set(colours)) == 16
    assert len(set(variant_styles(8))) == 8
    many = variant_styles(30)
    assert len(set(many)) == 30 and len({c for c, _ in many}) == 30


def test_curves_legend_lies_outside_every_panel(plugins, tiny_recipe: Path,
                                                tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    plan = _plan(plugins, tiny_recipe, tmp_path)
    _fake_runs(plan)
    fig = curves_figure(plan)
    fig.canvas.draw()
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == 16 and "loss=bce norm=batch penalty=none" in labels
    to_figure = fig.transFigure.inverted()
    box = legend.get_window_extent().transformed(to_figure)
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= 1 and box.y1 <= 1  # on the figure
    assert len(fig.axes) == 3  # fid, loss_g, loss_d
    for ax in fig.axes:
        panel = ax.get_window_extent().transformed(to_figure)
        assert not box.overlaps(panel), ax.get_title()
        assert box.y1 <= panel.y0
    colours = {line.get_color() if isinstance(line.get_color(), str) else
               tuple(line.get_color()) for line in fig.axes[0].get_lines()}
    assert len(colours) == 16
    plt.close(fig)


def test_labels_wrap_to_fit_and_keep_every_character() -> None:
    font = ImageFont.load_default()
    text = "loss=condmlp-soft_hinge cr=condmlp-consistency norm=spectral (step 300)"
    lines = wrap_label(text, 90, font.getlength)
    assert len(lines) > 1
    assert all(font.getlength(line) <= 90 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    long_word = "loss.use=condmlp-soft_hinge_cr.use=condmlp-consistency"
    lines = wrap_label(long_word, 60, font.getlength)
    assert all(font.getlength(line) <= 60 for line in lines) and "".join(lines) == long_word
    assert wrap_label("short", 200, font.getlength) == ["short"]


def test_samples_sheet_grows_the_label_band(plugins, tiny_recipe: Path,
                                            tmp_path: Path) -> None:
    plan = _plan(plugins, tiny_recipe, tmp_path)
    _fake_runs(plan)
    sheet = samples_sheet(plan, plan.out / "samples.png", columns=4, min_width=60)
    assert sheet is not None
    with Image.open(sheet) as image:
        # 4 rows of tiles, each 34 px of samples under a label of several lines
        assert image.width == 4 * (60 + 8) + 8
        assert image.height > 4 * (34 + 8 + 3 * 10)
