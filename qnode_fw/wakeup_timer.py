"""A file descriptor that becomes readable after a delay given in nanoseconds (Linux ``timerfd``).

The wall-clock :class:`~qnode_fw.loop.EventLoop` sleeps in ``zmq.Poller.poll``, whose timeout is
whole milliseconds. A timer due in 300 µs could only be waited for by polling without sleeping
(a busy loop on a whole core, competing with the process's own ZeroMQ I/O thread) or by
sleeping a whole millisecond (700 µs late). A ``timerfd`` armed for the delay and registered in
the same poller wakes the poll at the deadline with the kernel's hrtimer precision (its timer
slack, 50 µs for an ordinary thread), while the sockets still wake it as before.

``os.timerfd_create`` exists from Python 3.13; before that the two libc calls are made through
ctypes. Where neither works (not Linux) :func:`open_wakeup_timer` returns None and the loop keeps
its millisecond sleeps.
"""

from __future__ import annotations

import ctypes
import os
import sys

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class WakeupTimer:
    """A one-shot relative timer on a file descriptor: :meth:`arm`, poll :meth:`fileno`,
    :meth:`drain` once it was readable."""

    def __init__(self) -> None:
        self._settime = None
        if hasattr(os, "timerfd_create"):           # Python 3.13+
            self._fd = os.timerfd_create(_CLOCK_MONOTONIC, flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            create = libc.timerfd_create
            create.argtypes = [ctypes.c_int, ctypes.c_int]
            create.restype = ctypes.c_int
            settime = libc.timerfd_settime
            settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                ctypes.POINTER(_Itimerspec)]
            settime.restype = ctypes.c_int
            fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            self._fd = fd
            self._settime = settime
            self._spec = _Itimerspec()
            # Built once: a timer is armed for every sleep, thousands of times a second.
            self._value = self._spec.it_value
            self._spec_ref = ctypes.byref(self._spec)
        self.armed_ns: int | None = None

    def fileno(self) -> int:
        return self._fd

    def arm(self, delay_ns: int) -> None:
        """Become readable ``delay_ns`` from now (re-arming clears an earlier expiry)."""
        delay_ns = max(1, int(delay_ns))            # 0 would disarm the timer
        if self._settime is None:
            os.timerfd_settime_ns(self._fd, initial=delay_ns)   # type: ignore[attr-defined]
        else:
            value = self._value
            value.tv_sec, value.tv_nsec = divmod(delay_ns, 1_000_000_000)
            if self._settime(self._fd, 0, self._spec_ref, None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        self.armed_ns = delay_ns

    def drain(self) -> None:
        """Read the expiry count, so the descriptor is no longer readable."""
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_wakeup_timer() -> WakeupTimer | None:
    """A :class:`WakeupTimer`, or None where the OS has no ``timerfd``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return WakeupTimer()
    except (OSError, AttributeError):
        return None


__all__ = ["WakeupTimer", "open_wakeup_timer"]
