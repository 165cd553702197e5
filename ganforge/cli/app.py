"""The Typer application, its global options and the one-line error contract.

Exit codes: 0 ok, 1 the run failed, 2 usage or recipe error. A :class:`GanforgeError`
prints as one line per problem on stderr; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import contextvars
import functools
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .._version import __version__
from ..core.errors import Aborted, GanforgeError, Interrupted

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="ganforge",
    help="A modular, plugin-based GAN toolkit: components, recipes, exact resume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: "[sweep]" and "[ema]" name recipe tables, not markup.
    rich_markup_mode=None,
)


def stderr() -> Console:
    """Console for messages and errors (stdout stays for data such as resolved TOML)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


#: Set by the root callback for the duration of one invocation.
_debug_flag: contextvars.ContextVar[bool] = contextvars.ContextVar("ganforge_debug",
                                                                    default=False)


def _debug() -> bool:
    return _debug_flag.get()


def reports_errors(command: F) -> F:
    """Turn ganforge errors into one line each and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GanforgeError as exc:
            if _debug():
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:
                # The message is data, not markup: "[run]" must print as "[run]".
                stderr().print(f"[red]error:[/red] {escape(line)}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except KeyboardInterrupt as exc:
            if isinstance(exc, Aborted):  # a second stop signal: its own exit code
                stderr().print(f"interrupted: aborted by a second "
                               f"{signal.Signals(exc.signum).name}")
                raise typer.Exit(128 + exc.signum) from None
            if isinstance(exc, Interrupted) and exc.signum != signal.SIGINT:
                stderr().print(f"interrupted ({signal.Signals(exc.signum).name})")
                raise typer.Exit(128 + exc.signum) from None
            stderr().print("interrupted")
            raise typer.Exit(128 + signal.SIGINT) from None
        except Exception as exc:
            if _debug():
                raise
            first = (str(exc).splitlines() or [""])[0]
            stderr().print(f"[red]error:[/red] internal error: {type(exc).__name__}: "
                           f"{escape(first)} (run with --debug for the traceback)", markup=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """ganforge: train, inspect and sample GANs described by TOML recipes."""
    _debug_flag.set(debug)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="ganforge")
