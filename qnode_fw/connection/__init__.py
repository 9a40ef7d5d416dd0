"""Connection setup (QRNA two-pass), admission control, teardown and multiplexing.

See :mod:`.manager` for the protocol, :mod:`.planner` for the Responder's fidelity/rate model,
:mod:`.mux` for the multiplexing policies and the fairness measure, and docs/connections.md.
"""

from .manager import Connection, ConnectionManager, SetupSettings
from .mux import MuxPolicy, ResourcePool, jain_index
from .planner import HopReport, Plan, Refusal, estimate, plan
from .qos import QoS, Outcome, Reason

__all__ = ["Connection", "ConnectionManager", "HopReport", "MuxPolicy", "Outcome", "Plan", "QoS",
           "Reason", "Refusal", "ResourcePool", "SetupSettings", "estimate", "jain_index", "plan"]
