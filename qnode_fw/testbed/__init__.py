"""Running every node of a testbed.

- :mod:`.virtual`: all nodes in one process on one virtual-clock loop (the default of
  ``qnode testbed``): in-process control links, one shared simulated World.
- :mod:`.lab`: one node in this process on the wall clock, ZeroMQ control link with CurveZMQ
  (``qnode run`` on a lab PC).
- :mod:`.render`: the topology and per-node status as text for people.
"""

from .virtual import VirtualTestbed

__all__ = ["VirtualTestbed"]
