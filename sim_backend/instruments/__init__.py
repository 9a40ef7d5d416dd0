"""The simulated instruments, model ``sim`` of every kind, registered with the driver registry.

Every simulated instrument of a testbed shares the DriverContext's ``world``
(:class:`sim_backend.world.World`) and reads time from the node clock; a node opened without a
World gets a private one.
"""

from __future__ import annotations

from drivers.registry import register_driver

from ..memory_params import MemoryParams
from ..qnic import SimQNIC
from .awg import SimAWG
from .common import dataclass_from_options, world_from_context
from .optical_switch import SimOpticalSwitch
from .pair_source import SimPairSource
from .time_tagger import SimTimeTagger


def _qnic_from_config(cls, spec, context):
    """Options: ``node`` (required), ``qnic_address`` (0), ``num_qubits`` (2),
    ``communication_qubits`` (all), ``memory`` (MemoryParams fields), ``full_operation_log``
    (false: the log keeps the latest operations only)."""
    from qnode_fw.errors import ConfigError

    world = world_from_context(spec, context)
    options = dict(spec.options)
    if "node" not in options:
        raise ConfigError("a simulated QNIC needs the node address", field=f"instruments.{spec.name}.options.node")
    memory = dataclass_from_options(MemoryParams, dict(options.get("memory", {})),
                                    f"instruments.{spec.name}.options.memory")
    qnic_address = int(options.get("qnic_address", 0))
    streams = world.streams
    rng = streams.get(f"node:{options['node']}/qnic:{qnic_address}")
    qnic = cls(spec.name, str(options["node"]), qnic_address, int(options.get("num_qubits", 2)),
               world.registry, world.clock, rng, params=memory,
               communication_qubits=options.get("communication_qubits"),
               full_operation_log=bool(options.get("full_operation_log", False)))
    world.add_qnic(qnic)
    return qnic


SimQNIC.from_config = classmethod(_qnic_from_config)

register_driver(kind="awg", model="sim", transport="sim",
                description="Simulated AWG: marker edges become trigger events and tagger inputs")(SimAWG)
register_driver(kind="time_tagger", model="sim", transport="sim",
                description="Simulated time tagger on the World's tag streams")(SimTimeTagger)
register_driver(kind="optical_switch", model="sim", transport="sim",
                description="Simulated optical switch with insertion loss and switching time")(SimOpticalSwitch)
register_driver(kind="pair_source", model="sim", transport="sim",
                description="Simulated SPDC pair source (pump, phase matching, thermal pairs)")(SimPairSource)
register_driver(kind="qnic", model="sim", transport="sim",
                description="Simulated QNIC on exact density matrices (T1/T2, gate/readout errors)")(SimQNIC)

__all__ = ["SimAWG", "SimOpticalSwitch", "SimPairSource", "SimQNIC", "SimTimeTagger", "world_from_context"]
