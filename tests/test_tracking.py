"""The tracking observers (``ganforge[wandb]``, ``ganforge[mlflow]``), offline: W&B in
offline mode, read back from its ``.wandb`` file; MLflow with a file store in the run
directory, read back with ``MlflowClient``. Off by default, one line when the library is
missing, a failing tracker never stops the run, a resumed run continues the same tracked
run."""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ganforge
from ganforge import load_plugins
from ganforge.errors import PluginError
from ganforge.plugins import Plugins
from ganforge.recipe import load_recipe
from ganforge.training import train

from .conftest import TINY_RECIPE


@pytest.fixture(autouse=True)
def _tracking_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no login, no file outside tmp_path, nothing left in os.environ."""
    for name in ("CACHE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / f"wandb-{name.lower()}"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # The MLflow observer opts into MLflow's file store in os.environ itself: set, then
    # delete, so that monkeypatch removes what the observer sets when the test ends.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")


def run(plugins: Plugins, tmp_path: Path, tables: str, out: str = "run", *overrides: str,
        resume: bool = False) -> Any:
    path = tmp_path / "recipe.toml"
    path.write_text(TINY_RECIPE + tables, encoding="utf-8")
    recipe = load_recipe(path, plugins.registry, overrides)
    return train(recipe, plugins, tmp_path / out, resume=resume, progress=False)


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: plugin")]


def test_both_observers_are_plugins_of_ganforge(plugins: Plugins) -> None:
    records = {r.name: r for r in plugins.records}
    for name in ("wandb", "mlflow"):
        assert (records[name].distribution, records[name].status) == ("ganforge", "loaded")
        assert name in plugins.registry.settings


def test_off_unless_enabled_and_the_libraries_are_never_imported(
        plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for module in ("wandb", "mlflow", "mlflow.tracking"):  # importing them would now fail
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    run(plugins, tmp_path, "", "plain")
    run(plugins, tmp_path, '[plugins.wandb]\nproject = "p"\n[plugins.mlflow]\n'
                           'experiment = "e"\n', "tables")
    run(plugins, tmp_path, '[plugins.wandb]\nenabled = true\nmode = "disabled"\n', "off")
    assert not warnings_of(capsys.readouterr().err)
    assert all(r.status == "loaded" for r in plugins.records)
    for out in ("plain", "tables", "off"):
        left = {p.name for p in (tmp_path / out).iterdir()}
        assert not left & {"wandb", "mlruns", "wandb_run_id", "mlflow_run_id"}, left
    assert not (tmp_path / "wandb-dir").exists()


def test_a_missing_library_is_one_line_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for module in ("wandb", "mlflow", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, module, None)
    tables = '[plugins.wandb]\nenabled = true\n[plugins.mlflow]\nenabled = true\n'
    plugins = load_plugins()
    result = run(plugins, tmp_path, tables)
    assert result.step == 6 and result.checkpoint is not None  # observers never stop a run
    lines = warnings_of(capsys.readouterr().err)
    assert len(lines) == 2, lines
    for name in ("wandb", "mlflow"):
        [line] = [x for x in lines if x.startswith(f"warning: plugin '{name}'")]
        assert f'pip install "ganforge[{name}]"' in line
        assert "raised in ganforge_run_started" in line
        assert next(r for r in plugins.records if r.name == name).status == "failed"
    # With GANFORGE_STRICT_PLUGINS=1 the run is refused before its first step.
    strict = load_plugins(strict=True)
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r'pip install "ganforge\[wandb\]"') as info:
        run(strict, tmp_path, tables, "strict")
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "strict" / "checkpoints").glob("*.safetensors"))


# -- MLflow -------------------------------------------------------------------------------

def test_the_recipe_as_flat_parameters() -> None:
    from ganforge.tracking._common import flat_params
    from ganforge.tracking.mlflow_observer import _value

    assert flat_params({"g": {"width": 4, "betas": [0.5, 0.999], "use": "dcgan"},
                        "on": True}) == {"g.width": "4", "g.betas": "[0.5, 0.999]",
                                         "g.use": "dcgan", "on": "true"}
    assert _value("x" * 500) == "x" * 500
    assert _value("x" * 501) == "(501 characters: see the artifact recipe.toml)"


def mlflow_client(out: Path) -> tuple[Any, str]:
    from mlflow.tracking import MlflowClient

    return (MlflowClient(tracking_uri=(out / "mlruns").as_uri()),
            (out / "mlflow_run_id").read_text().strip())


def artifact_paths(client: Any, run_id: str, folder: str | None = None) -> list[str]:
    return sorted(f.path for f in client.list_artifacts(run_id, folder))


def test_mlflow_logs_scalars_samples_recipe_and_resumes_the_same_run(
        plugins: Plugins, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(plugins, tmp_path, '[plugins.mlflow]\nenabled = true\n')
    client, run_id = mlflow_client(out)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert client.get_experiment(logged.info.experiment_id).name == "ganforge"
    assert logged.data.tags["ganforge.run_dir"] == str(out.resolve())
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run_id, "loss_d")
    assert [(m.step, m.value) for m in history] == [(x["step"], x["loss_d"]) for x in lines]
    assert [m.step for m in history] == [2, 4, 6]
    assert {"loss_g", "images_per_s"} <= set(logged.data.metrics)
    params = logged.data.params
    assert (params["run.steps"], params["generator.width"], params["generator.use"]) == (
        "6", "4", "dcgan:dcgan")
    assert params["plugins.mlflow.enabled"] == "true"
    assert artifact_paths(client, run_id) == ["recipe.toml", "samples"]
    assert artifact_paths(client, run_id, "samples") == [
        "samples/step-0000003.png", "samples/step-0000006.png"]
    recipe = Path(client.download_artifacts(run_id, "recipe.toml", str(tmp_path / "dl")))
    assert recipe.read_text() == (out / "recipe.toml").read_text()

    # Resumed three steps further (a resumed run keeps its [plugins] tables): the same
    # MLflow run.
    run(plugins, tmp_path, '[plugins.mlflow]\nenabled = true\n', "run", "run.steps=9",
        resume=True)
    assert mlflow_client(out)[1] == run_id
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "loss_d")] == [2, 4, 6, 8, 9]
    assert resumed.data.params["run.steps"] == "6"  # MLflow params never change ...
    assert "steps = 9" in Path(client.download_artifacts(  # ... the recipe artifact does
        run_id, "recipe.toml", str(tmp_path / "dl2"))).read_text()
    assert artifact_paths(client, run_id, "samples")[-1] == "samples/step-0000009.png"
    assert "checkpoints" not in artifact_paths(client, run_id)  # only when asked
    assert len(client.search_runs([logged.info.experiment_id])) == 1


def test_tracking_turned_on_at_resume_logs_checkpoints_when_asked(
        plugins: Plugins, tmp_path: Path) -> None:
    """A run trained without tracking is resumed with MLflow on and log_checkpoints: the
    resume is allowed (the table does not change what the run computes), and the
    checkpoints written from then on are artifacts, byte for byte."""
    out = tmp_path / "run"
    run(plugins, tmp_path, "")
    assert not (out / "mlruns").exists()
    run(plugins, tmp_path, '[plugins.mlflow]\nenabled = true\nlog_checkpoints = true\n',
        "run", "run.steps=9", resume=True)
    client, run_id = mlflow_client(out)
    assert artifact_paths(client, run_id, "checkpoints") == ["checkpoints/step-0000009.safetensors"]
    uploaded = Path(client.download_artifacts(run_id, "checkpoints/step-0000009.safetensors",
                                              str(tmp_path / "dl")))
    assert uploaded.read_bytes() == (out / "checkpoints" / "step-0000009.safetensors").read_bytes()


def test_a_failing_tracker_is_disabled_and_the_run_goes_on(
        plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    log_batch = MlflowClient.log_batch

    def full_disk(client: Any, run_id: str, metrics: Any = (), **kwargs: Any) -> None:
        if metrics:
            raise OSError("no space left on device")
        log_batch(client, run_id, metrics, **kwargs)  # the parameters at run start pass

    monkeypatch.setattr(MlflowClient, "log_batch", full_disk)
    result = run(plugins, tmp_path, '[plugins.mlflow]\nenabled = true\n')
    assert result.step == 6 and not result.interrupted
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step-0000003.safetensors", "step-0000006.safetensors"]
    [line] = warnings_of(capsys.readouterr().err)
    assert line == (f"warning: plugin 'mlflow' (ganforge {ganforge.__version__}) raised in "
                    "ganforge_log: "
                    "OSError: no space left on device; the plugin is disabled for the rest "
                    "of this run")
    client, run_id = mlflow_client(tmp_path / "run")
    # Disabled at its first metrics (step 2): no sample grid (steps 3, 6) is logged after.
    assert artifact_paths(client, run_id) == ["recipe.toml"]
    assert "run.steps" in client.get_run(run_id).data.params


# -- Weights & Biases ------------------------------------------------------------------------

def wandb_records(path: Path) -> Iterator[Any]:
    """The records of an offline run's ``.wandb`` file (what ``wandb sync`` uploads): a
    7-byte header, then LevelDB-log blocks of 32 KiB whose chunks (a 7-byte header each:
    CRC, length, type FULL/FIRST/MIDDLE/LAST) hold serialized ``Record`` protobufs."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 0:
            position += left - 7 - length
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def nested(items: Any) -> dict[str, Any]:
    """History, summary or config items (``key`` or ``nested_key`` + ``value_json``)."""
    result: dict[str, Any] = {}
    for item in items:
        keys = list(item.nested_key) or [item.key]
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json)
    return result


