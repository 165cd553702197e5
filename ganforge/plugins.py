"""Plugin discovery: built-ins and entry points, through one pluggy manager.

:func:`load_plugins` builds the per-process :class:`Plugins` object: the pluggy manager,
the filled :class:`~ganforge.core.registry.Registry`, and a record of every plugin's fate.
Environment switches: ``GANFORGE_STRICT_PLUGINS=1`` turns any plugin problem into a hard
failure; ``GANFORGE_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name;
``GANFORGE_PLUGIN_IMPORT_TIMEOUT`` (seconds, default 30) limits each plugin's import.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator
from types import FrameType, ModuleType
from typing import Any

import attrs
import pluggy

from .core import hookspecs
from .core.errors import PluginError, UsageError
from .core.registry import SHIPPED_DISTRIBUTIONS, Registry
from .core.suggest import did_you_mean

ENTRY_POINT_GROUP = "ganforge"
BUILTIN_PLUGIN = "builtins"
#: The qualifier of the built-in components' names (``ganforge:bce``).
BUILTIN_QUALIFIER = "ganforge"
_HOOK_NAMES = [n for n in dir(hookspecs) if n.startswith("ganforge_")]


@attrs.frozen
class PluginRecord:
    """What happened to one plugin: ``loaded``, ``failed`` or ``disabled``."""

    name: str
    distribution: str
    version: str
    status: str
    error: str = ""
    #: The formatted traceback of the failure (shown with ``ganforge --debug``).
    traceback: str = attrs.field(default="", repr=False, eq=False)

    @property
    def label(self) -> str:
        """``plugin 'name' (distribution version)``, used in every message about it."""
        return f"plugin {self.name!r} ({self.distribution} {self.version})".replace(" )", ")")


@attrs.define
class Plugins:
    """The loaded plugins of this process: manager, registry and per-plugin records."""

    manager: pluggy.PluginManager
    registry: Registry
    records: list[PluginRecord]

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (observer hooks go through :meth:`broadcast` instead)."""
        return self.manager.hook

    @property
    def problems(self) -> list[PluginRecord]:
        """Plugins that failed to import or to register."""
        return [r for r in self.records if r.status == "failed"]

    def broadcast(self, hook_name: str, strict: bool | None = None,
                  warn: Any = None, **kwargs: Any) -> list[Any]:
        """Call every implementation of an observer hook, each isolated from the others.

        A plugin that raises is reported (``warn(message)``, default: a line on stderr)
        with its name and distribution, unregistered for the rest of the process, and
        the call goes on with the other plugins; with the strict switch it is fatal.
        Returns the non-None results.
        """
        strict = _env_flag("GANFORGE_STRICT_PLUGINS") if strict is None else strict
        results = []
        caller = getattr(self.manager.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                with watching_stop_signals() as signals:
                    result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except BaseException as error:
                # The user's own Ctrl-C or SIGTERM keeps its meaning; a plugin's error does not
                # escape because a stop was requested while it ran.
                if signals.received and isinstance(error, KeyboardInterrupt):
                    raise
                record = next((r for r in self.records if r.name == impl.plugin_name), None)
                label = record.label if record else f"plugin {impl.plugin_name!r}"
                message = f"{label} raised in {hook_name}: {_describe(error)}"
                if strict:
                    raise PluginError(message) from error
                self.manager.unregister(name=impl.plugin_name)
                if record is not None:
                    self.records[self.records.index(record)] = attrs.evolve(
                        record, status="failed", error=message)
                (warn or _warn)(f"{message}; the plugin is disabled for the rest of this run")
                continue
            if result is not None:
                results.append(result)
        return results


class _SignalsSeen:
    received = False


@contextlib.contextmanager
def watching_stop_signals() -> Iterator[_SignalsSeen]:
    """Tell a ``KeyboardInterrupt`` (or an abort) that a real SIGINT or SIGTERM caused
    apart from one that plugin code raised itself: while the block runs, every handler of
    those signals is wrapped so that ``received`` records a real signal's arrival."""
    seen = _SignalsSeen()
    if threading.current_thread() is not threading.main_thread():
        yield seen  # signals are handled in the main thread only
        return
    previous: dict[int, Any] = {}

    def wrap(handler: Any) -> Any:
        def record(signum: int, frame: FrameType | None) -> Any:
            seen.received = True
            return handler(signum, frame)

        return record

    for sig in (int(signal.SIGINT), int(signal.SIGTERM)):
        handler = signal.getsignal(sig)
        if callable(handler):  # SIG_DFL ends the process anyway; SIG_IGN: nothing arrives
            previous[sig] = handler
            signal.signal(sig, wrap(handler))
    try:
        yield seen
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _describe(error: BaseException) -> str:
    """An exception as one line: ``Type: message`` (``SystemExit: 0`` included). pluggy's
    validation errors put the useful part (which argument of which hook) on later lines:
    they are joined into the one line."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, pluggy.PluginValidationError):
        return " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text.splitlines()[0] if text.strip() else type(error).__name__


def _warn(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


#: Seconds a plugin's import may take before it is recorded as failed (the environment
#: variable ``GANFORGE_PLUGIN_IMPORT_TIMEOUT`` changes it).
DEFAULT_IMPORT_TIMEOUT_S = 30.0


def import_timeout() -> float:
    """``GANFORGE_PLUGIN_IMPORT_TIMEOUT`` in seconds (a positive number), else the
    default; a bad value is one :class:`~ganforge.core.errors.UsageError` line."""
    text = os.environ.get("GANFORGE_PLUGIN_IMPORT_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_IMPORT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"GANFORGE_PLUGIN_IMPORT_TIMEOUT={text[:40]!r}: expected a positive "
                         "number of seconds")
    return value


def _import_within(ep: metadata.EntryPoint, timeout: float) -> Any:
    """``ep.load()``, given at most ``timeout`` seconds. The import runs in a daemon thread
    so that one that hangs (a network call, a lock, an endless loop at import time) cannot
    hang the command: past the limit it is abandoned (never killed: the thread may finish
    later, its result unused) and a :class:`PluginError` names the limit. An error the
    import raises is raised here."""
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(ep.load())
        except BaseException as error:  # handed over to the caller, whatever it is
            failure.append(error)

    worker = threading.Thread(target=target, name=f"ganforge-plugin-import-{ep.name}",
                              daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        frame = sys._current_frames().get(worker.ident or -1)
        where = "".join(traceback.format_stack(frame)) if frame is not None else ""
        error = PluginError(f"import of {ep.value!r} did not finish within {timeout:g} s "
                            "(GANFORGE_PLUGIN_IMPORT_TIMEOUT)")
        error.add_note(f"where the import was waiting:\n{where}")
        raise error
    if failure:
        raise failure[0]
    return outcome[0]


def load_plugins(strict: bool | None = None, disabled: Iterable[str] | None = None,
                 extra: Iterable[tuple[str, ModuleType | object]] = (),
                 import_timeout_s: float | None = None) -> Plugins:
    """Discover plugins, call their ``ganforge_register`` hooks and return the result.

    ``strict`` and ``disabled`` default to the environment switches. ``extra`` registers
    additional ``(name, plugin_object)`` pairs as if they were installed (used by tests and
    by applications embedding ganforge). An installed plugin whose import takes longer than
    ``import_timeout_s`` (default: :func:`import_timeout`) is recorded as failed, like one
    whose import raises.
    """
    strict = _env_flag("GANFORGE_STRICT_PLUGINS") if strict is None else strict
    blocked = _env_list("GANFORGE_DISABLE_PLUGINS") if disabled is None else set(disabled)
    timeout = import_timeout() if import_timeout_s is None else import_timeout_s

    manager = pluggy.PluginManager("ganforge")
    manager.add_hookspecs(hookspecs)
    records: dict[str, PluginRecord] = {}

    def fail(record: PluginRecord, error: BaseException, key: str | None = None) -> None:
        message = _describe(error)
        trace = "".join(traceback.format_exception(error))
        records[key or record.name] = attrs.evolve(record, status="failed", error=message,
                                                   traceback=trace)
        if key is None and manager.get_plugin(record.name) is not None:
            manager.unregister(name=record.name)  # its observer hooks must not fire either
        if strict:
            raise PluginError(f"{record.label} failed: {message}") from error

    from . import builtins as builtin_module
    from ._version import __version__

    candidates: list[tuple[PluginRecord, Any]] = [
        (PluginRecord(BUILTIN_PLUGIN, "ganforge", __version__, "loaded"), builtin_module)
    ]
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else ""
        record = PluginRecord(ep.name, dist, version, "loaded")
        if ep.name in blocked:
            records[ep.name] = attrs.evolve(record, status="disabled")
            continue
        try:
            with watching_stop_signals() as signals:
                candidates.append((record, _import_within(ep, timeout)))
        except BaseException as error:  # a broken plugin must not take the others down
            if signals.received and isinstance(error, KeyboardInterrupt):
                raise
            fail(record, error)
    for name, obj in extra:
        record = PluginRecord(name, "<extra>", "", "loaded")
        if any(r.name == name and plugin is obj for r, plugin in candidates):
            continue  # the installed plugin itself, passed again (a plugin's own test suite)
        if name in blocked:
            records[name] = attrs.evolve(record, status="disabled")
        else:
            candidates.append((record, obj))

    registry = Registry()
    for record, plugin in candidates:
        if record.name in records:  # same name twice: the first one wins, untouched
            fail(record, PluginError(f"plugin name {record.name!r} is already taken by "
                                     f"{records[record.name].label}"),
                 key=f"{record.name} ({record.distribution})")
            continue
        records[record.name] = record
        try:
            manager.register(plugin, name=record.name)
        except Exception as error:  # e.g. a hookimpl whose arguments do not match the spec
            fail(record, error)
            continue
        unknown = sorted(c.name for c in manager.get_hookcallers(plugin) or [] if c.spec is None)
        if unknown:
            fail(record, PluginError(f"implements unknown hook {unknown[0]!r}"
                                     f"{did_you_mean(unknown[0], _HOOK_NAMES)}"))
            continue
        impls = [i for i in manager.hook.ganforge_register.get_hookimpls()
                 if i.plugin_name == record.name]
        for impl in impls:
            try:
                qualifier = BUILTIN_QUALIFIER if record.name == BUILTIN_PLUGIN else record.name
                with watching_stop_signals() as signals, registry.registering_as(
                        record.label, qualifier, record.distribution in SHIPPED_DISTRIBUTIONS):
                    impl.function(registry=registry)
            except BaseException as error:
                if signals.received and isinstance(error, KeyboardInterrupt):
                    raise
                fail(record, error)
                break
    registry.failed = {r.name: f"{r.label} failed to load: {r.error}"
                       for r in records.values() if r.status == "failed"}
    for entry, note in registry.shadowed():  # shown by `ganforge plugins`, in its note
        for key, record in records.items():
            if record.label == entry.origin and record.status == "loaded":
                records[key] = attrs.evolve(record, error="; ".join(
                    filter(None, [record.error, note])))
    return Plugins(manager=manager, registry=registry, records=list(records.values()))
