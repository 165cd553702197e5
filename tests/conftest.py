"""Shared fixtures: plugins, tiny recipes, and fake installed plugin distributions."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ganforge import load_plugins
from ganforge.plugins import Plugins

TINY_RECIPE = """
[run]
steps = 6
batch_size = 8
seed = 0
device = "cpu"
log_every = 2
sample_every = 3
checkpoint_every = 3
keep_last = 5
sample_count = 4

[dataset]
use = "synthetic"
count = 40
image_size = 32
channels = 3

[generator]
use = "dcgan"
latent_dim = 8
width = 4

[discriminator]
use = "dcgan"
width = 4
"""


@pytest.fixture(scope="session")
def _shared_classifier_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the fitted digit classifier, shared by every test of the session:
    it is a pure function of its key (fitted once, a few seconds, by the first test that
    needs it; processes the tests start read it too)."""
    return tmp_path_factory.mktemp("digit_classifier")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
               _shared_classifier_cache: Path) -> None:
    """Tests start with no plugin switches from the developer's shell, and a cache
    directory of their own (never the user's ~/.cache/ganforge) whose
    ``digit_classifier`` folder is the session's."""
    monkeypatch.delenv("GANFORGE_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("GANFORGE_DISABLE_PLUGINS", raising=False)
    cache = tmp_path_factory.mktemp("cache")
    (cache / "digit_classifier").symlink_to(_shared_classifier_cache, target_is_directory=True)
    monkeypatch.setenv("GANFORGE_CACHE_DIR", str(cache))


@pytest.fixture
def plugins() -> Plugins:
    return load_plugins()


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A recipe that trains in well under a second on a CPU."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE, encoding="utf-8")
    return path


QUICKSTART = Path(__file__).parent.parent / "recipes" / "quickstart.toml"
QUICKSTART_STEPS = 500


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's quickstart (its default speed switches), shortened to 500 steps, trained
    once per test session through the CLI (about 22 s on 2 cores). Returns the run
    directory; the checkpoint is checkpoints/step-0000500.safetensors."""
    from typer.testing import CliRunner

    from ganforge.cli import app

    out = tmp_path_factory.mktemp("quickstart") / "run"
    result = CliRunner().invoke(app, [
        "run", str(QUICKSTART), "--out", str(out), "--quiet",
        "--set", f"run.steps={QUICKSTART_STEPS}", "--set", "run.sample_every=100",
        "--set", f"run.checkpoint_every={QUICKSTART_STEPS}", "--set", "run.device=cpu"])
    assert result.exit_code == 0, result.output
    return out


CONDITIONAL_QUICKSTART = QUICKSTART.parent / "quickstart_conditional.toml"
CONDITIONAL_STEPS = 300


@pytest.fixture(scope="session")
def conditional_quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``recipes/quickstart_conditional.toml`` shortened to 300 steps, trained once per test
    session through the CLI (class_accuracy 0.94, worst class 0.82 measured at 300). The
    checkpoint is checkpoints/step-0000300.safetensors."""
    from typer.testing import CliRunner

    from ganforge.cli import app

    out = tmp_path_factory.mktemp("quickstart_conditional") / "run"
    result = CliRunner().invoke(app, [
        "run", str(CONDITIONAL_QUICKSTART), "--out", str(out), "--quiet",
        "--set", f"run.steps={CONDITIONAL_STEPS}", "--set", "run.sample_every=150",
        "--set", f"run.checkpoint_every={CONDITIONAL_STEPS}", "--set", "run.device=cpu"])
    assert result.exit_code == 0, result.output
    return out


FakeDist = Callable[..., Path]


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDist:
    """Install a throw-away distribution with a ``ganforge`` entry point on ``sys.path``.

    ``fake_dist("ganforge-broken", "broken_plugin", "raise ImportError('boom')")`` makes
    ``importlib.metadata`` find entry point ``broken = broken_plugin`` exactly as it finds
    a pip-installed plugin.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    created: list[str] = []

    def make(dist: str, module: str, source: str, entry: str | None = None) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n",
                                       encoding="utf-8")
        name = entry or module.removesuffix("_plugin")
        (info / "entry_points.txt").write_text(f"[ganforge]\n{name} = {module}\n",
                                               encoding="utf-8")
        created.append(module)
        importlib.invalidate_caches()
        return site

    yield make
    for module in created:
        sys.modules.pop(module, None)


def one_error_line(result: object, *pieces: str) -> str:
    """Exit 2 and one ``error:`` line holding every piece, no "internal error" (a CLI
    result from ``CliRunner().invoke``)."""
    output: str = result.output  # type: ignore[attr-defined]
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "internal error" not in lines[0] and "Traceback" not in output
    for piece in pieces:
        assert piece in lines[0], lines[0]
    return lines[0]
