"""Connection setup (QRNA two-pass), admission control, teardown and multiplexing.

See :mod:`.manager` for the protocol, :mod:`.planner` for the Responder's fidelity/rate model,
:mod:`.mux` for the multiplexing policies and the fairness measure, :mod:`.virtual_link` and
:mod:`.border` for recursion (a network presented as one link), and docs/connections.md.
"""

from .border import BorderRouter, VirtualLinkSpec
from .manager import Connection, ConnectionManager, SetupSettings
from .mux import MuxPolicy, ResourcePool, jain_index
from .planner import HopReport, Plan, Refusal, estimate, plan
from .qos import QoS, Outcome, Reason
from .virtual_link import VirtualLink, virtual_link_name

__all__ = ["BorderRouter", "Connection", "ConnectionManager", "HopReport", "MuxPolicy", "Outcome",
           "Plan", "QoS", "Reason", "Refusal", "ResourcePool", "SetupSettings", "VirtualLink",
           "VirtualLinkSpec", "estimate", "jain_index", "plan", "virtual_link_name"]
