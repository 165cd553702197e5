"""Developer sessions: ``nox -s tests`` (the README's test command), ``nox -s lint`` and
``nox -s typecheck``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PACKAGES = ["-e", ".[test]", "-e", "plugins/dcgan", "-e", "plugins/resnet"]


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Install ganforge and the shipped plugins (DCGAN, ResNet), then run the test suite."""
    # torch and torchvision are resolved together from the registry (CUDA build; it runs on
    # the CPU too); never a lone local CPU-only torch wheel, with which torchvision fails.
    session.install(*PACKAGES)
    # The 20 slowest tests in every run: the suite's time is watched (CI has 90 minutes).
    session.run("pytest", "-q", "-p", "no:cacheprovider", "--durations=20", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the sources (the plugin template's too), plugins, tests and tools."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "ganforge", "ganforge/templates/plugin", "plugins", "tests",
                "tools", "noxfile.py")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy over ganforge, the shipped plugins and the plugin template's sources (settings in
    pyproject.toml). The template is checked on its own: its package is no part of
    ganforge's (``ganforge new plugin`` renames it)."""
    session.install(*PACKAGES, "mypy>=1.10")
    session.run("mypy", "ganforge", "plugins/dcgan/ganforge_dcgan",
                "plugins/resnet/ganforge_resnet")
    session.run("mypy", "ganforge/templates/plugin/ganforge_plugin",
                "ganforge/templates/plugin/tests")


@nox.session(python="3.11")
def kill_loop(session: nox.Session) -> None:
    """The long kill test: many random SIGKILLs during training (see
    tests/test_kill_safety.py; the normal suite runs 3)."""
    session.install(*PACKAGES)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_kill_safety.py",
                env={"GANFORGE_KILL_ITERATIONS": session.posargs[0] if session.posargs
                     else "30"})
