"""A contract kit for plugin authors: one line per component in a plugin's test suite
checks it the way the trainer uses it (like scikit-learn's ``check_estimator``)::

    from ganforge.testing import check_component, check_plugin, plugin_registry

    def test_my_loss_contract():
        check_component("loss", "my_plugin:least_squares")

    def test_everything():
        check_plugin("my_plugin", registry=plugin_registry("my_plugin", "my_plugin.plugin"))

    def test_settings_and_hooks():  # a short real run through the observer hooks
        check_hooks("my_plugin", "my_plugin.plugin")

See ``docs/testing-plugins.md`` for what each check checks.
"""

from .contract import (
    CHANNELS,
    CHECKS,
    COMPILE_BACKEND,
    SIZES,
    check_component,
    check_plugin,
    check_training,
    run_checks,
)
from .hook_checks import OBSERVER_HOOKS, check_hooks
from .loading import load_plugin, plugin_registry
from .network_checks import COMPILE_OPT_OUT
from .networks import TinyDiscriminator, TinyGenerator
from .report import ContractReport
from .training import BASE_RECIPE

__all__ = [
    "BASE_RECIPE",
    "CHANNELS",
    "CHECKS",
    "COMPILE_BACKEND",
    "COMPILE_OPT_OUT",
    "OBSERVER_HOOKS",
    "SIZES",
    "ContractReport",
    "TinyDiscriminator",
    "TinyGenerator",
    "check_component",
    "check_hooks",
    "check_plugin",
    "check_training",
    "load_plugin",
    "plugin_registry",
    "run_checks",
]