def read_offline_run(folder: Path) -> dict[str, Any]:
    """What one offline W&B run recorded: run, config, history rows, artifacts, exit."""
    [path] = folder.glob("run-*.wandb")
    found: dict[str, Any] = {"config": {}, "history": [], "artifacts": [], "exit": None,
                             "kinds": []}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        found["kinds"].append(kind)
        if kind == "run":
            found["run"] = record.run
            found["config"].update(nested(record.run.config.update))
        elif kind == "config":
            found["config"].update(nested(record.config.update))
        elif kind == "history":
            found["history"].append(nested(record.history.item))
        elif kind == "artifact":
            found["artifacts"].append(record.artifact)
        elif kind == "exit":
            found["exit"] = record.exit
    return found


@pytest.fixture
def wandb_teardown() -> Iterator[None]:
    """No W&B service process outlives the test."""
    yield
    import wandb

    wandb.teardown()


def test_wandb_offline_logs_and_resumes_the_same_run(plugins: Plugins, tmp_path: Path,
                                                    wandb_teardown: None) -> None:
    import wandb

    out = tmp_path / "run"
    tables = ('[plugins.wandb]\nenabled = true\nproject = "tiny"\ntags = ["t1"]\n'
              'log_checkpoints = true\n')
    run(plugins, tmp_path, tables)
    wandb.teardown()  # waits for W&B's service to write out the run (finish() may not)
    run_id = (out / "wandb_run_id").read_text().strip()
    [folder] = (out / "wandb").glob(f"offline-run-*-{run_id}*")  # W&B's files: in the run
    first = read_offline_run(folder)
    assert (first["run"].run_id, first["run"].project, first["run"].display_name) == (
        run_id, "tiny", "run")
    assert list(first["run"].tags) == ["t1"]
    assert first["exit"] is not None  # finished
    config = first["config"]
    assert config["run"]["steps"] == 6 and config["generator"]["width"] == 4
    assert config["plugins"]["wandb"]["log_checkpoints"] is True

    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    scalars = [(r["_step"], r["loss_d"]) for r in first["history"] if "loss_d" in r]
    assert scalars == [(x["step"], x["loss_d"]) for x in lines]  # steps 2, 4, 6
    images = [(r["_step"], r["samples"]) for r in first["history"] if "samples" in r]
    assert [step for step, _ in images] == [3, 6]
    for _, image in images:
        assert image["_type"] == "image-file"
        assert (folder / "files" / image["path"]).is_file()

    by_type = {a.type: a for a in first["artifacts"]}
    recipe = by_type["recipe"]
    assert recipe.name == f"recipe-{run_id}"
    [content] = recipe.manifest.contents
    assert content.path == "recipe.toml"
    assert Path(content.local_path).read_text() == (out / "recipe.toml").read_text()
    checkpoints = [a for a in first["artifacts"] if a.type == "model"]
    assert [(a.name, [c.path for c in a.manifest.contents]) for a in checkpoints] == [
        (f"checkpoints-{run_id}", ["step-0000003.safetensors"]),
        (f"checkpoints-{run_id}", ["step-0000006.safetensors"])]
    assert "step-0000003" in checkpoints[0].aliases

    # Resumed three steps further: the same W&B run id, continued.
    run(plugins, tmp_path, tables, "run", "run.steps=9", resume=True)
    wandb.teardown()
    assert (out / "wandb_run_id").read_text().strip() == run_id
    [second_folder] = set((out / "wandb").glob(f"offline-run-*-{run_id}*")) - {folder}
    second = read_offline_run(second_folder)
    assert second["run"].run_id == run_id and second["run"].resume
    assert [r["_step"] for r in second["history"] if "loss_d" in r] == [8, 9]
    assert [r["_step"] for r in second["history"] if "samples" in r] == [9]
    assert [(a.type, [c.path for c in a.manifest.contents]) for a in second["artifacts"]] == [
        ("recipe", ["recipe.toml"]), ("model", ["step-0000009.safetensors"])]
    assert second["config"]["run"]["steps"] == 9


def test_a_resumed_run_may_turn_tracking_on_but_not_change_training_settings() -> None:
    """Tracker tables (settings with ``affects_training = False``) are not differences
    that refuse a resume; another plugin's settings table still is."""
    import attrs

    from ganforge import load_plugins
    from ganforge.training.resume import recipe_differences

    registry = load_plugins().registry

    @attrs.frozen
    class Trains:
        """Settings that change what a run computes."""

        factor: float = 1.0

    registry.settings["trains"] = Trains
    saved = {"plugins": {"wandb": {"enabled": False}, "trains": {"factor": 1.0}}}
    current = {"plugins": {"wandb": {"enabled": True, "mode": "offline"},
                           "mlflow": {"enabled": True}, "trains": {"factor": 1.0}}}
    assert recipe_differences(saved, current, registry) == []
    current["plugins"]["trains"] = {"factor": 2.0}
    assert recipe_differences(saved, current, registry) == ["plugins.trains"]
    # without a registry nothing is known about the tables: every difference counts
    assert recipe_differences(saved, current) == ["plugins.mlflow", "plugins.trains",
                                                  "plugins.wandb"]
