"""The simulated World seen from a node process in processes mode (the World server is in
:mod:`sim_backend.world_server`).

- :mod:`.protocol`: the versioned request/reply protocol (JSON header, numpy frames) and the
  table of instrument methods a node may call;
- :mod:`.timebase`: testbed time shared by every process, and hardware time on the node loop;
- :mod:`.client`: the node's DEALER, requests and the horizon it promises the server;
- :mod:`.proxies`: driver-interface proxies of the instruments that live in the server;
- :mod:`.world`: :class:`RemoteWorld`, what a node's DriverContext gets instead of a World.
"""

from .protocol import PROTOCOL_VERSION
from .timebase import HardwareClock, HardwareLoop, TestbedClock
from .world import RemoteWorld

__all__ = ["PROTOCOL_VERSION", "HardwareClock", "HardwareLoop", "RemoteWorld", "TestbedClock"]
