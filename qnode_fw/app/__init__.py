"""The application API (RFC 9340 service model, QRNA's application interface): quantum sockets
on end nodes that request Bell pairs and receive them, or measurement outcomes on MEAS nodes.

- :mod:`.socket`: :class:`NodeApi` (one per node) and :class:`QuantumSocket` (open, request,
  receive, measure/release, close);
- :mod:`.events`: what a socket delivers;
- :mod:`.photonic`: EPPS distribution to photonic MEAS nodes (station pump service and the
  MEAS node's analyser switch and tagger).
"""

from .events import AppEvent, ConnectionEvent, DeliveredPair, DetectionBatch, MeasuredOutcome
from .photonic import AnalyserPort, EppsService, PhotonicEnd
from .socket import NodeApi, QuantumSocket, SocketState

__all__ = ["AnalyserPort", "AppEvent", "ConnectionEvent", "DeliveredPair", "DetectionBatch",
           "EppsService", "MeasuredOutcome", "NodeApi", "PhotonicEnd", "QuantumSocket", "SocketState"]
