"""Plugin discovery through entry points, and what happens when a plugin misbehaves."""

from __future__ import annotations

import pytest

from ganforge import load_plugins
from ganforge.errors import PluginError

GOOD = """
import attrs
from ganforge import Loss, hookimpl

class ZeroLoss(Loss):
    '''Always zero.'''
    @attrs.frozen
    class Params:
        pass
    def discriminator_loss(self, d, real, fake):
        return d(real).sum() * 0
    def generator_loss(self, d, fake):
        return d(fake).sum() * 0

@hookimpl
def ganforge_register(registry):
    registry.register("loss", "zero", ZeroLoss)
"""


def _record(plugins, name):
    return next(r for r in plugins.records if r.name == name)


def test_builtins_and_dcgan_come_through_the_same_hook(plugins) -> None:
    names = {r.name: r for r in plugins.records}
    assert names["builtins"].status == "loaded"
    assert names["dcgan"].status == "loaded"
    assert names["dcgan"].distribution == "ganforge-dcgan"
    registry = plugins.registry
    assert registry.entry("generator", "dcgan").origin == names["dcgan"].label
    assert registry.entry("loss", "bce").origin == names["builtins"].label
    assert {e.name for e in registry.list("dataset")} >= {"digits", "synthetic", "image_folder"}


def test_third_party_plugin_found_by_entry_point(fake_dist) -> None:
    fake_dist("ganforge-zero", "zero_plugin", GOOD)
    plugins = load_plugins()
    assert _record(plugins, "zero").status == "loaded"
    assert _record(plugins, "zero").distribution == "ganforge-zero"
    assert plugins.registry.get("loss", "zero").__name__ == "ZeroLoss"


def test_plugin_that_fails_to_import_is_reported_and_skipped(fake_dist) -> None:
    fake_dist("ganforge-broken", "broken_plugin", "raise ImportError('no module named tensorflow')")
    plugins = load_plugins()
    record = _record(plugins, "broken")
    assert record.status == "failed"
    assert record.distribution == "ganforge-broken" and record.version == "1.2.3"
    assert "ImportError: no module named tensorflow" in record.error
    assert plugins.problems == [record]
    assert ("generator", "dcgan") in plugins.registry  # the others keep working


def test_strict_switch_makes_a_broken_plugin_fatal(fake_dist, monkeypatch) -> None:
    fake_dist("ganforge-broken", "broken_plugin", "raise ImportError('boom')")
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'broken' \(ganforge-broken 1.2.3\).*boom"):
        load_plugins()


def test_disable_list_blocks_plugins(fake_dist, monkeypatch) -> None:
    fake_dist("ganforge-broken", "broken_plugin", "raise ImportError('boom')")
    monkeypatch.setenv("GANFORGE_DISABLE_PLUGINS", "broken, dcgan")
    plugins = load_plugins()
    assert _record(plugins, "broken").status == "disabled"
    assert _record(plugins, "dcgan").status == "disabled"
    assert ("generator", "dcgan") not in plugins.registry
    assert plugins.problems == []


def test_plugin_raising_inside_the_hook_is_withdrawn(fake_dist) -> None:
    fake_dist("ganforge-half", "half_plugin", GOOD.replace(
        'registry.register("loss", "zero", ZeroLoss)',
        'registry.register("loss", "zero", ZeroLoss)\n    raise RuntimeError("late failure")'))
    plugins = load_plugins()
    record = _record(plugins, "half")
    assert record.status == "failed" and "RuntimeError: late failure" in record.error
    assert ("loss", "zero") not in plugins.registry


def test_a_name_clash_with_a_built_in_withdraws_nothing(fake_dist) -> None:
    """A plugin registering the built-in ``bce`` loads; ``bce`` still means the built-in,
    and the plugin's is usable by its qualified name."""
    fake_dist("ganforge-dup", "dup_plugin", GOOD.replace('"loss", "zero"', '"loss", "bce"'))
    plugins = load_plugins()
    assert _record(plugins, "dup").status == "loaded"
    assert plugins.registry.get("loss", "bce").__name__ == "BCELoss"
    assert plugins.registry.get("loss", "ganforge:bce").__name__ == "BCELoss"
    assert plugins.registry.get("loss", "dup:bce").__name__ == "ZeroLoss"
    assert plugins.registry.qualified("loss", "bce") == "ganforge:bce"


