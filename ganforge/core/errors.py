"""Exception types shared by every part of ganforge.

Every error a user can cause derives from :class:`GanforgeError`; the command line prints
such errors as one line (no traceback unless ``--debug``) and picks the exit code from
:attr:`GanforgeError.exit_code`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class GanforgeError(Exception):
    """Base class of the errors ganforge reports to users as one clear line."""

    #: Process exit code used by the CLI: 1 run failed, 2 usage or recipe error.
    exit_code: int = 1


class UsageError(GanforgeError):
    """Bad input from the user (a path that does not exist, an unknown name, ...)."""

    exit_code = 2


class UnknownComponentError(UsageError):
    """A component name that is not registered for its kind."""


class RegistrationError(GanforgeError):
    """A plugin registered something invalid (duplicate name, not a component, ...)."""


class PluginError(GanforgeError):
    """A plugin failed to load or raised inside a hook (fatal only in strict mode)."""


class CheckpointError(GanforgeError):
    """A checkpoint that cannot be read, is hostile, or does not match the recipe."""

    exit_code = 2


class TrainingError(GanforgeError):
    """The training run failed (for example, a non-finite loss)."""


class StorageError(GanforgeError):
    """A file ganforge must write or read back cannot be (full disk, read-only folder,
    damaged log); the message names the file."""


class RunDirectoryBusy(UsageError):
    """Another live process holds the run (or sweep) directory's lock."""


class Interrupted(KeyboardInterrupt):
    """A stop signal (Ctrl-C, SIGTERM) ended a command after its cleanup; the exit code is
    ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Aborted(KeyboardInterrupt):
    """A second stop signal aborted a run at once; the exit code is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class DataError(GanforgeError):
    """A dataset that cannot be read (missing root, corrupt image under a fail policy)."""


class RecipeError(UsageError):
    """One or more problems in a recipe, each tied to a path such as ``$.generator.width``.

    All problems found in one pass are collected, so a user fixes a recipe in one go.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(f"{prefix}{path}: {message}" for path, message in self.problems)

    @classmethod
    def single(cls, path: str, message: str, source: str | None = None) -> RecipeError:
        """Build an error holding one problem."""
        return cls([(path, message)], source=source)

    def lines(self) -> Iterable[str]:
        """One line per problem, ready to print."""
        return self._render().splitlines()
