"""Components: the parts of a node with a start/stop lifecycle, and the stack that orders them.

A node is built from components (instruments, QNICs, control link, herald links, executor ...).
They start in the order they were added and stop in the reverse order, so nothing is stopped
while something started after it may still use it. A component that fails to start stops every
component started before it, and the failure propagates. Stopping never raises: each component's
stop runs even if an earlier one failed, and the failures are logged and returned.

:func:`install_signal_handlers` turns SIGINT and SIGTERM into a graceful shutdown on the loop
thread (the handler only schedules it; the loop then unwinds the stack in reverse).
"""

from __future__ import annotations

import logging
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from .logs import event

log = logging.getLogger(__name__)


class Component(ABC):
    """Something a node starts and stops."""

    name: str

    @abstractmethod
    def start(self) -> None:
        """Acquire what the component needs (open sockets, connect instruments)."""

    @abstractmethod
    def stop(self) -> None:
        """Release it. Called once, only after a successful :meth:`start`."""


@dataclass
class FunctionComponent(Component):
    """A component made of two callables, for objects that already have their own start/stop."""

    name: str
    on_start: Callable[[], object]
    on_stop: Callable[[], object]

    def start(self) -> None:
        self.on_start()

    def stop(self) -> None:
        self.on_stop()


class ComponentStack:
    """Starts components in order and stops them in reverse."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._components: list[Component] = []
        self._started: list[Component] = []

    def add(self, component: Component) -> Component:
        if self._started:
            raise RuntimeError(f"{self.owner}: cannot add {component.name} after start")
        self._components.append(component)
        return component

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._components]

    @property
    def running(self) -> list[str]:
        return [c.name for c in self._started]

    def start(self) -> None:
        for component in self._components:
            try:
                component.start()
            except BaseException:
                event(log, logging.ERROR, "component.start_failed", node=self.owner, component=component.name)
                self.stop()
                raise
            self._started.append(component)
            event(log, logging.DEBUG, "component.started", node=self.owner, component=component.name)

    def stop(self) -> list[tuple[str, BaseException]]:
        failures: list[tuple[str, BaseException]] = []
        while self._started:
            component = self._started.pop()
            try:
                component.stop()
                event(log, logging.DEBUG, "component.stopped", node=self.owner, component=component.name)
            except Exception as exc:   # keep unwinding: the rest must still be released
                failures.append((component.name, exc))
                event(log, logging.ERROR, "component.stop_failed", node=self.owner,
                      component=component.name, error=repr(exc))
        return failures


def install_signal_handlers(request_shutdown: Callable[[str], None]) -> Callable[[], None]:
    """Call ``request_shutdown(signal_name)`` on SIGINT/SIGTERM; returns a function that restores
    the previous handlers. ``request_shutdown`` must only schedule work (it runs in a signal
    handler): use ``loop.call_soon_threadsafe``."""
    previous = {}

    def handler(signum: int, _frame) -> None:
        request_shutdown(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
