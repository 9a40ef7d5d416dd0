"""Heralding timing layer: herald frames and links, clock synchronisation, the attempt schedule,
herald and coincidence detection on time-tag streams, and binding heralds to physical qubits.

Modules:

* :mod:`timing.frames` - fixed-size binary herald-link frames and the duplicate/reorder window;
* :mod:`timing.herald_link` - the dedicated herald link (in-process on the event loop, ZeroMQ);
* :mod:`timing.herald_udp` - the herald link over UDP datagrams (the low-latency transport);
* :mod:`timing.clock_sync` - two-way time transfer between a node and its BSA/EPPS station;
* :mod:`timing.schedule` - the per-link attempt schedule with demand-driven pausing;
* :mod:`timing.detection` / :mod:`timing.kernels` - herald and SPDC coincidence detection;
* :mod:`timing.binding` - attempt id -> qubit map and pair-ready events at the end nodes;
* :mod:`timing.station` - the BSA station service tying detection to herald frames;
* :mod:`timing.schemes` - the three heralded link schemes (RFC 9340 §4.4.1): typed link
  description, timeline, herald hops, busy time and cadence closed forms;
* :mod:`timing.link_end` / :mod:`timing.heralders` - link ends and stations of any scheme, and
  per-attempt outcomes (failures included) from a heralding detector's tagger;
* :mod:`timing.comm_qubits` - which communication qubits are free for an attempt;
* :mod:`timing.switched` - a transceiver behind an optical switch serving several links;
* :mod:`timing.tagfile` - the project's own tag file format (``.npz``).
"""