def test_a_plugin_registering_dcgan_leaves_the_shipped_one_untouched(fake_dist) -> None:
    """An entry point that sorts before ``dcgan`` and registers a ``dcgan`` generator:
    both plugins load, ``dcgan`` stays the shipped one."""
    source = GOOD.replace("from ganforge import Loss, hookimpl",
                          "from ganforge import Loss, hookimpl\n"
                          "from ganforge_dcgan.generator import DCGANGenerator")
    source = source.replace('registry.register("loss", "zero", ZeroLoss)',
                            'registry.register("generator", "dcgan", DCGANGenerator)')
    fake_dist("ganforge-aaa", "aaa_plugin", source, entry="aaa")
    plugins = load_plugins()
    status = {r.name: r.status for r in plugins.records}
    assert status["aaa"] == "loaded" and status["dcgan"] == "loaded"
    assert plugins.registry.entry("generator", "dcgan").qualified == "dcgan:dcgan"
    assert plugins.registry.entry("generator", "aaa:dcgan").plugin == "aaa"


def test_a_short_name_two_plugins_share_is_an_error_listing_both(fake_dist) -> None:
    from ganforge.errors import UnknownComponentError

    fake_dist("ganforge-one", "one_plugin", GOOD, entry="one")
    fake_dist("ganforge-two", "two_plugin", GOOD, entry="two")
    plugins = load_plugins()
    assert {"one", "two"} <= {r.name for r in plugins.records if r.status == "loaded"}
    with pytest.raises(UnknownComponentError) as info:
        plugins.registry.get("loss", "zero")
    message = str(info.value)
    assert "one:zero" in message and "two:zero" in message and "\n" not in message
    assert plugins.registry.get("loss", "one:zero") is not plugins.registry.get("loss",
                                                                               "two:zero")


def test_the_same_plugin_registering_a_name_twice_fails_that_plugin(fake_dist) -> None:
    twice = GOOD.replace('    registry.register("loss", "zero", ZeroLoss)',
                         '    registry.register("loss", "zero", ZeroLoss)\n'
                         '    registry.register("loss", "zero", ZeroLoss)')
    fake_dist("ganforge-dup", "dup_plugin", twice)
    record = _record(load_plugins(), "dup")
    assert record.status == "failed" and "'dup:zero' registered twice" in record.error

def test_non_component_registration_is_reported(fake_dist) -> None:
    fake_dist("ganforge-odd", "odd_plugin", """
        from ganforge import hookimpl
        @hookimpl
        def ganforge_register(registry):
            registry.register("generator", "odd", object)
    """)
    record = _record(load_plugins(), "odd")
    assert record.status == "failed" and "not a subclass" in record.error


def test_misspelt_hook_is_reported(fake_dist) -> None:
    fake_dist("ganforge-typo", "typo_plugin", """
        from ganforge import hookimpl
        @hookimpl
        def ganforge_regster(registry):
            pass
    """)
    record = _record(load_plugins(), "typo")
    assert record.status == "failed"
    assert "did you mean 'ganforge_register'" in record.error


def test_failed_plugin_hooks_do_not_fire(fake_dist) -> None:
    fake_dist("ganforge-noisy", "noisy_plugin", """
        from ganforge import hookimpl
        CALLS = []
        @hookimpl
        def ganforge_register(registry):
            raise RuntimeError("broken registration")
        @hookimpl
        def ganforge_log(step, metrics):
            CALLS.append(step)
    """)
    plugins = load_plugins()
    assert next(r for r in plugins.records if r.name == "noisy").status == "failed"
    plugins.hook.ganforge_log(step=1, metrics={})
    import noisy_plugin
    assert noisy_plugin.CALLS == []


def test_second_plugin_with_a_taken_name_leaves_the_first_alone() -> None:
    import types

    impostor = types.ModuleType("impostor")
    plugins = load_plugins(extra=[("dcgan", impostor)])
    dcgan = [r for r in plugins.records if r.distribution == "ganforge-dcgan"]
    assert len(dcgan) == 1 and dcgan[0].status == "loaded"
    failed = [r for r in plugins.records if r.status == "failed"]
    assert len(failed) == 1 and "already taken by plugin 'dcgan'" in failed[0].error


