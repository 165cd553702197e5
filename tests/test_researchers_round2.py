"""Issue 26, round two (researchers): truncated sampling, scores over evaluation seeds,
scoring saved images, eval scores on the model card, and the conditional-loss message."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from ganforge.cli import app
from ganforge.errors import UsageError
from tests.conftest import TINY_RECIPE


def _cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _objects(text: str) -> list[dict]:
    """The JSON objects printed one after another."""
    objects, decoder, text = [], json.JSONDecoder(), text.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        objects.append(obj)
        text = text[end:].strip()
    return objects


def _train(folder: Path, *sets: str) -> Path:
    from ganforge import load_plugins
    from ganforge.recipe import load_recipe
    from ganforge.training import train

    recipe_path = folder / "tiny.toml"
    recipe_path.write_text(TINY_RECIPE)
    plugins = load_plugins()
    recipe = load_recipe(recipe_path, plugins.registry, ["run.steps=2", *sets])
    return train(recipe, plugins, folder / "run", progress=False).checkpoint


@pytest.fixture(scope="module")
def normal_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("normal"), 'generator.prior="normal"')


@pytest.fixture(scope="module")
def uniform_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("uniform"))


# -- 13: the truncation trick --------------------------------------------------------------

def test_truncated_latents_stay_within_the_threshold_and_follow_the_seed(
        normal_checkpoint: Path) -> None:
    from ganforge import load_plugins
    from ganforge.sampling import truncated_latent
    from ganforge.training import load_experiment

    generator = load_experiment(normal_checkpoint, load_plugins().registry, "cpu").generator
    assert generator is not None
    z = truncated_latent(generator, 500, torch.Generator().manual_seed(3), 0.5)
    assert z.shape == (500, 8) and z.abs().max() <= 0.5
    # a truncated normal, not a squashed one: the mass spreads over the whole interval
    assert (z.abs() > 0.4).float().mean() > 0.1 and (z.abs() < 0.1).float().mean() > 0.1
    again = truncated_latent(generator, 500, torch.Generator().manual_seed(3), 0.5)
    assert torch.equal(z, again)
    with pytest.raises(UsageError, match="above 0"):
        truncated_latent(generator, 4, torch.Generator(), 0.0)


def test_sample_truncation_writes_a_grid_and_differs_from_untruncated(
        normal_checkpoint: Path, tmp_path: Path) -> None:
    plain, cut = tmp_path / "plain.png", tmp_path / "cut.png"
    assert _cli("sample", normal_checkpoint, "--n", "4", "--out", plain).exit_code == 0
    result = _cli("sample", normal_checkpoint, "--n", "4", "--out", cut, "--truncation", "0.3")
    assert result.exit_code == 0, result.output
    with Image.open(plain) as a, Image.open(cut) as b:
        assert a.size == b.size and a.tobytes() != b.tobytes()


def test_sample_truncation_is_refused_for_a_uniform_prior(uniform_checkpoint: Path,
                                                           tmp_path: Path) -> None:
    result = _cli("sample", uniform_checkpoint, "--out", tmp_path / "s.png",
                  "--truncation", "0.5")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'uniform'" in lines[0] and "--truncation" in lines[0]
    assert not (tmp_path / "s.png").exists()
    bad = _cli("sample", uniform_checkpoint, "--out", tmp_path / "s.png", "--truncation", "-1")
    assert bad.exit_code == 2 and "above 0" in bad.output


# -- 11: eval scores on the model card; the missing plugin's message -----------------------

def test_missing_plugin_message_names_the_checkpoint_once(tmp_path: Path) -> None:
    import tomllib

    from ganforge import load_plugins
    from ganforge.errors import CheckpointError
    from ganforge.training.assembly import embedded_recipe

    table = tomllib.loads(TINY_RECIPE.replace('use = "dcgan"\nlatent', 'use = "foo:gen"\nlatent'))
    path = tmp_path / "step-1.safetensors"
    with pytest.raises(CheckpointError) as caught:
        embedded_recipe(path, table, load_plugins().registry, {"plugin:foo": "ganforge-foo 1.0"})
    message = str(caught.value)
    assert message.count(str(path)) == 1, message
    assert "no plugin 'foo'" in message and "pip install ganforge-foo==1.0" in message


def test_eval_scores_appear_on_the_exported_model_card(tmp_path: Path) -> None:
    checkpoint = _train(tmp_path)
    before = _cli("export", checkpoint, "--out", tmp_path / "before", "--device", "cpu")
    assert before.exit_code == 0, before.output
    assert "No scores recorded" in (tmp_path / "before" / "README.md").read_text()
    result = _cli("eval", checkpoint, "-m", "fid", "--extractor", "pixels", "--n", "20",
                  "--n-real", "30", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    fid = _objects(result.stdout)[0]["value"]
    beside = checkpoint.with_name(checkpoint.name + ".evaluations.jsonl")
    assert json.loads(beside.read_text().splitlines()[0])["value"] == fid
    after = _cli("export", checkpoint, "--out", tmp_path / "after", "--device", "cpu")
    assert after.exit_code == 0, after.output
    card = (tmp_path / "after" / "README.md").read_text()
    assert "No scores recorded" not in card
    row = next(line for line in card.splitlines() if line.startswith("| fid"))
    assert f"{fid:.4f}" in row and "n_fake=20" in row and beside.name in row


# -- 10: a loss without label keywords on a conditional D ----------------------------------

class _UnlabelledLoss:
    """A loss written before labels existed."""

    needs_labels = False
    reads_class_logits = False

    @attrs.frozen
    class Params:
        """None."""

    def __init__(self, params=None) -> None:
        self.params = params

    def discriminator_loss(self, discriminator, real, fake):
        return F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()

    def generator_loss(self, discriminator, fake):
        return F.softplus(-discriminator(fake)).mean()


class _WrongKeywordLoss(_UnlabelledLoss):
    """Meant to take labels, under a name the trainer never passes."""

    def discriminator_loss(self, discriminator, real, fake, labels=None):
        return super().discriminator_loss(discriminator, real, fake)

    def generator_loss(self, discriminator, fake, labels=None):
        return super().generator_loss(discriminator, fake)


def _loss_registry():
    import types

    from ganforge import hookimpl
    from ganforge.interfaces import Loss
    from ganforge.testing import plugin_registry

    plugin = types.ModuleType("round2_losses")

    @hookimpl
    def ganforge_register(registry):
        registry.register("loss", "unlabelled", type("Unlabelled", (_UnlabelledLoss, Loss), {}))
        registry.register("loss", "wrong_keyword",
                          type("WrongKeyword", (_WrongKeywordLoss, Loss), {}))

    plugin.ganforge_register = ganforge_register  # type: ignore[attr-defined]
    return plugin_registry("round2", plugin)


def test_conditional_d_refuses_an_unlabelled_loss_saying_what_to_add(tmp_path: Path) -> None:
    from ganforge.recipe import load_recipe
    from ganforge.training import assemble

    registry = _loss_registry()
    text = TINY_RECIPE.replace('use = "synthetic"\ncount = 40\nimage_size = 32\nchannels = 3',
                               'use = "synthetic"\ncount = 40\nimage_size = 32\nchannels = 3\n'
                               "classes = 3") + "conditional = true\n"
    path = tmp_path / "r.toml"
    path.write_text(text + '\n[loss]\nuse = "round2:unlabelled"\n')
    with pytest.raises(UsageError) as caught:
        assemble(load_recipe(path, registry), registry, "cpu")
    message = str(caught.value)
    assert "\n" not in message and "does not take labels" in message
    assert "real_labels=None, fake_labels=None" in message and "fake_labels=None`" in message


def test_kit_fails_a_loss_whose_label_keywords_the_trainer_never_passes() -> None:
    from ganforge.testing import check_component

    registry = _loss_registry()
    with pytest.raises(AssertionError) as caught:
        check_component("loss", "round2:wrong_keyword", registry=registry, train=False)
    message = str(caught.value)
    assert "loss 'round2:wrong_keyword' [labels]:" in message
    assert "discriminator_loss(real_labels)" in message and "generator_loss(fake_labels)" in message
    # a loss written before labels existed still passes, its skip saying how to add them
    report = check_component("loss", "round2:unlabelled", registry=registry, train=False)
    assert "real_labels/fake_labels" in report.skipped["labels"]


# -- 13b: scores as mean ± std over evaluation seeds ---------------------------------------

def test_eval_seeds_reports_mean_and_sample_std_with_each_seed(uniform_checkpoint: Path
                                                               ) -> None:
    import statistics

    common = ["-m", "fid", "-m", "kid", "--extractor", "pixels", "--n", "20", "--n-real", "30",
              "--device", "cpu", "--json"]
    single = _cli("eval", uniform_checkpoint, *common)  # the metric's default seed, 0
    assert single.exit_code == 0, single.output
    result = _cli("eval", uniform_checkpoint, *common, "--seeds", "0,1,2")
    assert result.exit_code == 0, result.output
    fid, kid = _objects(result.stdout)
    assert fid["metric"] == "fid" and kid["metric"] == "kid" and fid["seeds"] == [0, 1, 2]
    values = [s["value"] for s in fid["per_seed"]]
    assert [s["protocol"]["seed"] for s in fid["per_seed"]] == [0, 1, 2]
    assert len(set(values)) == 3 and values[0] == pytest.approx(_objects(single.stdout)[0]["value"])
    assert fid["value"] == pytest.approx(statistics.fmean(values))
    assert fid["std"] == pytest.approx(statistics.stdev(values))
    text = _cli("eval", uniform_checkpoint, *common[:-1], "--seeds", "0,1")
    assert text.exit_code == 0 and "±" in text.stdout
    for bad in ("0", "0,x", "1,1"):
        refused = _cli("eval", uniform_checkpoint, *common, "--seeds", bad)
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1


# -- 12: saved images (a folder or an .npz) read for scoring -------------------------------

def test_image_sets_read_folders_and_npz_alike_and_refuse_other_content(tmp_path: Path
                                                                        ) -> None:
    import numpy as np

    from ganforge.evaluation.image_sets import image_set_features, load_image_set

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    (folder / "notes.txt").write_text("not an image")
    np.savez(tmp_path / "nhwc.npz", arr_0=pixels)
    np.savez(tmp_path / "nchw.npz", images=pixels.transpose(0, 3, 1, 2))
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    for source in (folder, tmp_path / "nhwc.npz", tmp_path / "nchw.npz"):
        assert torch.equal(load_image_set(source), expected), source
    assert len(load_image_set(folder, limit=3)) == 3
    seen = []
    features = image_set_features(expected, lambda x: (seen.append(x) or x.flatten(1), None),
                                  4, 3)
    assert features.features.shape == (4, 192) and [len(b) for b in seen] == [3, 1]
    assert seen[0].min() >= -1 and seen[0].max() <= 1
    np.savez(tmp_path / "float.npz", arr_0=pixels.astype(np.float32))
    np.savez(tmp_path / "other.npz", x=pixels)
    np.savez(tmp_path / "flat.npz", arr_0=pixels.reshape(5, -1))
    for bad, said in (("float.npz", "float32"), ("other.npz", "arr_0 or images"),
                      ("flat.npz", "shape")):
        with pytest.raises(UsageError, match=said) as caught:
            load_image_set(tmp_path / bad)
        assert "\n" not in str(caught.value)


def test_rotation_removes_the_scores_recorded_beside_a_checkpoint(tmp_path) -> None:
    """Checkpoints rotated away take their ``.evaluations.jsonl`` with them; a kept one keeps
    its own."""
    from ganforge.training.checkpoint_format import EVALUATIONS_SUFFIX, rotate

    for step in (1, 2, 3):
        (tmp_path / f"step-{step:07d}.safetensors").write_bytes(b"x")
        (tmp_path / f"step-{step:07d}.safetensors{EVALUATIONS_SUFFIX}").write_text("{}\n")
    rotate(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-0000003.safetensors", f"step-0000003.safetensors{EVALUATIONS_SUFFIX}"]
