"""Transports: VISA (pyvisa + pyvisa-py), serial (pyserial, including ``serial_for_url``), plain TCP
sockets and ZeroMQ REQ. Every transport has a timeout on every read and write; a
:class:`~drivers.transports.session.Session` adds the per-instrument lock, typed errors and the
bounded-backoff reconnect.
"""

from .base import Transport, TransportSettings
from .session import Backoff, Session, make_transport

__all__ = ["Backoff", "Session", "Transport", "TransportSettings", "make_transport"]