def test_plugin_raising_in_an_observer_hook_does_not_stop_training(tiny_recipe, tmp_path,
                                                                     capsys) -> None:
    import types

    from ganforge import hookimpl
    from ganforge.recipe import load_recipe
    from ganforge.training import train

    calls = []
    broken, fine = types.ModuleType("broken_observer"), types.ModuleType("fine_observer")

    @hookimpl
    def failing_log(step, metrics):
        raise RuntimeError("observer bug")

    @hookimpl
    def counting_log(step, metrics):
        calls.append(step)

    broken.ganforge_log, fine.ganforge_log = failing_log, counting_log
    plugins = load_plugins(extra=[("broken_observer", broken), ("fine_observer", fine)])
    recipe = load_recipe(tiny_recipe, plugins.registry)
    result = train(recipe, plugins, tmp_path / "run", progress=False)
    assert result.step == 6 and calls == [2, 4, 6]
    err = capsys.readouterr().err
    assert err.count("plugin 'broken_observer'") == 1  # reported once, then disabled
    assert "raised in ganforge_log: RuntimeError: observer bug" in err
    record = next(r for r in plugins.records if r.name == "broken_observer")
    assert record.status == "failed"


def test_strict_switch_makes_a_failing_observer_fatal(tiny_recipe, tmp_path,
                                                      monkeypatch) -> None:
    import types

    from ganforge import hookimpl
    from ganforge.recipe import load_recipe
    from ganforge.training import train

    broken = types.ModuleType("broken_observer")

    @hookimpl
    def failing_log(step, metrics):
        raise RuntimeError("observer bug")

    broken.ganforge_log = failing_log
    plugins = load_plugins(extra=[("broken_observer", broken)])
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="raised in ganforge_log"):
        train(load_recipe(tiny_recipe, plugins.registry), plugins, tmp_path / "run",
              progress=False)


@pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt()"])
def test_a_plugin_import_ending_the_process_is_a_failed_plugin(fake_dist, raised) -> None:
    fake_dist("ganforge-exits", "exits_plugin", f"raise {raised}")
    plugins = load_plugins()
    record = next(r for r in plugins.records if r.name == "exits")
    assert record.status == "failed" and record.error.startswith(raised.split("(")[0])
    assert any(r.name == "dcgan" and r.status == "loaded" for r in plugins.records)


@pytest.mark.parametrize("raised", [SystemExit(0), KeyboardInterrupt()])
def test_an_observer_raising_systemexit_cannot_end_a_run(tiny_recipe, tmp_path, capsys,
                                                         raised) -> None:
    import types

    from ganforge import hookimpl
    from ganforge.recipe import load_recipe
    from ganforge.training import train

    broken = types.ModuleType("exiting_observer")

    @hookimpl
    def exiting_log(step, metrics):
        raise raised

    broken.ganforge_log = exiting_log
    plugins = load_plugins(extra=[("exiting_observer", broken)])
    result = train(load_recipe(tiny_recipe, plugins.registry), plugins, tmp_path / "run",
                   progress=False)
    assert result.step == 6 and not result.interrupted
    assert f"raised in ganforge_log: {type(raised).__name__}" in capsys.readouterr().err


def test_the_users_ctrl_c_inside_a_hook_keeps_its_meaning() -> None:
    import signal
    import types

    from ganforge import hookimpl

    observer = types.ModuleType("slow_observer")

    @hookimpl
    def interrupted_log(step, metrics):
        signal.raise_signal(signal.SIGINT)  # the user's Ctrl-C, while the hook runs

    observer.ganforge_log = interrupted_log
    plugins = load_plugins(extra=[("slow_observer", observer)])
    # The user's Ctrl-C means KeyboardInterrupt, as in a fresh interpreter, whatever handler
    # an earlier test in this process left behind.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            plugins.broadcast("ganforge_log", step=1, metrics={})
    finally:
        signal.signal(signal.SIGINT, previous)
    record = next(r for r in plugins.records if r.name == "slow_observer")
    assert record.status == "loaded"
